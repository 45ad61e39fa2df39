package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// Error codes of the API's error shape. The 400 code is the one the cloud
// service uses for an illegal request; the gateway codes are its 401 and 403.
const (
	CodeBadRequest    = "LIVE.100011001"
	CodeNotFound      = "LIVE.100011004"
	CodeConflict      = "LIVE.100011009"
	CodeTooLarge      = "LIVE.100011013"
	CodeBadMethod     = "LIVE.100011005"
	CodeInternal      = "LIVE.100000500"
	CodeUnauthorized  = "APIGW.0301"
	CodeForbidden     = "APIGW.0302"
	CodeUnknownRoute  = "APIGW.0101"
	CodeUnavailable   = "LIVE.100000503"
	maxBodyBytes      = 1 << 20
	maxQueryValueSize = 512
)

// apiError is the one error shape every failure becomes, at one place.
type apiError struct {
	Status int
	Code   string
	Msg    string
	// cause is logged, never returned to the caller.
	cause error
}

func (e *apiError) Error() string { return e.Msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: CodeBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// toAPIError maps any error of the task, store or auth layers to the API
// error it stands for. Unknown errors are internal and say nothing more.
func toAPIError(err error) *apiError {
	var ae *apiError
	var fe *task.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		return &apiError{Status: http.StatusBadRequest, Code: CodeBadRequest, Msg: fe.Error()}
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
			Msg: fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes)}
	case errors.Is(err, auth.ErrUnauthenticated):
		return &apiError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Msg: "authentication failed", cause: err}
	case errors.Is(err, auth.ErrForbidden):
		return &apiError{Status: http.StatusForbidden, Code: CodeForbidden, Msg: "permission denied", cause: err}
	case errors.Is(err, store.ErrQuotaExceeded):
		return &apiError{Status: http.StatusBadRequest, Code: CodeBadRequest, Msg: err.Error()}
	case errors.Is(err, store.ErrDestinationInUse):
		return &apiError{Status: http.StatusBadRequest, Code: CodeBadRequest,
			Msg: "destination is already used by another enabled task that has not finished"}
	case errors.Is(err, store.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: CodeNotFound, Msg: "task not found"}
	case errors.Is(err, store.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: CodeConflict,
			Msg: "the task was changed by another request at the same time; retry"}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: CodeInternal, Msg: "internal error", cause: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Compact, as the cloud API answers: indenting a page of 100 tasks
	// cost a quarter of the list call (pipe through jq to read it).
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
	RequestID string `json:"request_id"`
}
