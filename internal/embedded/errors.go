package embedded

import (
	"context"
	"errors"

	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// fieldNames maps the Runtime's field names onto the wire's where they
// differ: the idempotency key travels as the Idempotency-Key header.
var fieldNames = map[string]string{
	"idempotency_key": "Idempotency-Key",
}

// mapError is the one place where the Runtime's typed errors become registry
// errors. id is the worker the call concerned ("" for none). Every code gets
// the registry's own text, except invalid_request, whose field and detail
// say what was wrong (the Runtime's details are browser-safe by contract).
// Anything that is not a typed Runtime error is internal; its cause is kept
// for the logs only.
func mapError(err error, id registry.WorkerID) error {
	if err == nil {
		return nil
	}
	r := ref(id)
	var e *workerruntime.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return registry.RuntimeUnavailable(RuntimeID, "The embedded worker runtime did not answer in time.", err)
		}
		return &registry.Error{Code: registry.CodeInternal, RuntimeID: RuntimeID, WorkerID: id, Detail: "The embedded worker runtime failed.", Cause: err}
	}
	switch e.Code {
	case workerruntime.CodeInvalidRequest:
		field := e.Field
		if f, ok := fieldNames[field]; ok {
			field = f
		}
		detail := e.Detail
		if detail == "" {
			detail = "The request is not valid."
		}
		if field != "" {
			detail = field + ": " + detail
		}
		out := registry.InvalidRequest(field, detail)
		out.RuntimeID = RuntimeID
		return out
	case workerruntime.CodeUnknownWorker:
		return registry.UnknownWorker(r)
	case workerruntime.CodeWorkerNotRunning:
		return registry.WorkerNotRunning(r)
	case workerruntime.CodeWorkerBusy:
		return registry.WorkerBusy(r)
	case workerruntime.CodeRuntimeAtCapacity:
		return registry.RuntimeAtCapacity(RuntimeID)
	case workerruntime.CodeIdempotencyKeyReused:
		return registry.IdempotencyKeyReused(RuntimeID)
	case workerruntime.CodeRuntimeUnavailable:
		return registry.RuntimeUnavailable(RuntimeID, "The embedded worker runtime cannot answer now.", err)
	default:
		return &registry.Error{Code: registry.CodeInternal, RuntimeID: RuntimeID, WorkerID: id, Detail: "The embedded worker runtime failed.", Cause: err}
	}
}
