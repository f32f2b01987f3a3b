// Package workerruntime is the Worker Runtime domain: it runs Workers (one
// child process each, through an Executor), keeps their transcripts and an
// event feed (through a Store), and answers typed errors. It imports no HTTP.
package workerruntime

import (
	"time"
)

// State is a worker's coarse lifecycle state (the contract's enum).
type State string

// The worker states.
const (
	StateStarting State = "starting"
	StateActive   State = "active"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
)

// Status strings (DESIGN "Lifecycle" table): a finer reading of State.
const (
	StatusStarting        = "starting"
	StatusRunning         = "active:running"
	StatusStopping        = "stopping"
	StatusRequested       = "stopped:requested"
	StatusCancelled       = "stopped:cancelled"
	StatusExited          = "stopped:exited"
	StatusFailed          = "stopped:failed"
	StatusRuntimeShutdown = "stopped:runtime_shutdown"
	StatusRuntimeRestart  = "stopped:runtime_restart"
)

// IntentKind is what a worker is for: "assistant", "task" or "role".
type IntentKind string

// The intent kinds.
const (
	IntentAssistant IntentKind = "assistant"
	IntentTask      IntentKind = "task"
	IntentRole      IntentKind = "role"
)

// Intent is the browser's statement of what a worker is for.
type Intent struct {
	Kind      IntentKind
	Purpose   string // optional
	Objective string // optional
	Role      string // optional
}

// Worker is one worker's record.
type Worker struct {
	ID           string
	Profile      string // profile name
	ProfileLabel string // the profile's label (display)
	Label        string // from worker_name, display only ("" if none given)
	Intent       Intent
	State        State
	Status       string
	CreatedAt    time.Time // UTC
	UpdatedAt    time.Time // UTC; last change of state/status or transcript
	StoppedAt    time.Time // zero while not stopped
}

// CreateRequest asks for a new worker.
type CreateRequest struct {
	Intent         Intent
	Profile        string // "" = default profile
	Label          string // requested worker_name; sanitised for display
	IdempotencyKey string // "" = none; 1-120 chars of the id alphabet
}

// InputKind is who speaks an input: "user" or "system".
type InputKind string

// The input kinds.
const (
	InputUser   InputKind = "user"
	InputSystem InputKind = "system"
)

// Input is one message for a worker's stdin.
type Input struct {
	Kind    InputKind
	Content string // <= 64 KiB, else invalid_request
}

// InputAck answers an accepted input.
type InputAck struct{ Sequence int64 } // the transcript sequence of the input

// StopMode is how to stop a worker: "graceful" or "force".
type StopMode string

// The stop modes.
const (
	StopGraceful StopMode = "graceful"
	StopForce    StopMode = "force"
)

// Role is the speaker of a transcript entry.
type Role string

// The transcript roles.
const (
	RoleUser      Role = "user"
	RoleSystem    Role = "system"
	RoleAssistant Role = "assistant"
)

// TranscriptEntry is one line of a worker's transcript.
type TranscriptEntry struct {
	Sequence int64 // from 1 per worker
	Role     Role
	Content  string
	At       time.Time // UTC
}

// TranscriptPage is one page of a worker's transcript.
type TranscriptPage struct {
	WorkerID      string
	Items         []TranscriptEntry
	NextAfter     int64 // 0 = no more after this page
	FirstSequence int64 // oldest retained (0 if none)
	LastSequence  int64 // newest (0 if none)
}

// WorkerPage is one page of workers in id order. A page List answers may be
// shared with other callers (the Runtime keeps unchanged pages in memory):
// its Workers are read-only.
type WorkerPage struct {
	Workers []Worker // ascending id; read-only
	More    bool
	Version string // changes whenever any worker in the runtime changes; same Version => same page
}

// RuntimeInfo describes the Runtime.
type RuntimeInfo struct {
	InstanceID string // UUID made at first open of the store, stable across restarts
	Profiles   []ProfileSummary
	MaxWorkers int
	Counts     map[State]int // live counts by state
}

// ProfileSummary is the browser-safe view of a profile (no command, no env).
type ProfileSummary struct {
	Name, Label, Description string
	Default                  bool
}

// EventKind names an event.
type EventKind string

// The event kinds.
const (
	EventWorkerUpserted     EventKind = "worker_upserted"
	EventWorkerRemoved      EventKind = "worker_removed"
	EventTranscriptAppended EventKind = "transcript_appended"
	EventResync             EventKind = "resync"
)

// Resync reasons.
const (
	ResyncCursorUnknown    = "cursor_unknown"
	ResyncCursorExpired    = "cursor_expired"
	ResyncSubscriberLagged = "subscriber_lagged"
)

// Event is one entry of the Runtime's event feed.
type Event struct {
	Cursor   string // opaque, id alphabet; "" for resync
	Kind     EventKind
	WorkerID string
	Worker   *Worker          // worker_upserted
	Entry    *TranscriptEntry // transcript_appended
	Reason   string           // resync: "cursor_unknown" | "cursor_expired" | "subscriber_lagged"
}

// SubscribeRequest says where a subscription starts and what it watches.
type SubscribeRequest struct {
	Cursor   string // "" = only events after the subscription is made
	WorkerID string // "" = every worker; else only that worker's events (unknown_worker if none)
}

// Stats are cumulative counters and gauges for a metrics collector outside
// the domain (prometheus GaugeFunc/CounterFunc read them).
type Stats struct {
	WorkersByState    map[State]int
	ProcessesStarted  uint64
	ProcessesExited   uint64
	TranscriptLines   uint64
	Events            uint64
	Subscribers       int
	StoreWriteSeconds float64 // cumulative seconds in store writes
	StoreWrites       uint64
}
