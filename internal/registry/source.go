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
	OpListProfiles       Operation = "list_profiles"
	OpReadTranscript     Operation = "read_transcript"
	OpStreamEvents       Operation = "stream_events"
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

// Source is the handle boundary between the registry and one Runtime: its
// read core. Every operation beyond reading is an optional interface of its
// own (WorkerCreator, InputSender, WorkerStopper, TranscriptReader,
// ProfileLister, EventStreamer, and Starter/Closer for lifecycle): a Source
// implements the ones its Runtime can really do, the registry answers
// operation_unsupported for the others and derives the capability flags from
// what is implemented (a Source may report less, never more). A Source owns
// its Workers; the registry keeps no copy of them and calls the Source every
// time. Every method must be safe for concurrent use and should honour its
// context: merged lists and host lookups wait for each Source only
// Options.SourceTimeout. Every error it returns should be an *Error with one
// of the domain codes its method documents: the registry keeps only the
// code (replacing the text, ids and cause with its own) and reports anything
// else as internal.
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
}

// VersionedLookup is a Source that can say which content a lookup was
// answered from, so that a transport may reuse what it encoded for an
// unchanged Worker. VersionedWorker answers as Worker does, plus a version
// with WorkerPage.Version's promise: two lookups of the same id that return
// the same non-empty version return identical Workers. "" promises nothing.
type VersionedLookup interface {
	VersionedWorker(ctx context.Context, id WorkerID) (Worker, string, error)
}

// Starter is a Source with work to do before it answers (a first scan, a
// first probe). The server starts every Starter before it listens.
type Starter interface {
	Start(ctx context.Context) error
}

// Closer is a Source that holds resources (watches, processes, connections)
// to release at shutdown.
type Closer interface {
	Close(ctx context.Context) error
}

// WorkerCreator is a Source whose Runtime creates Workers. CreateWorker
// returns invalid_request (an unknown profile, say), runtime_at_capacity,
// idempotency_key_reused or runtime_unavailable.
type WorkerCreator interface {
	CreateWorker(ctx context.Context, req CreateWorkerRequest) (Worker, error)
}

// InputSender is a Source whose Workers accept input. SendInput returns
// unknown_worker, worker_not_running, worker_busy, invalid_request or
// runtime_unavailable.
type InputSender interface {
	SendInput(ctx context.Context, id WorkerID, in WorkerInput) (InputAck, error)
}

// WorkerStopper is a Source whose Workers can be stopped. A stop is
// idempotent: stopping a stopped Worker answers its current state. It returns
// unknown_worker or runtime_unavailable.
type WorkerStopper interface {
	StopWorker(ctx context.Context, id WorkerID, mode StopMode) (StopAck, error)
}

// TranscriptReader is a Source that keeps a bounded transcript per Worker. It
// returns unknown_worker, invalid_request or runtime_unavailable.
type TranscriptReader interface {
	Transcript(ctx context.Context, id WorkerID, q TranscriptQuery) (TranscriptPage, error)
}

// ProfileLister is a Source whose creates may name a profile. It returns
// runtime_unavailable.
type ProfileLister interface {
	Profiles(ctx context.Context) ([]Profile, error)
}

// EventStreamer is a Source that streams its Workers' changes. Events returns
// unknown_worker (q.WorkerID names none) or runtime_unavailable; see
// EventStream for what the stream promises.
type EventStreamer interface {
	Events(ctx context.Context, q EventQuery) (EventStream, error)
}
