package embedded

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

func TestMapError(t *testing.T) {
	pathErr := errors.New("open /secret/state/worker-runtime.db: permission denied")
	tests := []struct {
		name  string
		in    error
		code  registry.Code
		field string
	}{
		{"invalid with field", &workerruntime.Error{Code: workerruntime.CodeInvalidRequest, Field: "profile", Detail: "no such profile"}, registry.CodeInvalidRequest, "profile"},
		{"idempotency field renamed", &workerruntime.Error{Code: workerruntime.CodeInvalidRequest, Field: "idempotency_key"}, registry.CodeInvalidRequest, "Idempotency-Key"},
		{"unknown worker", workerruntime.ErrUnknownWorker, registry.CodeUnknownWorker, ""},
		{"not running", workerruntime.ErrWorkerNotRunning, registry.CodeWorkerNotRunning, ""},
		{"busy", workerruntime.ErrWorkerBusy, registry.CodeWorkerBusy, ""},
		{"capacity", workerruntime.ErrRuntimeAtCapacity, registry.CodeRuntimeAtCapacity, ""},
		{"reused", workerruntime.ErrIdempotencyKeyReused, registry.CodeIdempotencyKeyReused, "Idempotency-Key"},
		{"unavailable with a path cause", &workerruntime.Error{Code: workerruntime.CodeRuntimeUnavailable, Detail: "store failed", Cause: pathErr}, registry.CodeRuntimeUnavailable, ""},
		{"domain internal", &workerruntime.Error{Code: workerruntime.CodeInternal, Cause: pathErr}, registry.CodeInternal, ""},
		{"wrapped domain error", fmt.Errorf("ctx: %w", workerruntime.ErrWorkerBusy), registry.CodeWorkerBusy, ""},
		{"untyped", pathErr, registry.CodeInternal, ""},
		{"cancelled", context.Canceled, registry.CodeRuntimeUnavailable, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := mapError(tc.in, "w-1")
			var e *registry.Error
			if !errors.As(err, &e) {
				t.Fatalf("%v is not a registry error", err)
			}
			if e.Code != tc.code || e.Field != tc.field || e.RuntimeID != RuntimeID {
				t.Errorf("mapped to %+v, want %s %q", e, tc.code, tc.field)
			}
			if e.Detail == "" || errors.Is(errors.New(e.Detail), pathErr) || containsPath(e.Detail) {
				t.Errorf("detail %q", e.Detail)
			}
		})
	}
	if mapError(nil, "") != nil {
		t.Error("nil maps to an error")
	}
}

func containsPath(s string) bool {
	for i := 0; i+7 <= len(s); i++ {
		if s[i:i+7] == "/secret" {
			return true
		}
	}
	return false
}
