package workerruntime

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// Store persists workers, transcripts, the event feed and idempotency keys.
// Every mutation commits before it returns; the events it appends are handed
// to the commit hook (SetCommitHook) in cursor order, after the commit and
// before the mutation returns. The real one is sqlitestore; wrtest has a fake.
type Store interface {
	// InstanceID is the UUID made at the store's first open.
	InstanceID() string
	// SetCommitHook installs the function that receives every committed
	// event, in cursor order. It is called from one goroutine at a time and
	// must not block or call back into the store.
	SetCommitHook(func([]StoredEvent))
	// Recover turns every non-terminal worker into stopped:runtime_restart
	// (one worker_upserted event each) and returns them.
	Recover(ctx context.Context, at time.Time) ([]Worker, error)
	// LookupIdempotency returns the worker created with key at or after
	// notBefore and the request fingerprint it was made with; found is false
	// when there is none.
	LookupIdempotency(ctx context.Context, key string, notBefore time.Time) (workerID, fingerprint string, found bool, err error)
	// CreateWorker inserts w (and, when idem.Key != "", the idempotency key)
	// with a worker_upserted event.
	CreateWorker(ctx context.Context, w Worker, idem Idempotency) error
	// UpdateWorker writes w's state, status and timestamps with a
	// worker_upserted event. ErrStoreNotFound if w is unknown.
	UpdateWorker(ctx context.Context, w Worker) error
	// AppendTranscript appends entries to a worker's transcript, giving them
	// the next sequences (the Sequence fields are ignored), sets the worker's
	// UpdatedAt to the last entry's At, emits one transcript_appended each,
	// and returns the entries as stored. Many calls may share a transaction.
	AppendTranscript(ctx context.Context, workerID string, entries []TranscriptEntry) ([]TranscriptEntry, error)
	// GetWorker returns one worker, ErrStoreNotFound if unknown.
	GetWorker(ctx context.Context, id string) (Worker, error)
	// ListWorkers returns up to limit workers with id > after, ascending,
	// whether more follow, and the newest event seq, all read in one read
	// transaction (so the seq versions the page).
	ListWorkers(ctx context.Context, after string, limit int) (workers []Worker, more bool, lastSeq int64, err error)
	// CountByState returns how many workers the store holds in each state.
	CountByState(ctx context.Context) (map[State]int, error)
	// Transcript returns up to limit entries with sequence > after (cut so
	// the content stays within maxBytes, at least one entry), with the
	// retained first and last sequences. ErrStoreNotFound if unknown.
	Transcript(ctx context.Context, workerID string, after int64, limit, maxBytes int) (TranscriptPage, error)
	// LastEventSeq returns the newest event's seq (0 if none ever).
	LastEventSeq(ctx context.Context) (int64, error)
	// FirstEventSeq returns the oldest retained event's seq (0 if none).
	FirstEventSeq(ctx context.Context) (int64, error)
	// EventsAfter returns up to limit events with after < seq <= upTo,
	// ascending, only workerID's when it is not "".
	EventsAfter(ctx context.Context, after, upTo int64, workerID string, limit int) ([]StoredEvent, error)
	// Close flushes and closes the store.
	Close() error
}

// ErrStoreNotFound is what a Store answers for an unknown worker.
var ErrStoreNotFound = errors.New("workerruntime: not found in store")

// Idempotency is an idempotency key recorded with a create.
type Idempotency struct {
	Key         string
	Fingerprint string // of the request, to tell a replay from a reuse
	At          time.Time
}

// StoredEvent is an event as the store keeps it: Seq is the global cursor.
type StoredEvent struct {
	Seq   int64
	Event Event // Cursor is left empty: the Runtime encodes it
}

// Executor starts worker processes. The real one is procexec.
type Executor interface {
	// Start starts the profile's command for one worker. An error means it
	// could not start (the worker becomes stopped:failed).
	Start(ctx context.Context, spec StartSpec) (Process, error)
}

// StartSpec is what an Executor needs to start one worker.
type StartSpec struct {
	WorkerID string
	Profile  Profile
	Intent   Intent
	Dir      string // the workspace root
}

// OutputLine is one line a process printed (without its newline).
type OutputLine struct {
	Role    Role // assistant for stdout, system for stderr
	Content string
}

// Process is one running worker process (its whole process group).
type Process interface {
	// PID is the leader's process id (for logs and tests).
	PID() int
	// Lines delivers output lines; it is closed once the process has
	// exited and both streams are drained.
	Lines() <-chan OutputLine
	// WriteInput writes one input to stdin in the profile's input mode; it
	// may block while the process does not read.
	WriteInput(in Input) error
	// CloseInput closes stdin (the first step of a graceful stop).
	CloseInput() error
	// Signal sends sig to the whole process group.
	Signal(sig syscall.Signal) error
	// Done is closed when the process has exited and been reaped.
	Done() <-chan struct{}
	// Exit is the exit result; valid once Done is closed.
	Exit() ExitStatus
}

// ExitStatus says how a process ended.
type ExitStatus struct {
	Code     int            // exit code when it exited; -1 when signalled
	Signal   syscall.Signal // the signal when it was killed by one
	Signaled bool
}
