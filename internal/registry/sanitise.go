package registry

import (
	"context"
	"errors"
	"log/slog"

	"github.com/workspace-backend/runtime-registry/internal/errchain"
)

// route is what the registry routed a call by: the only ids an error about
// the call may carry.
type route struct {
	runtime RuntimeID
	worker  WorkerID
	host    HostID
	op      Operation
}

// sourceFields are the request fields a Source's invalid_request may name,
// each with the registry's own text for it.
var sourceFields = map[string]string{
	"profile":          "The runtime has no profile with this name.",
	"intent":           "The runtime cannot create a worker for this intent.",
	"intent.kind":      "The runtime does not support this intent kind.",
	"intent.purpose":   "The runtime rejected the intent's purpose.",
	"intent.objective": "The runtime rejected the intent's objective.",
	"intent.role":      "The runtime rejected the intent's role.",
	"worker_name":      "The runtime rejected the worker name.",
	"kind":             "The runtime does not accept this kind of input.",
	"content":          "The runtime rejected the input's content.",
	"mode":             "The runtime does not support this stop mode.",
	"limit":            "The runtime rejected the limit.",
	"after":            "The runtime rejected the after position.",
	"cursor":           "The cursor is not valid for this runtime; start again without one.",
}

// errSourceFailed is the only cause an internal error from a Source keeps:
// the Source's own error may carry anything (addresses, tokens), so it is
// logged by type here and dropped.
var errSourceFailed = errors.New("registry: runtime source failed")

// sanitise turns a Source's error into the registry's own: only the domain
// codes a Source may produce pass, with the routed ids and the registry's
// fixed text for the code; the Source's text, ids, field and cause never
// leave. Anything else (a transport code, an unknown code, an untyped error)
// becomes internal, logged by type only. Conditions of the whole Runtime
// (runtime_unavailable, operation_unsupported, runtime_at_capacity) carry the
// runtime_id alone, as the registry's own errors do.
func (r *Registry) sanitise(err error, rt route) error {
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) {
		return r.internal(err, rt, "")
	}
	ref := WorkerRef{RuntimeID: rt.runtime, WorkerID: rt.worker}
	var out *Error
	switch e.Code {
	case CodeUnknownWorker:
		out = UnknownWorker(ref)
	case CodeWorkerNotVisible:
		out = WorkerNotVisible(ref)
	case CodeRuntimeUnavailable:
		out = RuntimeUnavailable(rt.runtime, "", nil)
	case CodeOperationUnsupported:
		out = OperationUnsupported(rt.runtime, rt.op)
	case CodeWorkerNotRunning:
		out = WorkerNotRunning(ref)
	case CodeWorkerBusy:
		out = WorkerBusy(ref)
	case CodeRuntimeAtCapacity:
		out = RuntimeAtCapacity(rt.runtime)
	case CodeIdempotencyKeyReused:
		out = IdempotencyKeyReused(rt.runtime)
	case CodeInvalidRequest:
		out = &Error{Code: CodeInvalidRequest, RuntimeID: rt.runtime, WorkerID: rt.worker,
			Detail: "The runtime rejected the request."}
		if detail, ok := sourceFields[e.Field]; ok {
			out.Field, out.Detail = e.Field, detail
		}
	default:
		return r.internal(err, rt, e.Code)
	}
	out.HostID = rt.host
	return out
}

// internal is the registry's internal error for a Source's err, logged by
// type (and by code when it is one of ours) only.
func (r *Registry) internal(err error, rt route, code Code) *Error {
	attrs := []slog.Attr{
		slog.String("runtime_id", string(rt.runtime)),
		slog.String("operation", string(rt.op)),
		slog.String("cause_types", errchain.Types(err)),
	}
	if code != "" {
		if !knownCode(code) {
			code = "unknown"
		}
		attrs = append(attrs, slog.String("source_code", string(code)))
	}
	r.log.LogAttrs(context.Background(), slog.LevelWarn, "runtime source error", attrs...)
	return &Error{Code: CodeInternal, RuntimeID: rt.runtime, WorkerID: rt.worker, HostID: rt.host,
		Detail: "The runtime failed to answer.", Cause: errSourceFailed}
}

// knownCode reports whether c is one of the API's codes (so that it may be
// logged: an unknown code is a Source's text).
func knownCode(c Code) bool {
	switch c {
	case CodeInvalidIdentifier, CodeInvalidRequest, CodeUnknownRuntime, CodeUnknownHost, CodeUnknownWorker,
		CodeWorkerNotVisible, CodeRuntimeUnavailable, CodeOperationUnsupported, CodeNotFound,
		CodeMethodNotAllowed, CodePayloadTooLarge, CodeInternal, CodeUnauthenticated,
		CodeCrossOriginRejected, CodeMisdirectedRequest, CodeWorkerNotRunning, CodeWorkerBusy,
		CodeRuntimeAtCapacity, CodeIdempotencyKeyReused, CodeTooManyStreams:
		return true
	}
	return false
}
