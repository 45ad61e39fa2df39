// Package api serves the relay-task API: create, list/show, modify and delete
// on /v1/{project_id}/pull/stream/task. It decodes and authenticates each
// request, applies the task package's rules, writes through the store, and
// wakes the scheduler. Every failure becomes one error shape here.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/callback"
	"github.com/liverelay/liverelay/internal/metrics"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// Scheduler is what the API needs of the scheduler: word of each task it
// wrote (t nil: deleted), so that task alone is reconciled.
type Scheduler interface {
	Changed(id string, t *task.Task)
}

// HostChecker refuses URLs whose host is, or resolves to, a denied network.
type HostChecker interface {
	CheckURLHost(ctx context.Context, rawURL string) error
}

// Server holds what the handlers need.
type Server struct {
	Store     store.Store
	Auth      auth.Authorizer
	Scheduler Scheduler
	// OnEvents, when set, is called after callback events were stored.
	OnEvents func()
	Guard    HostChecker
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Rules returns the validation rules for a project region, at now.
	Rules func(projectRegion string, now time.Time) *task.Rules
	Quota int
	Now   func() time.Time
}

// Handler returns the HTTP handler of the API and /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/v1/{project_id}/pull/stream/task", s.taskEndpoint)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, "unknown", "", func(*call) (int, any, error) {
			return 0, nil, &apiError{Status: http.StatusNotFound, Code: CodeUnknownRoute,
				Msg: fmt.Sprintf("no API at %s %s", r.Method, r.URL.Path)}
		})
	})
	return mux
}

// call is the context of one API request.
type call struct {
	r         *http.Request
	requestID string
	projectID string
	body      []byte
	caller    *auth.Caller
	project   *store.Project
}

func (s *Server) taskEndpoint(w http.ResponseWriter, r *http.Request) {
	type route struct {
		name   string
		action string
		fn     func(*call) (int, any, error)
	}
	routes := map[string]route{
		http.MethodPost:   {"create", auth.ActionCreate, s.create},
		http.MethodGet:    {"list", auth.ActionList, s.list},
		http.MethodPut:    {"modify", auth.ActionModify, s.modify},
		http.MethodDelete: {"delete", auth.ActionDelete, s.delete},
	}
	rt, ok := routes[r.Method]
	if !ok {
		s.serve(w, r, "unknown", "", func(*call) (int, any, error) {
			w.Header().Set("Allow", "GET, POST, PUT, DELETE")
			return 0, nil, &apiError{Status: http.StatusMethodNotAllowed, Code: CodeBadMethod,
				Msg: fmt.Sprintf("method %s is not allowed here (use GET, POST, PUT or DELETE)", r.Method)}
		})
		return
	}
	s.serve(w, r, rt.name, rt.action, rt.fn)
}

// serve runs one API call: request ID, body, authentication, the handler,
// the response or the error shape, metrics and the access log.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, name, action string, fn func(*call) (int, any, error)) {
	start := time.Now()
	c := &call{r: r, requestID: uuid.NewString(), projectID: r.PathValue("project_id")}
	w.Header().Set("X-Request-Id", c.requestID)

	status, body, err := s.run(c, action, fn)
	if err != nil {
		ae := toAPIError(err)
		status = ae.Status
		body = errorBody{ErrorCode: ae.Code, ErrorMsg: ae.Msg, RequestID: c.requestID}
		if ae.Status >= 500 {
			s.Logger.Error("api call failed", "call", name, "request_id", c.requestID, "err", ae.cause)
		} else if ae.cause != nil {
			s.Logger.Info("api call refused", "call", name, "request_id", c.requestID, "status", status, "reason", ae.cause.Error())
		}
	}
	writeJSON(w, status, body)

	if s.Metrics != nil {
		s.Metrics.APIRequests.WithLabelValues(name, strconv.Itoa(status)).Inc()
		s.Metrics.APILatency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
	s.Logger.Debug("api", "call", name, "request_id", c.requestID, "status", status, "duration", time.Since(start))
}

func (s *Server) run(c *call, action string, fn func(*call) (int, any, error)) (int, any, error) {
	if action != "" {
		body, err := io.ReadAll(http.MaxBytesReader(nil, c.r.Body, maxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return 0, nil, err
			}
			return 0, nil, badRequest("could not read the request body: %v", err)
		}
		c.body = body
		// The one place where a request's caller and project are decided.
		caller, err := s.Auth.Authorize(c.r.Context(), c.r, body, c.projectID, action)
		if err != nil {
			return 0, nil, err
		}
		c.caller = caller
		p, err := s.Store.GetProject(c.r.Context(), c.projectID)
		if err != nil {
			if errors.Is(err, store.ErrProjectNotFound) || errors.Is(err, store.ErrNotFound) {
				// Never reveal whether a project exists.
				return 0, nil, fmt.Errorf("project %q: %w", c.projectID, auth.ErrForbidden)
			}
			return 0, nil, err
		}
		c.project = p
	}
	status, body, err := fn(c)
	if err != nil {
		return 0, nil, err
	}
	return status, body, nil
}

type idResponse struct {
	TaskID    string `json:"task_id"`
	RequestID string `json:"request_id"`
}

func (s *Server) rules(c *call) *task.Rules {
	return s.Rules(c.project.Region, s.Now())
}

func (s *Server) create(c *call) (int, any, error) {
	req, err := task.DecodeCreate(c.body)
	if err != nil {
		return 0, nil, err
	}
	rules := s.rules(c)
	t, err := rules.NewTask(req)
	if err != nil {
		return 0, nil, err
	}
	if err := s.checkHosts(c.r.Context(), t); err != nil {
		return 0, nil, err
	}
	now := rules.Now
	t.ID = uuid.NewString()
	t.ProjectID = c.projectID
	t.CreateTime = now.UTC().Truncate(time.Millisecond)
	t.UpdateTime = t.CreateTime
	if err := s.Store.CreateTask(c.r.Context(), t, store.CreateLimits{Quota: s.Quota, Now: now}); err != nil {
		if errors.Is(err, store.ErrQuotaExceeded) {
			return 0, nil, badRequest("project %s already has %d tasks, the most allowed (--task-quota)", c.projectID, s.Quota)
		}
		return 0, nil, err
	}
	s.Logger.Info("task created", "task_id", t.ID, "project_id", c.projectID, "request_id", c.requestID)
	s.Scheduler.Changed(t.ID, t)
	return http.StatusOK, idResponse{TaskID: t.ID, RequestID: c.requestID}, nil
}

// checkHosts refuses source, backup, callback and destination URLs whose host
// is, or resolves to, an address in a denied network.
func (s *Server) checkHosts(ctx context.Context, t *task.Task) error {
	check := func(field, u string) error {
		if err := s.Guard.CheckURLHost(ctx, u); err != nil {
			return badRequest("%s: %v", field, err)
		}
		return nil
	}
	for i, u := range t.SourceURLs {
		if err := check(fmt.Sprintf("source_urls[%d]", i), u); err != nil {
			return err
		}
	}
	for i, u := range t.BackupSourceURLs {
		if err := check(fmt.Sprintf("backup_source_urls[%d]", i), u); err != nil {
			return err
		}
	}
	if t.CallbackURL != "" {
		if err := check("callback_url", t.CallbackURL); err != nil {
			return err
		}
	}
	return check("destination", t.Destination)
}

func (s *Server) list(c *call) (int, any, error) {
	q := c.r.URL.Query()
	f := store.ListFilter{ProjectID: c.projectID, TaskID: q.Get("task_id"), Region: q.Get("region"), Limit: 10}
	for _, k := range []string{"task_id", "region", "offset", "limit"} {
		if len(q.Get(k)) > maxQueryValueSize {
			return 0, nil, badRequest("%s is longer than %d characters", k, maxQueryValueSize)
		}
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, nil, badRequest("offset must be an integer >= 0, got %q", v)
		}
		f.Offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return 0, nil, badRequest("limit must be an integer from 1 to 100, got %q", v)
		}
		f.Limit = n
	}
	views, total, err := s.Store.ListTasks(c.r.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	ids := make([]string, len(views))
	for i := range views {
		ids[i] = views[i].Task.ID
	}
	backlog, err := s.Store.EventBacklog(c.r.Context(), ids)
	if err != nil {
		return 0, nil, err
	}
	infos := make([]taskInfo, 0, len(views))
	for i := range views {
		info := newTaskInfo(&views[i])
		b := backlog[views[i].Task.ID]
		info.CallbackPending, info.CallbackGaveUp, info.CallbackLastError = b.Pending, b.GaveUp, b.LastError
		infos = append(infos, info)
	}
	return http.StatusOK, listResponse{TaskInfos: infos, Total: total, RequestID: c.requestID}, nil
}

func (s *Server) modify(c *call) (int, any, error) {
	req, err := task.DecodeModify(c.body)
	if err != nil {
		return 0, nil, err
	}
	// Optimistic concurrency: a modify that raced another is re-applied on
	// the fresh task a few times before giving up with 409.
	for attempt := 0; ; attempt++ {
		cur, err := s.Store.GetTask(c.r.Context(), c.projectID, req.TaskID)
		if err != nil {
			return 0, nil, err
		}
		next, changed, err := s.rules(c).ApplyModify(cur, req)
		if err != nil {
			return 0, nil, err
		}
		if len(changed) == 0 {
			return http.StatusOK, idResponse{TaskID: cur.ID, RequestID: c.requestID}, nil
		}
		if err := s.checkHosts(c.r.Context(), next); err != nil {
			return 0, nil, err
		}
		var ev *store.Event
		if next.IsVOD() {
			ev = callback.NewEvent(next, task.EventResetTaskConfig, false, map[string]any{"changed": changed}, s.Now())
		}
		err = s.Store.UpdateTask(c.r.Context(), next, s.Now(), ev)
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		s.Logger.Info("task modified", "task_id", next.ID, "changed", changed, "request_id", c.requestID)
		s.notifyEvents(ev)
		s.Scheduler.Changed(next.ID, next)
		return http.StatusOK, idResponse{TaskID: next.ID, RequestID: c.requestID}, nil
	}
}

func (s *Server) notifyEvents(ev *store.Event) {
	if ev != nil && s.OnEvents != nil {
		s.OnEvents()
	}
}

func (s *Server) delete(c *call) (int, any, error) {
	id := c.r.URL.Query().Get("task_id")
	if id == "" {
		return 0, nil, badRequest("task_id is required")
	}
	if len(id) > maxQueryValueSize {
		return 0, nil, badRequest("task_id is longer than %d characters", maxQueryValueSize)
	}
	t, err := s.Store.GetTask(c.r.Context(), c.projectID, id)
	if err != nil {
		return 0, nil, err
	}
	if region := c.r.URL.Query().Get("region"); region != "" && region != t.Region {
		return 0, nil, &apiError{Status: http.StatusNotFound, Code: CodeNotFound, Msg: "task not found in region " + strconv.Quote(region)}
	}
	// The deleted task's final TaskExit is stored with the delete: it
	// outlives the task until it is delivered.
	ev := callback.NewEvent(t, task.EventTaskExit, true, map[string]any{
		"reason": task.ExitDeleted, "code": "", "message": "task deleted",
	}, s.Now())
	if err := s.Store.DeleteTask(c.r.Context(), c.projectID, id, ev); err != nil {
		return 0, nil, err
	}
	s.Logger.Info("task deleted", "task_id", id, "request_id", c.requestID)
	s.notifyEvents(ev)
	s.Scheduler.Changed(id, nil)
	return http.StatusOK, idResponse{TaskID: id, RequestID: c.requestID}, nil
}
