package registry

import "time"

// SourceKind says what kind of Runtime a Source fronts.
type SourceKind string

// The source kinds. Only local_compatibility is implemented in v0; the other
// two are handle boundaries for Runtimes implemented later.
const (
	SourceLocalCompatibility    SourceKind = "local_compatibility"
	SourceEmbeddedWorkerRuntime SourceKind = "embedded_worker_runtime"
	SourceRemoteHTTP            SourceKind = "remote_http"
)

// SourceStatus says whether a source is live or only reserved for later.
type SourceStatus string

// The source statuses.
const (
	SourceActive   SourceStatus = "active"
	SourceReserved SourceStatus = "reserved"
)

// IdentityAuthorityProjection is every source's identity_authority: public ids
// are registry projections, never raw store names, sockets, sessions or paths.
const IdentityAuthorityProjection = "runtime_registry_projection"

// Availability is the status of a Runtime or host.
type Availability string

// The availability values.
const (
	Available   Availability = "available"
	Degraded    Availability = "degraded"
	Unavailable Availability = "unavailable"
)

// Inspection values of Capabilities.LocalPodInspection.
const (
	InspectionAvailable   = "available"
	InspectionUnavailable = "unavailable"
)

// WorkspaceScopeCurrent is the only workspace scope of v0.
const WorkspaceScopeCurrent = "current_workspace"

// SourceInfo describes the source behind a Runtime.
type SourceInfo struct {
	Kind              SourceKind
	Status            SourceStatus
	IdentityAuthority string
	Note              string
}

// Capabilities says what a Runtime or host can really do through this backend.
// Each boolean is true only for what the backend can route.
type Capabilities struct {
	CanListHosts                 bool
	CanListWorkers               bool
	CanGetWorker                 bool
	CanSpawnWorker               bool
	CanStopWorker                bool
	CanAcceptInput               bool
	CanStreamEvents              bool
	CanReadBoundedTranscript     bool
	HasWorkspaceFS               bool
	HasShell                     bool
	HasGit                       bool
	SupportsWorktrees            bool
	SupportsBackendInternalTools bool
	LocalPodInspection           string
	WorkspaceScope               string
	// MaxWorkers is nil when the Runtime states no limit.
	MaxWorkers *int
	OS         string
	Arch       string
}

// RuntimeSummary is the browser-safe projection of one Runtime.
type RuntimeSummary struct {
	ID           RuntimeID
	Label        string
	Kind         string
	Status       Availability
	HostIDs      []HostID
	Source       SourceInfo
	Capabilities Capabilities
	// Diagnostics concern this Runtime alone (why it is unavailable, say);
	// empty, never nil, when there is nothing to say.
	Diagnostics []Diagnostic
}

// Host is the browser-safe projection of one host of a Runtime.
type Host struct {
	ID           HostID
	RuntimeID    RuntimeID
	Kind         string
	Label        string
	Status       Availability
	Capabilities Capabilities
	// ObservedAt is when the Source last observed the host (the local index's
	// last refresh, a remote Runtime's last successful probe). It comes from
	// the Source's state, never from the clock at request time, so that an
	// unchanged list keeps its ETag.
	ObservedAt time.Time
	// LastSeenAt is when the host last showed activity, nil when the Source
	// does not know.
	LastSeenAt *time.Time
	// Diagnostics concern this host alone; empty, never nil, when none.
	Diagnostics []Diagnostic
}

// WorkerState is the coarse lifecycle state of a Worker.
type WorkerState string

// The worker states. Compatibility workers are active or metadata_only; the
// others are for Runtimes that run Workers.
const (
	WorkerActive       WorkerState = "active"
	WorkerMetadataOnly WorkerState = "metadata_only"
	WorkerStarting     WorkerState = "starting"
	WorkerStopping     WorkerState = "stopping"
	WorkerStopped      WorkerState = "stopped"
)

// Implementation kinds of WorkerImplementation.Kind.
const (
	ImplementationLocalPod       = "local_pod"
	ImplementationEmbeddedWorker = "embedded_worker"
	ImplementationRemoteWorker   = "remote_worker"
)

// WorkerWorkspace says how a Worker relates to the current workspace.
type WorkerWorkspace struct {
	Visibility string
	Identity   string
}

// WorkerImplementation says what implements a Worker. DisplayHint is for
// display only and is never authority.
type WorkerImplementation struct {
	Kind        string
	DisplayHint string
}

// WorkerCapabilities says what the backend can route for one Worker.
type WorkerCapabilities struct {
	CanGetWorker  bool
	CanStopWorker bool
	// CanStop says the same as CanStopWorker; existing clients read it.
	CanStop                  bool
	CanAcceptInput           bool
	CanStreamEvents          bool
	CanReadBoundedTranscript bool
	// CanSpawnFollowup is true only where a follow-up spawn can really be
	// routed (nowhere yet).
	CanSpawnFollowup bool
}

// Worker is the browser-safe projection of one Worker. Label, Role, Profile
// and Implementation.DisplayHint are display strings and never authority.
type Worker struct {
	ID             WorkerID
	RuntimeID      RuntimeID
	HostID         HostID
	Label          string
	Role           *string
	Profile        *string
	State          WorkerState
	Status         string
	Workspace      WorkerWorkspace
	Implementation WorkerImplementation
	Capabilities   WorkerCapabilities
	// LastSeenAt is the time of the Worker's last event, nil where the
	// Source does not know it (local pods).
	LastSeenAt *time.Time
	// Diagnostics concern this Worker alone (at most MaxDiagnostics); empty,
	// never nil, when none.
	Diagnostics []Diagnostic
}

// Ref returns the Worker's authority key.
func (w Worker) Ref() WorkerRef { return WorkerRef{RuntimeID: w.RuntimeID, WorkerID: w.ID} }

// Severity grades a Diagnostic.
type Severity string

// The severities.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Diagnostic is a browser-safe note about a list: why something was skipped or
// degraded. Message never holds a path, socket, session or token.
type Diagnostic struct {
	Code     string
	Severity Severity
	Message  string
}

// MaxDiagnostics caps the diagnostics of one list response.
const MaxDiagnostics = 16

// IntentKind is what a create request asks a Worker to be for.
type IntentKind string

// The intent kinds.
const (
	IntentAssistant IntentKind = "assistant"
	IntentTask      IntentKind = "task"
	IntentRole      IntentKind = "role"
)

// Intent is the intent-based description of a Worker to create: the caller
// says what it wants, never where or how to run it.
type Intent struct {
	Kind      IntentKind
	Purpose   string
	Objective string
	Role      string
}

// CreateWorkerRequest asks a Runtime to create a Worker.
type CreateWorkerRequest struct {
	Intent Intent
	// Profile is an optional profile selector.
	Profile string
	// WorkerName is an optional requested display name; never authority.
	WorkerName string
	// IdempotencyKey, when set, makes a retried create answer the first
	// result: the owning Runtime enforces it (idempotency_key_reused for the
	// same key with another request).
	IdempotencyKey string
}

// InputKind says who speaks in a Worker input.
type InputKind string

// The input kinds.
const (
	InputUser   InputKind = "user"
	InputSystem InputKind = "system"
)

// WorkerInput is one input sent to a Worker.
type WorkerInput struct {
	Kind    InputKind
	Content string
}

// StopMode says how a Worker is to stop.
type StopMode string

// The stop modes.
const (
	StopGraceful StopMode = "graceful"
	StopForce    StopMode = "force"
)

// InputAck acknowledges an input accepted by a Runtime.
type InputAck struct {
	Ref      WorkerRef
	Accepted bool
	// Sequence is the transcript sequence the input was recorded under; 0
	// when the Runtime keeps no transcript.
	Sequence int64
}

// StopAck acknowledges a stop accepted by a Runtime.
type StopAck struct {
	Ref   WorkerRef
	Mode  StopMode
	State WorkerState
	// Status is the Worker's detailed status after the stop was accepted.
	Status string
}

// Profile is one profile a create may name: the operator's profiles file
// names the command; the browser only ever sees the name and display text.
type Profile struct {
	Name        string
	Label       string
	Description string
}

// TranscriptQuery asks for one page of a Worker's transcript.
type TranscriptQuery struct {
	// After is exclusive: entries with a larger sequence are returned.
	After int64
	// Limit is 1 to MaxTranscriptLimit.
	Limit int
}

// Transcript roles.
const (
	RoleUser      = "user"
	RoleSystem    = "system"
	RoleAssistant = "assistant"
)

// Transcript page bounds.
const (
	DefaultTranscriptLimit = 100
	MaxTranscriptLimit     = 200
)

// TranscriptEntry is one line of a Worker's conversation. Content is the
// Worker's data, passed through as is.
type TranscriptEntry struct {
	Sequence int64
	Role     string
	Content  string
	At       time.Time
}

// TranscriptPage is one page of a Worker's transcript.
type TranscriptPage struct {
	Ref   WorkerRef
	Items []TranscriptEntry
	// NextAfter resumes after this page; 0 when nothing more exists.
	NextAfter int64
	// FirstSequence is the oldest retained entry (older ones were trimmed);
	// LastSequence the newest. Both are 0 for an empty transcript.
	FirstSequence int64
	LastSequence  int64
}
