package registry

import (
	"context"
	"errors"
)

// EventKind names what an Event reports.
type EventKind string

// The event kinds of the browser's event streams.
const (
	EventWorkerUpserted     EventKind = "worker_upserted"
	EventWorkerRemoved      EventKind = "worker_removed"
	EventTranscriptAppended EventKind = "transcript_appended"
	EventResync             EventKind = "resync"
)

// Resync reasons: why a stream asks its client to re-read the lists.
const (
	ResyncCursorUnknown    = "cursor_unknown"
	ResyncCursorExpired    = "cursor_expired"
	ResyncSourceRestarted  = "source_restarted"
	ResyncSubscriberLagged = "subscriber_lagged"
)

// Event is one change of a Runtime's Workers.
type Event struct {
	// Cursor is opaque (the id alphabet), scoped to one Runtime: a stream
	// resumed after it replays what followed. It is empty only for resync.
	Cursor string
	Kind   EventKind
	// Ref names the Worker of upserted, removed and transcript events.
	Ref WorkerRef
	// Worker is the projected Worker of worker_upserted.
	Worker Worker
	// Entry is the appended entry of transcript_appended.
	Entry TranscriptEntry
	// Reason says why for resync.
	Reason string
}

// EventQuery opens an event stream.
type EventQuery struct {
	// Cursor resumes after an earlier event; "" streams what happens after
	// the stream is opened.
	Cursor string
	// WorkerID keeps one Worker's events; "" keeps every visible Worker's.
	WorkerID WorkerID
}

// EventStream delivers a Runtime's events in order. For a stream opened
// without a cursor it delivers every event after Events returned; for a known
// cursor the retained events after it, then live ones, with no duplicate and
// no gap; for an unknown or trimmed cursor one resync event first, then live
// ones.
type EventStream interface {
	// Next blocks for the next event. It returns ctx.Err() when ctx ends and
	// ErrStreamEnded when the Source cut the stream (the subscriber lagged,
	// the Source is closing): the client resumes from its last cursor.
	Next(ctx context.Context) (Event, error)
	// Close releases the stream; Next then returns ErrStreamEnded.
	Close()
}

// ErrStreamEnded reports that a Source ended an event stream.
var ErrStreamEnded = errors.New("registry: event stream ended")
