package registry

import "context"

// Operation names a registry call that bears authority (it names a runtime,
// host or worker). It is used in audit records and error details.
type Operation string

// The authority-bearing operations.
const (
	OpGetRuntime         Operation = "get_runtime"
	OpListRuntimeHosts   Operation = "list_runtime_hosts"
	OpListRuntimeWorkers Operation = "list_runtime_workers"
	OpListHostWorkers    Operation = "list_host_workers"
	OpGetWorker          Operation = "get_worker"
	OpCreateWorker       Operation = "create_worker"
	OpSendInput          Operation = "send_input"
	OpStopWorker         Operation = "stop_worker"
)

// WorkerQuery asks a Source for one page of its Workers. Sources return Workers
// in ascending WorkerID byte order so that After is a stable position.
type WorkerQuery struct {
	// After is exclusive: only Workers whose id sorts after it are returned.
	// Empty means from the start.
	After WorkerID
	// Limit is the most Workers to return; it is at least 1.
	Limit int
	// HostID, if set, keeps only the Workers on that host.
	HostID HostID
}

// WorkerPage is one page of a Source's Workers.
type WorkerPage struct {
	// Workers may share memory with the Source (an index's immutable array,
	// say): the registry and its callers only read them, never modify them.
	Workers []Worker
	// Diagnostics are browser-safe notes about the listing as a whole.
	Diagnostics []Diagnostic
	// More is true when Workers after the last returned one exist.
	More bool
	// Version identifies the Source's content this page was cut from: two
	// pages of the same query with the same non-empty Version are identical.
	// A Source that cannot promise that leaves it empty. The registry passes
	// it on (List.Version) and stores nothing; transports use it to reuse the
	// encoding of an unchanged page.
	Version string
}

// Source is the handle boundary between the registry and one Runtime: the local
// compatibility view today, embedded and remote Runtimes later. A Source owns
// its Workers; the registry keeps no copy of them and calls the Source every
// time. Every method must be safe for concurrent use, and every error it
// returns should be an *Error (anything else is reported as internal).
type Source interface {
	// RuntimeID is the Runtime authority this Source answers for. It is
	// constant for the life of the Source.
	RuntimeID() RuntimeID

	// Summary projects the Runtime. It may return runtime_unavailable.
	Summary(ctx context.Context) (RuntimeSummary, error)

	// Hosts lists the Runtime's hosts. It may return runtime_unavailable.
	Hosts(ctx context.Context) ([]Host, []Diagnostic, error)

	// Workers returns one page of Workers, in ascending id order. It may
	// return runtime_unavailable.
	Workers(ctx context.Context, q WorkerQuery) (WorkerPage, error)

	// Worker returns one Worker. It returns unknown_worker when the Runtime has
	// no such Worker, worker_not_visible when the Source's own workspace scoping
	// hides it, and runtime_unavailable when it cannot answer.
	Worker(ctx context.Context, id WorkerID) (Worker, error)

	// CreateWorker asks the Runtime to create a Worker. It returns
	// operation_unsupported when the Runtime cannot create Workers.
	CreateWorker(ctx context.Context, req CreateWorkerRequest) (Worker, error)

	// SendInput delivers one input to a Worker. It returns
	// operation_unsupported when the Runtime cannot accept input.
	SendInput(ctx context.Context, id WorkerID, in WorkerInput) (InputAck, error)

	// StopWorker asks a Worker to stop. It returns operation_unsupported when
	// the Runtime cannot stop Workers.
	StopWorker(ctx context.Context, id WorkerID, mode StopMode) (StopAck, error)
}

// ReadOnlyOperations implements the three Source operations by answering
// operation_unsupported. A read-only Source embeds it so that it never fakes a
// result.
type ReadOnlyOperations struct {
	// Runtime is the id reported in the errors.
	Runtime RuntimeID
}

// CreateWorker answers operation_unsupported.
func (o ReadOnlyOperations) CreateWorker(context.Context, CreateWorkerRequest) (Worker, error) {
	return Worker{}, OperationUnsupported(o.Runtime, OpCreateWorker)
}

// SendInput answers operation_unsupported.
func (o ReadOnlyOperations) SendInput(context.Context, WorkerID, WorkerInput) (InputAck, error) {
	return InputAck{}, OperationUnsupported(o.Runtime, OpSendInput)
}

// StopWorker answers operation_unsupported.
func (o ReadOnlyOperations) StopWorker(context.Context, WorkerID, StopMode) (StopAck, error) {
	return StopAck{}, OperationUnsupported(o.Runtime, OpStopWorker)
}
