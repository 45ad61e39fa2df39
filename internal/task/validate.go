package task

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Domain is an ingest domain from the operator's --domains file.
type Domain struct {
	Name   string
	Region string
	Ingest string // origin to publish to, like "rtmp://127.0.0.1:1935"
}

// DefaultMaxWindow is the longest end_time - start_time when Rules.MaxWindow
// is zero.
const DefaultMaxWindow = 7 * 24 * time.Hour

// Rules holds the server settings validation needs. Its methods do no I/O
// and read the clock only through Now.
type Rules struct {
	Now time.Time
	// MaxWindow bounds end_time - start_time; zero means DefaultMaxWindow.
	MaxWindow time.Duration
	// Regions lists the regions this server serves; empty means only
	// DefaultRegion.
	Regions []string
	// DefaultRegion is the project's region, used when region is absent.
	DefaultRegion string
	// Domains are the ingest domains by name (looked up case-insensitively,
	// as DNS names are).
	Domains map[string]Domain
	// AllowFileRoots are the clean absolute directories under which file://
	// VOD sources may be; empty means file:// is refused.
	AllowFileRoots []string
	// LiveSourceSchemes are the schemes accepted for PullLivePushLive
	// sources; empty means rtmp and rtmps.
	LiveSourceSchemes []string
	// VODSupported gates source_type PullVodPushLive.
	VODSupported bool
	// VODBackupSupported gates backup_source_type PullVodPushLive.
	VODBackupSupported bool
}

// Limits of the API, in characters.
const (
	maxRegionLen     = 64
	maxDomainLen     = 255
	maxAppNameLen    = 128
	maxStreamNameLen = 512
	maxArgsLen       = 2048
	maxURLLen        = 2048
	maxVODURLs       = 30
	maxBackupURLs    = 30
)

var vodSourceSchemes = []string{"http", "https", "file"}

func (r *Rules) maxWindow() time.Duration {
	if r.MaxWindow > 0 {
		return r.MaxWindow
	}
	return DefaultMaxWindow
}

func (r *Rules) liveSchemes() []string {
	if len(r.LiveSourceSchemes) == 0 {
		return []string{"rtmp", "rtmps"}
	}
	return r.LiveSourceSchemes
}

func (r *Rules) regions() []string {
	if len(r.Regions) == 0 && r.DefaultRegion != "" {
		return []string{r.DefaultRegion}
	}
	return r.Regions
}

func (r *Rules) lookupDomain(name string) (Domain, bool) {
	if d, ok := r.Domains[name]; ok {
		return d, true
	}
	for k, d := range r.Domains {
		if strings.EqualFold(k, name) {
			return d, true
		}
	}
	return Domain{}, false
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func checkLen(field, s string, max int) error {
	if utf8.RuneCountInString(s) > max {
		return fieldErr(field, "%s must be at most %d characters", field, max)
	}
	return nil
}

// NewTask validates a create request against every rule of the API and
// returns the task to store: normalised (times in UTC to the second,
// callback_url with its scheme, callback_events deduplicated in the API's
// order), defaults filled, Destination and DestinationKey resolved, Status
// enable, Generation 1. The caller sets ID, ProjectID and CreateTime.
// The error, when not nil, is a *FieldError.
func (r *Rules) NewTask(req *CreateRequest) (*Task, error) {
	t := &Task{
		Status:         StatusEnable,
		Generation:     1,
		UpdateTime:     r.Now.UTC(),
		VodLoopTime:    LoopForever,
		VodRefreshType: RefreshImmediate,
		CallbackEvents: []string{},
	}
	steps := []func() error{
		func() error { return r.createRegion(t, req.Region) },
		func() error { return r.createSourceType(t, req.SourceType) },
		func() error {
			if err := r.checkSources("source_urls", t.SourceType, req.SourceURLs); err != nil {
				return err
			}
			t.SourceURLs = slices.Clone(req.SourceURLs)
			return nil
		},
		func() error { return r.createDestination(t, req) },
		func() error { return r.createTimes(t, req.StartTime, req.EndTime) },
		func() error { return createVOD(t, req) },
		func() error { return r.createBackup(t, req.BackupSourceType, req.BackupSourceURLs) },
		func() error {
			events, err := normaliseEvents(req.CallbackEvents, t.SourceType)
			t.CallbackEvents = events
			return err
		},
		func() error {
			u, err := normaliseCallbackURL(req.CallbackURL)
			t.CallbackURL = u
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (r *Rules) createRegion(t *Task, region *string) error {
	if region == nil {
		if r.DefaultRegion == "" {
			return fieldErr("region", "region is required (this server has no default region)")
		}
		t.Region = r.DefaultRegion
	} else {
		t.Region = *region
		if n := utf8.RuneCountInString(t.Region); n < 1 || n > maxRegionLen {
			return fieldErr("region", "region must be 1 to %d characters", maxRegionLen)
		}
	}
	if known := r.regions(); !slices.Contains(known, t.Region) {
		return fieldErr("region", "region %q is not served by this server (regions: %s)", t.Region, strings.Join(known, ", "))
	}
	return nil
}

func (r *Rules) createSourceType(t *Task, sourceType string) error {
	switch sourceType {
	case "":
		return fieldErr("source_type", "source_type is required")
	case PullLivePushLive:
	case PullVodPushLive:
		if !r.VODSupported {
			return fieldErr("source_type", "source_type PullVodPushLive is not supported by this server yet")
		}
	default:
		return fieldErr("source_type", "source_type must be %s or %s", PullLivePushLive, PullVodPushLive)
	}
	t.SourceType = sourceType
	return nil
}

// checkSources applies the count rule of the source type, then checks each
// URL. field is "source_urls"; the same rules serve create and modify.
func (r *Rules) checkSources(field, sourceType string, urls []string) error {
	if sourceType == PullLivePushLive {
		if len(urls) != 1 {
			return fieldErr(field, "%s must contain exactly 1 URL for %s", field, PullLivePushLive)
		}
	} else if len(urls) < 1 || len(urls) > maxVODURLs {
		return fieldErr(field, "%s must contain 1 to %d URLs for %s", field, maxVODURLs, PullVodPushLive)
	}
	for i, u := range urls {
		if err := r.checkSourceURL(fmt.Sprintf("%s[%d]", field, i), sourceType, u); err != nil {
			return err
		}
	}
	return nil
}

// createDestination resolves the two destination forms. With destination_url
// and push_args both given, push_args is appended to the URL's query with
// "&" (or "?" when the URL has no query), so a client can keep its stream key
// in either place.
func (r *Rules) createDestination(t *Task, req *CreateRequest) error {
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"domain", req.Domain, maxDomainLen},
		{"app_name", req.AppName, maxAppNameLen},
		{"stream_name", req.StreamName, maxStreamNameLen},
		{"push_args", req.PushArgs, maxArgsLen},
		{"destination_url", req.DestinationURL, maxURLLen},
	} {
		if err := checkLen(f.name, f.value, f.max); err != nil {
			return err
		}
	}
	t.PushArgs = strings.TrimPrefix(req.PushArgs, "?")
	if strings.ContainsFunc(t.PushArgs, isSpaceOrControl) || strings.Contains(t.PushArgs, "#") {
		return fieldErr("push_args", `push_args must not contain "#", spaces or control characters`)
	}

	domainForm := req.Domain != "" || req.AppName != "" || req.StreamName != ""
	switch {
	case req.DestinationURL != "" && domainForm:
		return fieldErr("destination_url", "destination_url cannot be combined with domain, app_name or stream_name")

	case req.DestinationURL != "":
		if err := checkDestinationURL("destination_url", req.DestinationURL); err != nil {
			return err
		}
		t.DestinationURL = req.DestinationURL
		t.Destination = appendQuery(req.DestinationURL, t.PushArgs)

	case domainForm:
		for _, f := range []struct{ name, value string }{
			{"domain", req.Domain}, {"app_name", req.AppName}, {"stream_name", req.StreamName},
		} {
			if f.value == "" {
				return fieldErr(f.name, "%s is required when the destination is given as domain, app_name and stream_name", f.name)
			}
		}
		// The two names become path segments of an RTMP URL, where the
		// last segment is the stream: a "/" or "?" would move that split.
		for _, f := range []struct{ name, value string }{
			{"app_name", req.AppName}, {"stream_name", req.StreamName},
		} {
			if strings.ContainsAny(f.value, "/?#") || strings.ContainsFunc(f.value, isSpaceOrControl) {
				return fieldErr(f.name, `%s must not contain "/", "?", "#", spaces or control characters`, f.name)
			}
		}
		d, ok := r.lookupDomain(req.Domain)
		if !ok {
			return fieldErr("domain", "domain %q is not an ingest domain of this server", req.Domain)
		}
		if d.Region != t.Region {
			return fieldErr("region", "region %q does not match the region of domain %q (%s)", t.Region, req.Domain, d.Region)
		}
		t.Domain, t.AppName, t.StreamName = req.Domain, req.AppName, req.StreamName
		t.Destination = appendQuery(strings.TrimRight(d.Ingest, "/")+"/"+req.AppName+"/"+req.StreamName, t.PushArgs)
		if err := checkDestinationURL("domain", t.Destination); err != nil {
			// The operator's ingest setting is wrong, not the request.
			return fieldErr("domain", "domain %q has no usable ingest URL in this server's configuration", req.Domain)
		}

	default:
		return fieldErr("destination_url", "a destination is required: destination_url, or domain, app_name and stream_name")
	}
	t.DestinationKey = DestinationKey(t.Destination)
	return nil
}

func appendQuery(u, args string) string {
	switch {
	case args == "":
		return u
	case !strings.Contains(u, "?"):
		return u + "?" + args
	case strings.HasSuffix(u, "?") || strings.HasSuffix(u, "&"):
		return u + args
	default:
		return u + "&" + args
	}
}

func (r *Rules) createTimes(t *Task, start, end string) error {
	t.StartTime = r.Now.UTC().Truncate(time.Second)
	if start != "" {
		var err error
		if t.StartTime, err = parseTime("start_time", start); err != nil {
			return err
		}
	}
	t.EndTime = t.StartTime.Add(r.maxWindow())
	if end != "" {
		var err error
		if t.EndTime, err = parseTime("end_time", end); err != nil {
			return err
		}
	}
	return r.checkWindow(t.StartTime, t.EndTime)
}

// parseTime reads the API's time format, "2006-01-02T15:04:05Z", or any
// RFC 3339 time (offset, fraction), and keeps it in UTC to the second.
func parseTime(field, s string) (time.Time, error) {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fieldErr(field, `%s must be a time like "2006-01-02T15:04:05Z" (RFC 3339 with an offset is accepted too)`, field)
	}
	return v.UTC().Truncate(time.Second), nil
}

func (r *Rules) checkWindow(start, end time.Time) error {
	if !end.After(start) {
		return fieldErr("end_time", "end_time must be later than start_time")
	}
	if !end.After(r.Now) {
		return fieldErr("end_time", "end_time must be in the future")
	}
	if end.Sub(start) > r.maxWindow() {
		return fieldErr("end_time", "end_time must be at most %s after start_time", formatWindow(r.maxWindow()))
	}
	return nil
}

func formatWindow(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	switch {
	case d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	default:
		return d.String()
	}
}

// createVOD fills the VOD fields. On a live task any of them sent with a
// value is a 400: the client believes it asked for something it will not
// get. An integer counts as a value even when 0; only null, absence and ""
// do not.
func createVOD(t *Task, req *CreateRequest) error {
	if !t.IsVOD() {
		switch {
		case req.VodLoopTime != nil && *req.VodLoopTime != "":
			return vodOnly("vod_loop_time")
		case req.VodRefreshType != "":
			return vodOnly("vod_refresh_type")
		case req.VodStartVideoIndex != nil:
			return vodOnly("vod_start_video_index")
		case req.VodStartVideoTime != nil:
			return vodOnly("vod_start_video_time")
		}
		return nil
	}
	if req.VodLoopTime != nil {
		n, err := parseLoopTime(*req.VodLoopTime)
		if err != nil {
			return err
		}
		t.VodLoopTime = n
	}
	switch req.VodRefreshType {
	case "", RefreshImmediate:
	case RefreshFromFileStart, RefreshFromBreak:
		return fieldErr("vod_refresh_type", "vod_refresh_type %s is only valid for modify", req.VodRefreshType)
	default:
		return badRefreshType()
	}
	if req.VodStartVideoIndex != nil {
		if err := checkStartIndex(*req.VodStartVideoIndex, len(t.SourceURLs)); err != nil {
			return err
		}
		t.VodStartVideoIndex = int(*req.VodStartVideoIndex)
	}
	if req.VodStartVideoTime != nil {
		if err := checkStartTime(*req.VodStartVideoTime); err != nil {
			return err
		}
		t.VodStartVideoTime = int(*req.VodStartVideoTime)
	}
	return nil
}

func vodOnly(field string) error {
	return fieldErr(field, "%s is only valid when source_type is %s", field, PullVodPushLive)
}

func badRefreshType() error {
	return fieldErr("vod_refresh_type", "vod_refresh_type must be %s, %s or %s", RefreshImmediate, RefreshFromFileStart, RefreshFromBreak)
}

func checkStartIndex(n int64, sources int) error {
	if n < 0 || n >= int64(sources) {
		return fieldErr("vod_start_video_index", "vod_start_video_index must be between 0 and %d (the number of source_urls - 1)", sources-1)
	}
	return nil
}

func checkStartTime(n int64) error {
	if n < 0 || n > maxInt32 {
		return fieldErr("vod_start_video_time", "vod_start_video_time must be between 0 and %d", maxInt32)
	}
	return nil
}

// parseLoopTime reads vod_loop_time: "" and "-1" loop until end_time, a
// decimal N >= 1 plays the list N times. Signs other than that "-1",
// fractions and exponents are refused, not rounded.
func parseLoopTime(s string) (int, error) {
	if s == "" || s == "-1" {
		return LoopForever, nil
	}
	bad := fieldErr("vod_loop_time", `vod_loop_time must be "-1" (loop until end_time) or an integer N >= 1, got %q`, s)
	if strings.ContainsFunc(s, func(c rune) bool { return c < '0' || c > '9' }) {
		return 0, bad
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > maxInt32 {
		return 0, bad
	}
	return int(n), nil
}

// createBackup validates the backup sources. URLs without a type are a live
// backup (the family's only documented backup type); a type without URLs has
// nothing to act on and is stored as no backup, though its value is still
// checked.
func (r *Rules) createBackup(t *Task, backupType string, urls []string) error {
	switch backupType {
	case "", PullLivePushLive:
	case PullVodPushLive:
		if !r.VODBackupSupported {
			return fieldErr("backup_source_type", "backup_source_type PullVodPushLive is not supported by this server yet")
		}
	default:
		return fieldErr("backup_source_type", "backup_source_type must be %s or %s", PullLivePushLive, PullVodPushLive)
	}
	if len(urls) > maxBackupURLs {
		return fieldErr("backup_source_urls", "backup_source_urls must contain at most %d URLs", maxBackupURLs)
	}
	backupType = effectiveBackupType(backupType, urls)
	for i, u := range urls {
		if err := r.checkSourceURL(fmt.Sprintf("backup_source_urls[%d]", i), backupType, u); err != nil {
			return err
		}
	}
	t.BackupSourceType = backupType
	t.BackupSourceURLs = slices.Clone(urls)
	return nil
}

func effectiveBackupType(backupType string, urls []string) string {
	switch {
	case len(urls) == 0:
		return ""
	case backupType == "":
		return PullLivePushLive
	default:
		return backupType
	}
}

// normaliseEvents checks callback_events and returns them deduplicated
// (repeating an event is harmless, so it is not an error) in the order of
// AllEvents. Empty means every event and comes back as an empty slice.
func normaliseEvents(events []string, sourceType string) ([]string, error) {
	for i, e := range events {
		field := fmt.Sprintf("callback_events[%d]", i)
		if !slices.Contains(AllEvents, e) {
			return nil, fieldErr(field, "callback_events: unknown event %q (events: %s)", e, strings.Join(AllEvents, ", "))
		}
		if sourceType != PullVodPushLive && slices.Contains(VODOnlyEvents, e) {
			return nil, fieldErr(field, "callback_events: event %q is only available when source_type is %s", e, PullVodPushLive)
		}
	}
	out := []string{}
	for _, e := range AllEvents {
		if slices.Contains(events, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// ApplyModify checks a modify request against the stored task and returns
// the task as it should be stored next: a copy of cur with the request
// applied, Generation+1 and UpdateTime=Now, whether or not anything changed
// (the caller may skip storing when changed is empty). changed lists, in
// API names, the fields whose values changed. cur is not modified.
//
// The merged task must satisfy the create rules. The time rules (start <
// end, end in the future, the window) are checked only when start_time or
// end_time is sent, so that e.g. pausing a task past its end is not refused
// for a reason the request did not touch. The error, when not nil, is a
// *FieldError.
func (r *Rules) ApplyModify(cur *Task, req *ModifyRequest) (*Task, []string, error) {
	if err := checkFixed(cur, req); err != nil {
		return nil, nil, err
	}
	next := cur.clone()

	if req.Status != nil {
		switch *req.Status {
		case StatusEnable, StatusPause:
			next.Status = *req.Status
		default:
			return nil, nil, fieldErr("status", "status must be %s or %s", StatusPause, StatusEnable)
		}
	}
	if req.SourceURLs != nil {
		if err := r.checkSources("source_urls", cur.SourceType, *req.SourceURLs); err != nil {
			return nil, nil, err
		}
		next.SourceURLs = slices.Clone(*req.SourceURLs)
	}
	if err := modifyVOD(next, req); err != nil {
		return nil, nil, err
	}
	if err := r.modifyTimes(next, req); err != nil {
		return nil, nil, err
	}
	if req.CallbackEvents != nil {
		events, err := normaliseEvents(*req.CallbackEvents, cur.SourceType)
		if err != nil {
			return nil, nil, err
		}
		next.CallbackEvents = events
	}

	next.Generation++
	next.UpdateTime = r.Now.UTC()
	return next, changedFields(cur, next), nil
}

// checkFixed refuses a change to a field that is fixed at create. Values
// are compared as create would have normalised them, so a client can send
// back exactly what it created the task with.
func checkFixed(cur *Task, req *ModifyRequest) error {
	for _, f := range []struct {
		name   string
		sent   *string
		stored string
		equal  func(sent, stored string) bool
	}{
		{"region", req.Region, cur.Region, nil},
		{"source_type", req.SourceType, cur.SourceType, nil},
		{"destination_url", req.DestinationURL, cur.DestinationURL, nil},
		{"domain", req.Domain, cur.Domain, strings.EqualFold},
		{"app_name", req.AppName, cur.AppName, nil},
		{"stream_name", req.StreamName, cur.StreamName, nil},
		{"push_args", req.PushArgs, cur.PushArgs, func(sent, stored string) bool {
			return strings.TrimPrefix(sent, "?") == stored
		}},
		{"callback_url", req.CallbackURL, cur.CallbackURL, func(sent, stored string) bool {
			u, err := normaliseCallbackURL(sent)
			return err == nil && u == stored
		}},
	} {
		if f.sent == nil {
			continue
		}
		same := *f.sent == f.stored
		if f.equal != nil {
			same = f.equal(*f.sent, f.stored)
		}
		if !same {
			return fieldErr(f.name, "%s cannot be changed", f.name)
		}
	}

	if req.BackupSourceType != nil || req.BackupSourceURLs != nil {
		backupType, urls := cur.BackupSourceType, cur.BackupSourceURLs
		if req.BackupSourceType != nil {
			backupType = *req.BackupSourceType
		}
		if req.BackupSourceURLs != nil {
			urls = *req.BackupSourceURLs
		}
		if !slices.Equal(urls, cur.BackupSourceURLs) {
			return fieldErr("backup_source_urls", "backup_source_urls cannot be changed")
		}
		if effectiveBackupType(backupType, urls) != cur.BackupSourceType {
			return fieldErr("backup_source_type", "backup_source_type cannot be changed")
		}
	}
	return nil
}

// modifyVOD applies the VOD fields. All three refresh types are accepted
// here; continue_* only changes anything together with new source_urls, and
// the runtime reads it then. The start index is checked against the merged
// source list, so shrinking the list below a stored index needs a new index.
func modifyVOD(next *Task, req *ModifyRequest) error {
	if !next.IsVOD() {
		switch {
		case req.VodLoopTime != nil && *req.VodLoopTime != "":
			return vodOnly("vod_loop_time")
		case req.VodRefreshType != nil && *req.VodRefreshType != "":
			return vodOnly("vod_refresh_type")
		case req.VodStartVideoIndex != nil:
			return vodOnly("vod_start_video_index")
		case req.VodStartVideoTime != nil:
			return vodOnly("vod_start_video_time")
		}
		return nil
	}
	if req.VodLoopTime != nil && *req.VodLoopTime != "" {
		n, err := parseLoopTime(*req.VodLoopTime)
		if err != nil {
			return err
		}
		next.VodLoopTime = n
	}
	if req.VodRefreshType != nil && *req.VodRefreshType != "" {
		switch *req.VodRefreshType {
		case RefreshImmediate, RefreshFromFileStart, RefreshFromBreak:
			next.VodRefreshType = *req.VodRefreshType
		default:
			return badRefreshType()
		}
	}
	index := int64(next.VodStartVideoIndex)
	if req.VodStartVideoIndex != nil {
		index = *req.VodStartVideoIndex
	}
	if err := checkStartIndex(index, len(next.SourceURLs)); err != nil {
		return err
	}
	next.VodStartVideoIndex = int(index)
	if req.VodStartVideoTime != nil {
		if err := checkStartTime(*req.VodStartVideoTime); err != nil {
			return err
		}
		next.VodStartVideoTime = int(*req.VodStartVideoTime)
	}
	return nil
}

func (r *Rules) modifyTimes(next *Task, req *ModifyRequest) error {
	sent := false
	for _, f := range []struct {
		name string
		sent *string
		dst  *time.Time
	}{
		{"start_time", req.StartTime, &next.StartTime},
		{"end_time", req.EndTime, &next.EndTime},
	} {
		if f.sent == nil || *f.sent == "" {
			continue
		}
		v, err := parseTime(f.name, *f.sent)
		if err != nil {
			return err
		}
		*f.dst = v
		sent = true
	}
	if !sent {
		return nil
	}
	return r.checkWindow(next.StartTime, next.EndTime)
}

func changedFields(cur, next *Task) []string {
	changed := []string{}
	add := func(name string, differs bool) {
		if differs {
			changed = append(changed, name)
		}
	}
	add("status", cur.Status != next.Status)
	add("source_urls", !slices.Equal(cur.SourceURLs, next.SourceURLs))
	add("vod_loop_time", cur.VodLoopTime != next.VodLoopTime)
	add("vod_refresh_type", cur.VodRefreshType != next.VodRefreshType)
	add("vod_start_video_index", cur.VodStartVideoIndex != next.VodStartVideoIndex)
	add("vod_start_video_time", cur.VodStartVideoTime != next.VodStartVideoTime)
	add("start_time", !cur.StartTime.Equal(next.StartTime))
	add("end_time", !cur.EndTime.Equal(next.EndTime))
	add("callback_events", !slices.Equal(cur.CallbackEvents, next.CallbackEvents))
	return changed
}

func (t *Task) clone() *Task {
	c := *t
	c.SourceURLs = slices.Clone(t.SourceURLs)
	c.BackupSourceURLs = slices.Clone(t.BackupSourceURLs)
	c.CallbackEvents = slices.Clone(t.CallbackEvents)
	return &c
}
