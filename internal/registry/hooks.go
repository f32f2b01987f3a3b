package registry

import (
	"context"
	"log/slog"
)

// VisibilityPolicy decides whether the caller may see a Worker that its Source
// already returned (the Source applies its own workspace scoping first). A
// hidden Worker is left out of lists, and looking it up, or routing an
// operation to it, answers worker_not_visible.
type VisibilityPolicy interface {
	WorkerVisible(ctx context.Context, w Worker) bool
}

// VisibilityFunc adapts a function to VisibilityPolicy.
type VisibilityFunc func(ctx context.Context, w Worker) bool

// WorkerVisible calls f.
func (f VisibilityFunc) WorkerVisible(ctx context.Context, w Worker) bool { return f(ctx, w) }

// SourceScopedVisibility is the default policy: it keeps each Source's own
// workspace scoping and hides nothing more.
type SourceScopedVisibility struct{}

// WorkerVisible always reports true.
func (SourceScopedVisibility) WorkerVisible(context.Context, Worker) bool { return true }

// OutcomeOK is the audit outcome of a call that succeeded.
const OutcomeOK = "ok"

// AuditRecord describes one authority-bearing registry call. It holds only
// validated ids and codes: never a path, token or request body.
type AuditRecord struct {
	Operation Operation
	RuntimeID RuntimeID
	WorkerID  WorkerID
	HostID    HostID
	// Outcome is OutcomeOK or the error code the call answered.
	Outcome string
}

// Auditor receives every authority-bearing registry call after it completes.
// It must be safe for concurrent use and must not block for long.
type Auditor interface {
	Audit(ctx context.Context, rec AuditRecord)
}

// SlogAuditor writes one structured log line per audit record.
type SlogAuditor struct {
	Logger *slog.Logger
}

// Audit logs rec at info level (warning for internal outcomes).
func (a SlogAuditor) Audit(ctx context.Context, rec AuditRecord) {
	level := slog.LevelInfo
	if rec.Outcome == string(CodeInternal) {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("operation", string(rec.Operation)),
		slog.String("outcome", rec.Outcome),
	}
	if rec.RuntimeID != "" {
		attrs = append(attrs, slog.String("runtime_id", string(rec.RuntimeID)))
	}
	if rec.WorkerID != "" {
		attrs = append(attrs, slog.String("worker_id", string(rec.WorkerID)))
	}
	if rec.HostID != "" {
		attrs = append(attrs, slog.String("host_id", string(rec.HostID)))
	}
	a.Logger.LogAttrs(ctx, level, "audit", attrs...)
}

// Auditors fans one record out to several auditors, in order.
type Auditors []Auditor

// Audit passes rec to each auditor.
func (as Auditors) Audit(ctx context.Context, rec AuditRecord) {
	for _, a := range as {
		a.Audit(ctx, rec)
	}
}
