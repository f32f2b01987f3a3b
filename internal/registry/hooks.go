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

// SlogAuditor writes one structured log line per audit record, at the level
// of its audit policy (AuditLevel), which follows the Kubernetes audit policy
// levels: what changes something is recorded by default, what only reads is
// recorded on request, and a failure of the server itself always is.
//
//   - Writes (create_worker, send_input, stop_worker) are logged at info, the
//     default level: they start, feed or stop processes, so who did what to
//     which worker must be on record. The record names the operation, the ids
//     and the outcome only, never the content of an input or any other body
//     field (like Kubernetes' Metadata level, never Request).
//   - Reads (get_runtime, list_runtime_hosts, list_runtime_workers,
//     list_host_workers, get_worker, list_profiles, read_transcript,
//     stream_events) are logged at debug: they are most of the traffic, change
//     nothing, and each is already counted in the request log line and the
//     runtime_registry_operations_total metric. Kubernetes' own example
//     policies likewise leave high-volume reads out (level None) or keep
//     their metadata only. Run with --log-level debug to audit reads too.
//   - Any call whose outcome is internal is logged at warn whatever it was,
//     so that a bug on a read path is still seen at the default level.
//
// An operation this policy does not name is logged at info.
type SlogAuditor struct {
	Logger *slog.Logger
}

// AuditLevel is the log level SlogAuditor writes rec at: warn for an
// internal outcome, debug for a read, info for anything else (the writes).
func AuditLevel(rec AuditRecord) slog.Level {
	switch {
	case rec.Outcome == string(CodeInternal):
		return slog.LevelWarn
	case isRead(rec.Operation):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func isRead(op Operation) bool {
	switch op {
	case OpGetRuntime, OpListRuntimeHosts, OpListRuntimeWorkers, OpListHostWorkers, OpGetWorker,
		OpListProfiles, OpReadTranscript, OpStreamEvents:
		return true
	}
	return false
}

// Audit logs rec at AuditLevel(rec). A record below the logger's level costs
// one check and no allocation.
func (a SlogAuditor) Audit(ctx context.Context, rec AuditRecord) {
	level := AuditLevel(rec)
	if !a.Logger.Enabled(ctx, level) {
		return
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
