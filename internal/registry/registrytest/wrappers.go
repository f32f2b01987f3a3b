package registrytest

import (
	"context"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The wrapper types add optional operations to a *Source: the registry
// derives capabilities and answers operation_unsupported from what the
// wrapper in use implements. Build one with a keyed literal, e.g.
// registrytest.Full{Source: src}; configure src.

// Creator is a Source that creates Workers.
type Creator struct{ *Source }

// InputSender is a Source whose Workers accept input.
type InputSender struct{ *Source }

// Stopper is a Source whose Workers can be stopped.
type Stopper struct{ *Source }

// TranscriptReader is a Source that keeps transcripts.
type TranscriptReader struct{ *Source }

// ProfileLister is a Source that lists profiles.
type ProfileLister struct{ *Source }

// EventStreamer is a Source that streams events.
type EventStreamer struct{ *Source }

// Full is a Source with every optional operation and a Description.
type Full struct{ *Source }

var (
	_ registry.WorkerCreator    = Creator{}
	_ registry.InputSender      = InputSender{}
	_ registry.WorkerStopper    = Stopper{}
	_ registry.TranscriptReader = TranscriptReader{}
	_ registry.ProfileLister    = ProfileLister{}
	_ registry.EventStreamer    = EventStreamer{}

	_ registry.Source           = Full{}
	_ registry.WorkerCreator    = Full{}
	_ registry.InputSender      = Full{}
	_ registry.WorkerStopper    = Full{}
	_ registry.TranscriptReader = Full{}
	_ registry.ProfileLister    = Full{}
	_ registry.EventStreamer    = Full{}
	_ registry.Describer        = Full{}
)

// CreateWorker creates a Worker "created-N" (starting), labelled with the
// requested name.
func (c Creator) CreateWorker(ctx context.Context, req registry.CreateWorkerRequest) (registry.Worker, error) {
	return c.createWorker(ctx, req)
}

// SendInput records the input in the Worker's transcript.
func (i InputSender) SendInput(ctx context.Context, id registry.WorkerID, in registry.WorkerInput) (registry.InputAck, error) {
	return i.sendInput(ctx, id, in)
}

// StopWorker marks the Worker stopping.
func (st Stopper) StopWorker(ctx context.Context, id registry.WorkerID, mode registry.StopMode) (registry.StopAck, error) {
	return st.stopWorker(ctx, id, mode)
}

// Transcript returns one page of the Worker's inputs.
func (t TranscriptReader) Transcript(ctx context.Context, id registry.WorkerID, q registry.TranscriptQuery) (registry.TranscriptPage, error) {
	return t.transcript(ctx, id, q)
}

// Profiles returns the profiles set by SetProfiles.
func (p ProfileLister) Profiles(ctx context.Context) ([]registry.Profile, error) {
	return p.listProfiles(ctx)
}

// Events opens an event stream.
func (e EventStreamer) Events(ctx context.Context, q registry.EventQuery) (registry.EventStream, error) {
	return e.events(ctx, q)
}

// CreateWorker is Creator's.
func (f Full) CreateWorker(ctx context.Context, req registry.CreateWorkerRequest) (registry.Worker, error) {
	return f.createWorker(ctx, req)
}

// SendInput is InputSender's.
func (f Full) SendInput(ctx context.Context, id registry.WorkerID, in registry.WorkerInput) (registry.InputAck, error) {
	return f.sendInput(ctx, id, in)
}

// StopWorker is Stopper's.
func (f Full) StopWorker(ctx context.Context, id registry.WorkerID, mode registry.StopMode) (registry.StopAck, error) {
	return f.stopWorker(ctx, id, mode)
}

// Transcript is TranscriptReader's.
func (f Full) Transcript(ctx context.Context, id registry.WorkerID, q registry.TranscriptQuery) (registry.TranscriptPage, error) {
	return f.transcript(ctx, id, q)
}

// Profiles is ProfileLister's.
func (f Full) Profiles(ctx context.Context) ([]registry.Profile, error) {
	return f.listProfiles(ctx)
}

// Events is EventStreamer's.
func (f Full) Events(ctx context.Context, q registry.EventQuery) (registry.EventStream, error) {
	return f.events(ctx, q)
}

// Describe says what the double is without asking it.
func (f Full) Describe() registry.Description {
	return registry.Description{Label: "Test " + string(f.id), Kind: "test", SourceKind: registry.SourceEmbeddedWorkerRuntime}
}
