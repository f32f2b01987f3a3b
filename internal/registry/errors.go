package registry

import (
	"errors"
	"fmt"
)

// Code is the stable, machine-readable error code that clients switch on. Each
// code maps to exactly one HTTP status and problem type in the transport layer.
type Code string

// The error codes of the API. The registry produces the domain codes; the
// transport produces not_found, method_not_allowed and payload_too_large.
const (
	CodeInvalidIdentifier    Code = "invalid_identifier"
	CodeInvalidRequest       Code = "invalid_request"
	CodeUnknownRuntime       Code = "unknown_runtime"
	CodeUnknownHost          Code = "unknown_host"
	CodeUnknownWorker        Code = "unknown_worker"
	CodeWorkerNotVisible     Code = "worker_not_visible"
	CodeRuntimeUnavailable   Code = "runtime_unavailable"
	CodeOperationUnsupported Code = "operation_unsupported"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeInternal             Code = "internal"

	// Added in release 1 of the contract.
	CodeUnauthenticated      Code = "unauthenticated"
	CodeCrossOriginRejected  Code = "cross_origin_rejected"
	CodeMisdirectedRequest   Code = "misdirected_request"
	CodeWorkerNotRunning     Code = "worker_not_running"
	CodeWorkerBusy           Code = "worker_busy"
	CodeRuntimeAtCapacity    Code = "runtime_at_capacity"
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	CodeTooManyStreams       Code = "too_many_streams"
)

// Error is the registry's one error type. Its Detail is safe to show a browser:
// it never holds a path, socket, session or token. Cause may hold anything (an
// os error with a path, say) and is for logs only; it is never shown.
type Error struct {
	Code      Code
	RuntimeID RuntimeID
	WorkerID  WorkerID
	HostID    HostID
	// Field names the parameter or body field that was wrong, if any.
	Field string
	// Detail is a human-readable, browser-safe explanation.
	Detail string
	// Cause is the underlying error, for logs only.
	Cause error
}

// Error returns the code and the safe detail; it deliberately leaves Cause out
// so that the text can never leak a path by accident.
func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Detail
}

// Unwrap returns the cause, so errors.Is/As can see through to it in logs.
func (e *Error) Unwrap() error { return e.Cause }

// Is makes errors.Is(err, ErrUnknownWorker) and the like match any *Error with
// the same code, whatever ids it carries.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && t.RuntimeID == "" && t.WorkerID == "" && t.HostID == "" && t.Field == ""
}

// Sentinels for errors.Is. Each matches every *Error of its code.
var (
	ErrInvalidIdentifier    = &Error{Code: CodeInvalidIdentifier}
	ErrInvalidRequest       = &Error{Code: CodeInvalidRequest}
	ErrUnknownRuntime       = &Error{Code: CodeUnknownRuntime}
	ErrUnknownHost          = &Error{Code: CodeUnknownHost}
	ErrUnknownWorker        = &Error{Code: CodeUnknownWorker}
	ErrWorkerNotVisible     = &Error{Code: CodeWorkerNotVisible}
	ErrRuntimeUnavailable   = &Error{Code: CodeRuntimeUnavailable}
	ErrOperationUnsupported = &Error{Code: CodeOperationUnsupported}
	ErrInternal             = &Error{Code: CodeInternal}
	ErrWorkerNotRunning     = &Error{Code: CodeWorkerNotRunning}
	ErrWorkerBusy           = &Error{Code: CodeWorkerBusy}
	ErrRuntimeAtCapacity    = &Error{Code: CodeRuntimeAtCapacity}
	ErrIdempotencyKeyReused = &Error{Code: CodeIdempotencyKeyReused}
	ErrTooManyStreams       = &Error{Code: CodeTooManyStreams}
)

// ErrorCode returns the code of err: the Code of the first *Error in its chain,
// or CodeInternal for anything else (nil has no code and returns "").
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// InvalidRequest reports a request that is well-formed HTTP but asks for
// something invalid: field names what was wrong, detail says why (browser-safe).
func InvalidRequest(field, detail string) *Error {
	return &Error{Code: CodeInvalidRequest, Field: field, Detail: detail}
}

// UnknownRuntime reports that no registered Runtime has id.
func UnknownRuntime(id RuntimeID) *Error {
	return &Error{Code: CodeUnknownRuntime, RuntimeID: id, Detail: "No runtime is registered with this runtime_id."}
}

// UnknownHost reports that no Runtime reports a host with id.
func UnknownHost(id HostID) *Error {
	return &Error{Code: CodeUnknownHost, HostID: id, Detail: "No runtime reports a host with this host_id."}
}

// UnknownWorker reports that the Runtime exists but has no Worker ref.WorkerID.
func UnknownWorker(ref WorkerRef) *Error {
	return &Error{Code: CodeUnknownWorker, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID, Detail: "The runtime has no worker with this worker_id."}
}

// WorkerNotVisible reports that the Worker exists but workspace visibility or
// policy hides it from this caller.
func WorkerNotVisible(ref WorkerRef) *Error {
	return &Error{Code: CodeWorkerNotVisible, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID, Detail: "The worker exists but is not visible in this workspace."}
}

// RuntimeUnavailable reports that a Runtime cannot answer now. reason must be
// browser-safe; cause is logged only.
func RuntimeUnavailable(id RuntimeID, reason string, cause error) *Error {
	if reason == "" {
		reason = "The runtime cannot answer now."
	}
	return &Error{Code: CodeRuntimeUnavailable, RuntimeID: id, Detail: reason, Cause: cause}
}

// OperationUnsupported reports that the Runtime does not support operation.
func OperationUnsupported(id RuntimeID, operation Operation) *Error {
	return &Error{Code: CodeOperationUnsupported, RuntimeID: id, Detail: fmt.Sprintf("The runtime does not support the %s operation.", operation)}
}

// WorkerNotRunning reports input to a Worker that is not active.
func WorkerNotRunning(ref WorkerRef) *Error {
	return &Error{Code: CodeWorkerNotRunning, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID, Detail: "The worker is not running, so it cannot take input."}
}

// WorkerBusy reports input to a Worker whose input queue is full.
func WorkerBusy(ref WorkerRef) *Error {
	return &Error{Code: CodeWorkerBusy, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID, Detail: "The worker's input queue is full; try again later."}
}

// RuntimeAtCapacity reports a create on a Runtime that already runs as many
// live Workers as it may.
func RuntimeAtCapacity(id RuntimeID) *Error {
	return &Error{Code: CodeRuntimeAtCapacity, RuntimeID: id, Detail: "The runtime already runs as many workers as it may."}
}

// IdempotencyKeyReused reports an Idempotency-Key sent again with another
// request.
func IdempotencyKeyReused(id RuntimeID) *Error {
	return &Error{Code: CodeIdempotencyKeyReused, RuntimeID: id, Field: "Idempotency-Key", Detail: "This Idempotency-Key was already used with a different request."}
}

// TooManyStreams reports that the event stream limit is reached.
func TooManyStreams() *Error {
	return &Error{Code: CodeTooManyStreams, Detail: "Too many event streams are open; try again later."}
}
