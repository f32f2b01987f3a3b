package workerruntime

import "errors"

// Code is a browser-safe error code.
type Code string

// The error codes.
const (
	CodeInvalidRequest       Code = "invalid_request"
	CodeUnknownWorker        Code = "unknown_worker"
	CodeWorkerNotRunning     Code = "worker_not_running"
	CodeWorkerBusy           Code = "worker_busy"
	CodeRuntimeAtCapacity    Code = "runtime_at_capacity"
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	CodeRuntimeUnavailable   Code = "runtime_unavailable" // closed / shutting down / store failing
	CodeInternal             Code = "internal"
)

// Error is the domain's typed error. Detail is browser-safe; Cause is for
// logs only and may carry an os error's text.
type Error struct {
	Code   Code
	Field  string // invalid_request: the field ("profile", "content", "limit", "cursor", "kind", "mode", ...)
	Detail string // browser-safe, never a path/os error text
	Cause  error  // logs only
}

// Error returns the code and the browser-safe detail (never the cause).
func (e *Error) Error() string {
	s := string(e.Code)
	if e.Field != "" {
		s += " (" + e.Field + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the cause, for errors.Is/As on it.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches the sentinels (and any *Error) by Code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) && t != nil {
		return t.Code == e.Code
	}
	return false
}

// Sentinels for errors.Is: each matches every *Error of its code.
var (
	ErrUnknownWorker        error = &Error{Code: CodeUnknownWorker, Detail: "no such worker"}
	ErrWorkerNotRunning     error = &Error{Code: CodeWorkerNotRunning, Detail: "the worker is not running"}
	ErrWorkerBusy           error = &Error{Code: CodeWorkerBusy, Detail: "the worker's input queue is full"}
	ErrRuntimeAtCapacity    error = &Error{Code: CodeRuntimeAtCapacity, Detail: "the runtime runs its maximum number of workers"}
	ErrIdempotencyKeyReused error = &Error{Code: CodeIdempotencyKeyReused, Detail: "the idempotency key was used for a different request"}
	ErrInvalidRequest       error = &Error{Code: CodeInvalidRequest, Detail: "invalid request"}
	ErrRuntimeUnavailable   error = &Error{Code: CodeRuntimeUnavailable, Detail: "the runtime is unavailable"}
)

// Subscription ends.
var (
	// ErrLagged ends a subscription whose buffer filled up: reconnect with the last cursor.
	ErrLagged = errors.New("workerruntime: subscriber lagged")
	// ErrClosed ends a subscription closed by its owner or by the Runtime.
	ErrClosed = errors.New("workerruntime: subscription closed")
)

// CodeOf returns the Code of a domain error, CodeInternal for anything else.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.Code
	}
	return CodeInternal
}

func invalid(field, detail string) *Error {
	return &Error{Code: CodeInvalidRequest, Field: field, Detail: detail}
}

func errCode(code Code, detail string, cause error) *Error {
	return &Error{Code: code, Detail: detail, Cause: cause}
}
