package workerruntime

import (
	"context"
	"log/slog"
	"time"
)

// Options configure a Runtime.
type Options struct {
	Store         Store
	Executor      Executor
	Profiles      *Profiles
	WorkspaceRoot string
	MaxWorkers    int              // 0 = 64
	Now           func() time.Time // nil = time.Now
	Logger        *slog.Logger     // nil = slog.Default()
}

// Subscription delivers events after a cursor: first the retained events
// after it (replay, from the store), then live ones, in order, never
// duplicated, never with a gap. An unknown or trimmed cursor starts with one
// resync event and continues live. A subscriber that falls behind (its
// bounded buffer is full) is cut off: Next returns ErrLagged, and the client
// reconnects with its last cursor (it loses nothing: replay from the store).
type Subscription interface {
	Next(ctx context.Context) (Event, error) // ctx.Err(), ErrLagged, ErrClosed
	Close()
}

// Runtime runs workers.
type Runtime struct{}

var errNotBuilt = &Error{Code: CodeInternal, Detail: "internal: not built yet"}

// Open starts a Runtime over its store and executor; crash recovery happens here.
func Open(ctx context.Context, opts Options) (*Runtime, error) { return nil, errNotBuilt }

// Info describes the Runtime.
func (r *Runtime) Info(ctx context.Context) (RuntimeInfo, error) { return RuntimeInfo{}, errNotBuilt }

// Create starts a worker.
func (r *Runtime) Create(ctx context.Context, req CreateRequest) (Worker, error) {
	return Worker{}, errNotBuilt
}

// Get returns one worker.
func (r *Runtime) Get(ctx context.Context, id string) (Worker, error) { return Worker{}, errNotBuilt }

// List returns a page of workers in id order.
func (r *Runtime) List(ctx context.Context, after string, limit int) (WorkerPage, error) {
	return WorkerPage{}, errNotBuilt
}

// SendInput queues one input for a worker.
func (r *Runtime) SendInput(ctx context.Context, id string, in Input) (InputAck, error) {
	return InputAck{}, errNotBuilt
}

// Stop stops a worker (sticky, idempotent).
func (r *Runtime) Stop(ctx context.Context, id string, mode StopMode) (Worker, error) {
	return Worker{}, errNotBuilt
}

// Transcript returns a page of a worker's transcript.
func (r *Runtime) Transcript(ctx context.Context, id string, after int64, limit int) (TranscriptPage, error) {
	return TranscriptPage{}, errNotBuilt
}

// Subscribe opens an event subscription.
func (r *Runtime) Subscribe(ctx context.Context, req SubscribeRequest) (Subscription, error) {
	return nil, errNotBuilt
}

// Stats returns counters for metrics.
func (r *Runtime) Stats() Stats { return Stats{} }

// Close stops every live worker and closes the store.
func (r *Runtime) Close(ctx context.Context) error { return errNotBuilt }
