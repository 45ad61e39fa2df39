package callback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/backoff"
	"github.com/liverelay/liverelay/internal/netguard"
	"github.com/liverelay/liverelay/internal/redact"
	"github.com/liverelay/liverelay/internal/store"
)

// Defaults of Options.
const (
	DefaultTimeout       = 5 * time.Second
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = 10 * time.Minute
	DefaultRetryWindow   = 24 * time.Hour
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultWorkers       = 8
	DefaultPruneInterval = time.Hour
)

const (
	// pollInterval is how often the outbox is read without a Notify: it
	// catches events stored by a producer that did not notify, and by
	// another process on the same store.
	pollInterval = time.Second
	// maxRedirects is how many redirects a callback request follows.
	maxRedirects = 3
	// maxResponseBody is how much of a receiver's answer is read (and
	// discarded); the rest is dropped with the connection.
	maxResponseBody = 64 << 10
	// maxErrorLen bounds the error text stored with an event.
	maxErrorLen = 512
	// storeTimeout bounds one outbox write, which must happen even while
	// Run's context ends (a delivery already made must be recorded).
	storeTimeout = 10 * time.Second
)

// Options configure a Deliverer. Zero durations and counts take the
// defaults above.
type Options struct {
	Store store.Store // required
	// Guard keeps requests out of denied networks at every connection;
	// nil: a Guard with netguard's default denied networks.
	Guard *netguard.Guard
	// ServerKey signs the callbacks of projects without a key of their own;
	// empty: those callbacks go unsigned.
	ServerKey []byte
	// Keyring opens projects' sealed callback keys. Without it, events of a
	// project that has a key fail (they are never sent unsigned).
	Keyring *auth.Keyring
	// Timeout bounds one request, from dialling to the end of the answer:
	// no 2xx within it is a failure, retried.
	Timeout time.Duration
	// BackoffMin and BackoffMax space out the retries of an event:
	// jittered, doubling from BackoffMin, capped at BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// RetryWindow is how long, from the event's Time, an event is retried;
	// the last attempt is made at its end, and a failure then gives it up.
	RetryWindow time.Duration
	// Retention is how long delivered and given-up events are kept.
	Retention time.Duration
	// PruneInterval is how often events older than Retention are deleted.
	PruneInterval time.Duration
	// Workers bounds the requests in flight, each for a different task.
	// Retries may use at most three quarters of them, so fresh events
	// always find a worker while dead receivers are retried.
	Workers int
	// Claims, when set, is the outbox shared by several nodes: events are
	// claimed (as NodeID, for ClaimTTL) before they are sent, so that one
	// node at a time delivers each, and its outcome is written under the
	// claim. Nil: this deliverer is alone on the outbox.
	Claims store.Cluster
	NodeID string
	// ClaimTTL is how long a claim lasts (default: twice Timeout plus the
	// store's write time); a node that dies mid-delivery leaves the event
	// to another after it.
	ClaimTTL time.Duration
	Logger   *slog.Logger
	// Now stamps deliveries, signatures and retry times; the pace of the
	// loop itself follows real timers.
	Now func() time.Time
}

// Deliverer sends the outbox's events to their callback URLs: at least
// once, one request per event, in seq order per task (a task's next event
// waits until the previous one is delivered or given up), and each task
// independently of the others, so that a slow or dead receiver holds back
// only its own tasks' events. It keeps nothing that matters in memory: the
// store says what is due, so a restart resumes where it stopped.
type Deliverer struct {
	opt    Options
	log    *slog.Logger
	client *http.Client
	wake   chan struct{}
}

// NewDeliverer returns a Deliverer; start it with Run.
func NewDeliverer(opt Options) *Deliverer {
	if opt.Store == nil {
		panic("callback: NewDeliverer needs a Store")
	}
	if opt.Guard == nil {
		opt.Guard = netguard.New(nil)
	}
	setDefault(&opt.Timeout, DefaultTimeout)
	setDefault(&opt.BackoffMin, DefaultBackoffMin)
	setDefault(&opt.BackoffMax, DefaultBackoffMax)
	opt.BackoffMax = max(opt.BackoffMax, opt.BackoffMin)
	setDefault(&opt.RetryWindow, DefaultRetryWindow)
	setDefault(&opt.Retention, DefaultRetention)
	setDefault(&opt.PruneInterval, DefaultPruneInterval)
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers
	}
	setDefault(&opt.ClaimTTL, 2*opt.Timeout+storeTimeout)
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Deliverer{
		opt:    opt,
		log:    opt.Logger,
		client: newClient(opt.Guard, opt.Timeout),
		wake:   make(chan struct{}, 1),
	}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// newClient returns the HTTP client of callback requests. Every connection
// goes through the guard, and there is no proxy: a proxy would reach the
// receiver unchecked.
func newClient(guard *netguard.Guard, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            guard.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: maxResponseBody,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        30 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if s := req.URL.Scheme; s != "http" && s != "https" {
				return fmt.Errorf("redirect to scheme %q refused", s)
			}
			return nil // the guard checks the new host when it dials
		},
	}
}

// Notify asks for the outbox to be read soon, after new events were
// stored. It never blocks.
func (d *Deliverer) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// outcome is what a delivery attempt tells the loop.
type outcome struct {
	taskID string
	retry  bool      // the attempt was a retry
	next   time.Time // when the event is due again; zero if it is not
}

// Run delivers events until ctx is done, then cancels the requests in
// flight, waits for them and returns nil. An event whose request was cut
// short stays as it was, and is sent again by the next Run. Run must not
// be called twice at once.
func (d *Deliverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Each attempt reports once, and at most Workers are in flight: the
	// sends never block, even after the loop has stopped reading.
	done := make(chan outcome, d.opt.Workers)
	l := &loop{
		d:          d,
		inFlight:   make(map[string]bool),
		maxRetries: max(1, d.opt.Workers*3/4),
		start: func(ev store.Event) {
			wg.Go(func() { done <- d.attempt(ctx, ev) })
		},
	}

	timer := time.NewTimer(0)
	defer timer.Stop()
	deadline := time.Now()
	wakeAt := func(t time.Time) {
		if t.Before(deadline) {
			deadline = t
			timer.Reset(time.Until(t))
		}
	}
	prune := time.NewTicker(d.opt.PruneInterval)
	defer prune.Stop()
	d.prune(ctx)

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-timer.C:
			deadline = time.Now().Add(pollInterval)
			timer.Reset(pollInterval)
		case o := <-done:
			l.finished(o)
			if !o.next.IsZero() {
				wakeAt(o.next)
			}
		case <-prune.C:
			d.prune(ctx)
			continue
		}
		l.dispatch(ctx)
	}
}

// loop is Run's bookkeeping of the attempts in flight, one per task.
type loop struct {
	d          *Deliverer
	inFlight   map[string]bool // task ID -> the attempt is a retry
	retries    int             // retries in flight
	maxRetries int
	start      func(store.Event)
}

func (l *loop) finished(o outcome) {
	delete(l.inFlight, o.taskID)
	if o.retry {
		l.retries--
	}
}

// dispatch starts the due events of tasks that have no attempt in flight,
// as far as workers are free.
func (l *loop) dispatch(ctx context.Context) {
	workers := l.d.opt.Workers
	if len(l.inFlight) >= workers {
		return
	}
	evs, err := l.due(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.d.log.Error("read due callback events", "err", err)
		}
		return
	}
	for _, ev := range evs {
		if len(l.inFlight) >= workers {
			return
		}
		if _, busy := l.inFlight[ev.TaskID]; busy {
			continue
		}
		retry := ev.Attempts > 0
		if retry && l.retries >= l.maxRetries {
			continue
		}
		l.inFlight[ev.TaskID] = retry
		if retry {
			l.retries++
		}
		l.start(ev)
	}
}

// due returns the events to try now. Alone on the outbox, the due heads of
// every task; those of tasks in flight come back too (they are still
// pending), so it asks for enough to fill every free worker besides them.
// On a shared outbox, the events it claimed: no more than it can start, as
// a claimed event waits for its claim to expire before another node may
// send it.
func (l *loop) due(ctx context.Context) ([]store.Event, error) {
	d := l.d
	now := d.opt.Now()
	if d.opt.Claims == nil {
		return d.opt.Store.DueEvents(ctx, now, 2*d.opt.Workers+len(l.inFlight))
	}
	free := d.opt.Workers - len(l.inFlight)
	claim := store.EventClaim{NodeID: d.opt.NodeID, Now: now, Limit: free, TTL: d.opt.ClaimTTL}
	for id := range l.inFlight {
		claim.SkipTasks = append(claim.SkipTasks, id)
	}
	fresh, err := d.opt.Claims.ClaimDueEvents(ctx, claim)
	if err != nil {
		return nil, err
	}
	claim.Retries, claim.Limit = true, min(free-len(fresh), l.maxRetries-l.retries)
	retries, err := d.opt.Claims.ClaimDueEvents(ctx, claim)
	return append(fresh, retries...), err
}

func (d *Deliverer) prune(ctx context.Context) {
	n, err := d.opt.Store.PruneEvents(ctx, d.opt.Now().Add(-d.opt.Retention))
	switch {
	case err != nil && ctx.Err() == nil:
		d.log.Error("prune callback events", "err", err)
	case n > 0:
		d.log.Debug("pruned callback events", "count", n)
	}
}

// permanentError is a failure that no retry can mend: the event is given up
// at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// attempt sends one event and records the outcome in the store.
func (d *Deliverer) attempt(ctx context.Context, ev store.Event) outcome {
	o := outcome{taskID: ev.TaskID, retry: ev.Attempts > 0}
	err := d.send(ctx, &ev)
	if err != nil && ctx.Err() != nil {
		// Shutting down: not an attempt that counts. On a shared outbox,
		// give the event back, so another node sends it now rather than
		// when the claim expires.
		if d.opt.Claims != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			if err := d.opt.Claims.ReleaseEventClaim(rctx, ev.ID, ev.ClaimToken); err != nil {
				d.log.Warn("release callback event claim", "event_id", ev.ID, "task_id", ev.TaskID, "err", err)
			}
			cancel()
		}
		return o
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	now := d.opt.Now()
	target := redact.URL(ev.CallbackURL)
	if err == nil {
		if err := d.markDelivered(sctx, &ev, now); err != nil {
			// It stays pending and goes out again: at least once.
			d.log.Error("record callback delivery", "event_id", ev.ID, "task_id", ev.TaskID, "err", err)
		}
		return o
	}

	attempts := ev.Attempts + 1
	msg := truncate(redact.Text(err.Error(), ev.CallbackURL), maxErrorLen)
	deadline := ev.Time.Add(d.opt.RetryWindow)
	var perm *permanentError
	gaveUp := errors.As(err, &perm) || !now.Before(deadline)
	next := now
	if !gaveUp {
		next = now.Add(d.retryDelay(attempts))
		if next.After(deadline) {
			next = deadline // one last attempt at the end of the window
		}
	}
	if err := d.markFailed(sctx, &ev, attempts, next, msg, gaveUp); err != nil {
		d.log.Error("record callback failure", "event_id", ev.ID, "task_id", ev.TaskID, "err", err)
	}
	attrs := []any{"event_id", ev.ID, "task_id", ev.TaskID, "seq", ev.Seq, "event", ev.Name,
		"url", target, "attempts", attempts, "err", msg}
	if gaveUp {
		d.log.Error("callback event given up", attrs...)
		return o
	}
	d.log.Warn("callback delivery failed", append(attrs, "next_attempt", next)...)
	o.next = next
	return o
}

// markDelivered records a delivery, under the event's claim when the
// outbox is shared. A claim that ended (another node took the event over)
// is no error worth more than a note: that node sends it again, and the
// receiver sees the event_id twice, as at-least-once allows.
func (d *Deliverer) markDelivered(ctx context.Context, ev *store.Event, at time.Time) error {
	if d.opt.Claims == nil {
		return d.opt.Store.MarkDelivered(ctx, ev.ID, at)
	}
	return d.claimEnded(ev, d.opt.Claims.MarkDeliveredClaimed(ctx, ev.ID, ev.ClaimToken, at))
}

// markFailed is markDelivered for a failed attempt.
func (d *Deliverer) markFailed(ctx context.Context, ev *store.Event, attempts int, next time.Time, msg string, gaveUp bool) error {
	if d.opt.Claims == nil {
		return d.opt.Store.MarkFailed(ctx, ev.ID, attempts, next, msg, gaveUp)
	}
	return d.claimEnded(ev, d.opt.Claims.MarkFailedClaimed(ctx, ev.ID, ev.ClaimToken, attempts, next, msg, gaveUp))
}

func (d *Deliverer) claimEnded(ev *store.Event, err error) error {
	if errors.Is(err, store.ErrLeaseLost) {
		d.log.Info("callback event taken over by another node before its outcome was recorded", "event_id", ev.ID, "task_id", ev.TaskID)
		return nil
	}
	return err
}

// retryDelay is the jittered delay after the given number of failed
// attempts (1 after the first).
func (d *Deliverer) retryDelay(attempts int) time.Duration {
	b := backoff.New(d.opt.BackoffMin, d.opt.BackoffMax)
	var delay time.Duration
	// Past 64 doublings every delay is capped anyway.
	for range min(max(attempts, 1), 64) {
		delay = b.Next()
	}
	return delay
}

// send makes one request for ev; nil means the receiver answered 2xx.
func (d *Deliverer) send(ctx context.Context, ev *store.Event) error {
	target, err := parseCallbackURL(ev.CallbackURL)
	if err != nil {
		return &permanentError{err}
	}
	body, err := bodyWithSeq(ev.Payload, ev.Seq)
	if err != nil {
		return &permanentError{err}
	}
	key, err := d.signingKey(ctx, ev.ProjectID)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return &permanentError{errors.New("invalid callback URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "liverelay")
	req.Header.Set(EventIDHeader, ev.ID)
	if len(key) > 0 {
		req.Header.Set(SignatureHeader, Sign(key, body, d.opt.Now()))
	}

	resp, err := d.client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL, credentials included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("POST %s: %w", redact.URL(ev.CallbackURL), err)
	}
	defer resp.Body.Close()
	// Read a little of the answer, so a short one lets the connection be
	// reused; it has no meaning beyond its status.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: receiver answered %d", redact.URL(ev.CallbackURL), resp.StatusCode)
	}
	return nil
}

// parseCallbackURL reads a stored callback URL; a bare host and path means
// http://, as the API reads it.
func parseCallbackURL(raw string) (*url.URL, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("invalid callback URL") // the parser's error quotes the URL
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("callback URL scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("callback URL has no host")
	}
	return u, nil
}

// signingKey returns the key that signs the project's callbacks: its own
// when it has one, else the server's; nil: unsigned.
func (d *Deliverer) signingKey(ctx context.Context, projectID string) ([]byte, error) {
	p, err := d.opt.Store.GetProject(ctx, projectID)
	if errors.Is(err, store.ErrProjectNotFound) {
		return d.opt.ServerKey, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	if len(p.CallbackKey) == 0 {
		return d.opt.ServerKey, nil
	}
	if d.opt.Keyring == nil {
		return nil, fmt.Errorf("project %s has a callback key and no keyring opens it", projectID)
	}
	key, err := d.opt.Keyring.Open(p.CallbackKey)
	if err != nil {
		return nil, fmt.Errorf("project %s callback key: %w", projectID, err)
	}
	return key, nil
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
