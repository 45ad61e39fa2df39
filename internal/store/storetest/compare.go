package storetest

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// The store keeps times to the millisecond, in UTC, and may return an empty
// slice as nil: values are compared after bringing both sides to that form.
// That got's times are in UTC is checked on their own.

func canonTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

func canonList(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

func checkUTC(t *testing.T, what string, times ...time.Time) {
	t.Helper()
	for _, tm := range times {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s: time %v is in %v, want UTC", what, tm, tm.Location())
		}
	}
}

func canonTask(tk task.Task) task.Task {
	tk.SourceURLs = canonList(tk.SourceURLs)
	tk.BackupSourceURLs = canonList(tk.BackupSourceURLs)
	tk.CallbackEvents = canonList(tk.CallbackEvents)
	tk.StartTime, tk.EndTime = canonTime(tk.StartTime), canonTime(tk.EndTime)
	tk.CreateTime, tk.UpdateTime = canonTime(tk.CreateTime), canonTime(tk.UpdateTime)
	return tk
}

func checkTask(t *testing.T, got, want *task.Task) {
	t.Helper()
	checkUTC(t, "task "+want.ID, got.StartTime, got.EndTime, got.CreateTime, got.UpdateTime)
	checkFields(t, "task "+want.ID, canonTask(*got), canonTask(*want))
}

func canonRunState(rs task.RunState) task.RunState {
	rs.StartedAt, rs.LastHeartbeat = canonTime(rs.StartedAt), canonTime(rs.LastHeartbeat)
	if rs.LastError != nil {
		e := *rs.LastError
		e.At = canonTime(e.At)
		rs.LastError = &e
	}
	return rs
}

func checkRunState(t *testing.T, got, want *task.RunState) {
	t.Helper()
	checkUTC(t, "run state of "+want.TaskID, got.StartedAt, got.LastHeartbeat)
	if got.LastError != nil {
		checkUTC(t, "last error of "+want.TaskID, got.LastError.At)
	}
	checkFields(t, "run state of "+want.TaskID, canonRunState(*got), canonRunState(*want))
}

func checkCredential(t *testing.T, got, want *store.Credential) {
	t.Helper()
	checkUTC(t, "credential "+want.AccessKey, got.CreateTime)
	if !bytes.Equal(got.SecretKey, want.SecretKey) {
		t.Errorf("credential %s: secret key %x, want %x", want.AccessKey, got.SecretKey, want.SecretKey)
	}
	canon := func(c store.Credential) store.Credential {
		c.SecretKey = nil // compared above
		c.ProjectIDs, c.Actions = canonList(c.ProjectIDs), canonList(c.Actions)
		c.CreateTime = canonTime(c.CreateTime)
		return c
	}
	checkFields(t, "credential "+want.AccessKey, canon(*got), canon(*want))
}

// checkFields reports each field of two structs of one type that differs.
func checkFields(t *testing.T, what string, got, want any) {
	t.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s = %s, want %s", what, gv.Type().Field(i).Name, show(g), show(w))
		}
	}
}

func show(v any) string {
	if e, ok := v.(*task.ErrorInfo); ok && e != nil {
		return fmt.Sprintf("&%+v", *e)
	}
	return fmt.Sprintf("%#v", v)
}
