package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/manage/store"
)

// Error codes of the error body (docs/api.md).
const (
	CodeBadRequest       = "bad_request"
	CodeInvalid          = "invalid"
	CodeUnauthorized     = "unauthorized"
	CodeMFARequired      = "mfa_required"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "payload_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeTooManyRequests  = "too_many_requests"
	CodeInternal         = "internal"
)

// Error is an API error; it becomes {"error":{"code","message","field"}}.
type Error struct {
	Status     int
	Code       string
	Message    string
	Field      string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeBadRequest, format, args...)
}

func invalid(field, format string, args ...any) *Error {
	e := errorf(http.StatusUnprocessableEntity, CodeInvalid, format, args...)
	e.Field = field
	return e
}

func unauthorized(format string, args ...any) *Error {
	return errorf(http.StatusUnauthorized, CodeUnauthorized, format, args...)
}

func mfaRequired(format string, args ...any) *Error {
	return errorf(http.StatusUnauthorized, CodeMFARequired, format, args...)
}

func forbidden(format string, args ...any) *Error {
	return errorf(http.StatusForbidden, CodeForbidden, format, args...)
}

func notFound(what string) *Error {
	return errorf(http.StatusNotFound, CodeNotFound, "%s not found", what)
}

func conflict(format string, args ...any) *Error {
	return errorf(http.StatusConflict, CodeConflict, format, args...)
}

// toAPIError maps any error to an *Error. Store errors keep their meaning
// (not found 404, conflict 409, invalid 422 with the field the store named);
// anything else is an internal error whose detail is logged, not shown.
func toAPIError(err error) (*Error, bool) {
	var ae *Error
	if errors.As(err, &ae) {
		return ae, false
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("object"), false
	case errors.Is(err, store.ErrConflict):
		return conflict("an object with the same unique value already exists: choose another name"), false
	case errors.Is(err, store.ErrInvalid):
		return storeInvalid(err), false
	}
	return errorf(http.StatusInternalServerError, CodeInternal, "internal error: see the server log"), true
}

// storeInvalid turns "op: field: message: invalid argument" into a 422 with
// the field.
func storeInvalid(err error) *Error {
	msg := strings.TrimSuffix(err.Error(), ": "+store.ErrInvalid.Error())
	parts := strings.Split(msg, ": ")
	// The field is the part just before the message: the store writes
	// "<op>: <field>: <message>"; take the last part without spaces that is
	// followed by a message.
	for i := len(parts) - 2; i >= 0; i-- {
		p := parts[i]
		if p != "" && !strings.ContainsAny(p, " \t\"") {
			return invalid(p, "%s", strings.Join(parts[i+1:], ": "))
		}
	}
	return invalid("", "%s", msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if v == nil || status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"cannot encode answer"}}`))
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="trellis"`)
	}
	writeJSON(w, e.Status, ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Message, Field: e.Field}})
}
