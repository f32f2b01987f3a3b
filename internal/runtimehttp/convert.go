package runtimehttp

import (
	"encoding/json"
	"runtime"

	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/sse"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// All conversions between the generated models and the domain live here.

// Limits the contract states in RuntimeInfo.limits.
const (
	maxInputBytes     = 64 << 10
	maxTranscriptPage = 200
	maxListLimit      = 200
)

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func intentOut(in workerruntime.Intent) gen.WorkerIntent {
	return gen.WorkerIntent{
		Kind:      gen.WorkerIntentKind(in.Kind),
		Purpose:   optString(in.Purpose),
		Objective: optString(in.Objective),
		Role:      optString(in.Role),
	}
}

func intentIn(in gen.WorkerIntent) workerruntime.Intent {
	return workerruntime.Intent{
		Kind:      workerruntime.IntentKind(in.Kind),
		Purpose:   deref(in.Purpose),
		Objective: deref(in.Objective),
		Role:      deref(in.Role),
	}
}

func workerOut(w workerruntime.Worker) gen.Worker {
	out := gen.Worker{
		WorkerId:     w.ID,
		Profile:      w.Profile,
		ProfileLabel: w.ProfileLabel,
		Label:        optString(w.Label),
		Intent:       intentOut(w.Intent),
		State:        gen.WorkerState(w.State),
		Status:       w.Status,
		CreatedAt:    w.CreatedAt.UTC(),
		UpdatedAt:    w.UpdatedAt.UTC(),
	}
	if !w.StoppedAt.IsZero() {
		t := w.StoppedAt.UTC()
		out.StoppedAt = &t
	}
	return out
}

func createIn(body gen.CreateWorkerRequest, key *string) workerruntime.CreateRequest {
	return workerruntime.CreateRequest{
		Intent:         intentIn(body.Intent),
		Profile:        deref(body.Profile),
		Label:          deref(body.WorkerName),
		IdempotencyKey: deref(key),
	}
}

func listOut(p workerruntime.WorkerPage) gen.WorkerList {
	out := gen.WorkerList{Items: make([]gen.Worker, 0, len(p.Workers))}
	for _, w := range p.Workers {
		out.Items = append(out.Items, workerOut(w))
	}
	if p.More && len(p.Workers) > 0 {
		next := p.Workers[len(p.Workers)-1].ID
		out.NextCursor = &next
	}
	return out
}

func entryOut(e workerruntime.TranscriptEntry) gen.TranscriptItem {
	return gen.TranscriptItem{Sequence: e.Sequence, Role: gen.TranscriptRole(e.Role), Content: e.Content, At: e.At.UTC()}
}

func transcriptOut(p workerruntime.TranscriptPage) gen.TranscriptPage {
	out := gen.TranscriptPage{
		WorkerId:      p.WorkerID,
		Items:         make([]gen.TranscriptItem, 0, len(p.Items)),
		FirstSequence: p.FirstSequence,
		LastSequence:  p.LastSequence,
	}
	for _, e := range p.Items {
		out.Items = append(out.Items, entryOut(e))
	}
	if p.NextAfter > 0 {
		n := p.NextAfter
		out.NextAfter = &n
	}
	return out
}

func infoOut(info workerruntime.RuntimeInfo, label, version string, closing bool) gen.RuntimeInfo {
	out := gen.RuntimeInfo{
		InstanceId: info.InstanceID,
		Label:      label,
		Version:    version,
		Os:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		Status:     gen.RuntimeStatusAvailable,
		Profiles:   make([]gen.ProfileSummary, 0, len(info.Profiles)),
		Limits: gen.RuntimeLimits{
			MaxWorkers:        info.MaxWorkers,
			MaxInputBytes:     maxInputBytes,
			MaxTranscriptPage: maxTranscriptPage,
		},
		Counts: gen.RuntimeCounts{
			Starting: info.Counts[workerruntime.StateStarting],
			Active:   info.Counts[workerruntime.StateActive],
			Stopping: info.Counts[workerruntime.StateStopping],
		},
	}
	if closing {
		out.Status = gen.RuntimeStatusDegraded
	}
	for _, p := range info.Profiles {
		out.Profiles = append(out.Profiles, gen.ProfileSummary{
			Name: p.Name, Label: p.Label, Description: optString(p.Description), Default: p.Default,
		})
	}
	return out
}

// eventData is the contract's data object of one event.
func eventData(ev workerruntime.Event) any {
	switch ev.Kind {
	case workerruntime.EventWorkerUpserted:
		if ev.Worker != nil {
			return workerOut(*ev.Worker)
		}
	case workerruntime.EventWorkerRemoved:
		return gen.WorkerRemovedEvent{WorkerId: ev.WorkerID}
	case workerruntime.EventTranscriptAppended:
		if ev.Entry != nil {
			return gen.TranscriptAppendedEvent{
				WorkerId: ev.WorkerID, Sequence: ev.Entry.Sequence, Role: gen.TranscriptRole(ev.Entry.Role),
				Content: ev.Entry.Content, At: ev.Entry.At.UTC(),
			}
		}
	}
	return nil
}

// sseFrame encodes one event as an SSE frame (JSON holds no raw newline, so
// the data fits one data: line). An event without its payload, or of an
// unknown kind, becomes a resync: the client re-reads, nothing is lost.
func sseFrame(ev workerruntime.Event) ([]byte, error) {
	kind := ev.Kind
	data := eventData(ev)
	if kind == workerruntime.EventResync || data == nil {
		kind = workerruntime.EventResync
		reason := ev.Reason
		switch reason {
		case workerruntime.ResyncCursorUnknown, workerruntime.ResyncCursorExpired, workerruntime.ResyncSubscriberLagged:
		default:
			reason = workerruntime.ResyncCursorUnknown
		}
		data = gen.ResyncEvent{Reason: gen.ResyncEventReason(reason)}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return sse.Frame(ev.Cursor, string(kind), raw), nil
}
