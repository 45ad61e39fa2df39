// Package auth decides who is calling and whether they may do what they ask.
// The API calls one Authorizer per request, before any handler logic.
package auth

import (
	"context"
	"errors"
	"net/http"
)

// IAM actions of the relay-task API.
const (
	ActionCreate = "live:stream:createPullTask"
	ActionList   = "live:stream:listPullTask"
	ActionModify = "live:stream:modifyPullTask"
	ActionDelete = "live:stream:deletePullTask"
	ActionAll    = "live:*:*"
)

// Errors an Authorizer returns; the API maps them to 401 and 403 without
// saying which part failed.
var (
	ErrUnauthenticated = errors.New("authentication failed")
	ErrForbidden       = errors.New("permission denied")
)

// Caller is an authenticated principal.
type Caller struct {
	UserID    string
	AccountID string
	AccessKey string
	Root      bool
}

// Authorizer authenticates a request and checks that the caller may perform
// action on projectID. body is the raw request body as received.
type Authorizer interface {
	Authorize(ctx context.Context, r *http.Request, body []byte, projectID, action string) (*Caller, error)
}
