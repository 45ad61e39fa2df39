package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// FieldError is a request the API must answer with 400. Field is the JSON
// path of the offending field ("source_urls[2]"), or "" when the body as a
// whole is at fault; Msg names the field and the rule, and is what the client
// reads in error_msg.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }

// CreateRequest is a create body as the client sent it: decoded, not yet
// validated (see Rules.NewTask). Pointer fields are nil when the field was
// absent or null, for the fields where that differs from the zero value.
type CreateRequest struct {
	Region             *string // "" is a 400 (1-64 chars); nil means the project's region
	SourceType         string
	SourceURLs         []string
	Domain             string
	AppName            string
	StreamName         string
	PushArgs           string
	DestinationURL     string
	StartTime          string
	EndTime            string
	VodLoopTime        *string // the JSON string, or the literal text of a JSON number
	VodRefreshType     string
	VodStartVideoIndex *int64
	VodStartVideoTime  *int64
	BackupSourceType   string
	BackupSourceURLs   []string
	CallbackEvents     []string
	CallbackURL        string
}

// ModifyRequest is a modify body as the client sent it. Every field but
// TaskID is nil when absent or null, meaning "keep the stored value".
type ModifyRequest struct {
	TaskID string

	Status             *string
	SourceURLs         *[]string
	VodLoopTime        *string // as in CreateRequest; "" keeps the stored value
	VodRefreshType     *string // "" keeps the stored value
	VodStartVideoIndex *int64
	VodStartVideoTime  *int64
	StartTime          *string // "" keeps the stored value
	EndTime            *string // "" keeps the stored value
	CallbackEvents     *[]string

	// Fixed at create: accepted only when equal to the stored value, so a
	// client may send back the whole task it read.
	Region           *string
	SourceType       *string
	Domain           *string
	AppName          *string
	StreamName       *string
	PushArgs         *string
	DestinationURL   *string
	BackupSourceType *string
	BackupSourceURLs *[]string
	CallbackURL      *string
}

// maxInt32 bounds the API's integer fields (its documented range).
const maxInt32 = 1<<31 - 1

// DecodeCreate decodes a create body. Unknown fields are ignored and null is
// the same as absent; a body that is not a JSON object, or a known field of
// the wrong JSON type, is a *FieldError.
func DecodeCreate(body []byte) (*CreateRequest, error) {
	b, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	req := &CreateRequest{
		Region:             b.str("region"),
		SourceType:         deref(b.str("source_type")),
		SourceURLs:         derefSlice(b.strs("source_urls")),
		Domain:             deref(b.str("domain")),
		AppName:            deref(b.str("app_name")),
		StreamName:         deref(b.str("stream_name")),
		PushArgs:           deref(b.str("push_args")),
		DestinationURL:     deref(b.str("destination_url")),
		StartTime:          deref(b.str("start_time")),
		EndTime:            deref(b.str("end_time")),
		VodLoopTime:        b.loopTime("vod_loop_time"),
		VodRefreshType:     deref(b.str("vod_refresh_type")),
		VodStartVideoIndex: b.integer("vod_start_video_index"),
		VodStartVideoTime:  b.integer("vod_start_video_time"),
		BackupSourceType:   deref(b.str("backup_source_type")),
		BackupSourceURLs:   derefSlice(b.strs("backup_source_urls")),
		CallbackEvents:     derefSlice(b.strs("callback_events")),
		CallbackURL:        deref(b.str("callback_url")),
	}
	if b.err != nil {
		return nil, b.err
	}
	return req, nil
}

// DecodeModify decodes a modify body, with the same leniency as DecodeCreate.
// task_id is required here, since the caller needs it to load the task that
// Rules.ApplyModify then checks the rest against.
func DecodeModify(body []byte) (*ModifyRequest, error) {
	b, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	req := &ModifyRequest{
		TaskID:             deref(b.str("task_id")),
		Status:             b.str("status"),
		SourceURLs:         b.strs("source_urls"),
		VodLoopTime:        b.loopTime("vod_loop_time"),
		VodRefreshType:     b.str("vod_refresh_type"),
		VodStartVideoIndex: b.integer("vod_start_video_index"),
		VodStartVideoTime:  b.integer("vod_start_video_time"),
		StartTime:          b.str("start_time"),
		EndTime:            b.str("end_time"),
		CallbackEvents:     b.strs("callback_events"),
		Region:             b.str("region"),
		SourceType:         b.str("source_type"),
		Domain:             b.str("domain"),
		AppName:            b.str("app_name"),
		StreamName:         b.str("stream_name"),
		PushArgs:           b.str("push_args"),
		DestinationURL:     b.str("destination_url"),
		BackupSourceType:   b.str("backup_source_type"),
		BackupSourceURLs:   b.strs("backup_source_urls"),
		CallbackURL:        b.str("callback_url"),
	}
	if b.err != nil {
		return nil, b.err
	}
	if req.TaskID == "" {
		return nil, &FieldError{Field: "task_id", Msg: "task_id is required"}
	}
	return req, nil
}

// object is a JSON object being decoded field by field. Decoding each field
// on its own, rather than into a tagged struct, gives exact per-field type
// errors, tells null from absent, and keeps numbers as their literal text.
type object struct {
	fields map[string]json.RawMessage
	err    *FieldError // the first error met; later reads are no-ops
}

func parseObject(body []byte) (*object, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, &FieldError{Msg: "request body must be a JSON object"}
		}
		return nil, &FieldError{Msg: "request body is not valid JSON: " + err.Error()}
	}
	if fields == nil { // the body was `null`
		return nil, &FieldError{Msg: "request body must be a JSON object"}
	}
	return &object{fields: fields}, nil
}

func (o *object) fail(field, msg string) {
	if o.err == nil {
		o.err = &FieldError{Field: field, Msg: msg}
	}
}

// raw returns the field's JSON value, or false when it is absent or null
// (or an earlier field already failed).
func (o *object) raw(name string) (json.RawMessage, bool) {
	if o.err != nil {
		return nil, false
	}
	v, ok := o.fields[name]
	if !ok {
		return nil, false
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return nil, false
	}
	return v, true
}

func (o *object) str(name string) *string {
	v, ok := o.raw(name)
	if !ok {
		return nil
	}
	s, ok := jsonString(v)
	if !ok {
		o.fail(name, name+" must be a string")
		return nil
	}
	return &s
}

func (o *object) strs(name string) *[]string {
	v, ok := o.raw(name)
	if !ok {
		return nil
	}
	var elems []json.RawMessage
	if v[0] != '[' || json.Unmarshal(v, &elems) != nil {
		o.fail(name, name+" must be an array of strings")
		return nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		s, ok := jsonString(bytes.TrimSpace(e))
		if !ok {
			o.fail(name+"["+strconv.Itoa(i)+"]", name+" must be an array of strings")
			return nil
		}
		out[i] = s
	}
	return &out
}

// integer accepts a JSON number written as an integer: 1.5, 1e3 and "1" are
// refused rather than rounded or coerced.
func (o *object) integer(name string) *int64 {
	v, ok := o.raw(name)
	if !ok {
		return nil
	}
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		o.fail(name, name+" must be an integer")
		return nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			o.fail(name, name+" must be between 0 and "+strconv.Itoa(maxInt32))
		} else {
			o.fail(name, name+" must be an integer")
		}
		return nil
	}
	return &n
}

// loopTime accepts vod_loop_time as the API documents it (a string) or as a
// JSON number, which some clients send; either way its text is kept for
// parseLoopTime.
func (o *object) loopTime(name string) *string {
	v, ok := o.raw(name)
	if !ok {
		return nil
	}
	if s, ok := jsonString(v); ok {
		return &s
	}
	if v[0] == '-' || (v[0] >= '0' && v[0] <= '9') {
		s := string(v)
		return &s
	}
	o.fail(name, name+" must be a string or a number")
	return nil
}

func jsonString(v json.RawMessage) (string, bool) {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefSlice(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}
