package remote

import (
	"regexp"
	"strings"

	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// All conversions between the worker-runtime client's models and the
// registry live here. Display strings are bounded to what the browser
// contract allows; ids and states that fail its rules make the answer a
// bad response.

var statusRE = regexp.MustCompile(`^[a-z0-9_:-]{1,64}$`)

// display bounds a display string to n runes, without control characters.
func display(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, r := range strings.ToValidUTF8(s, "") {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			continue
		}
		b.WriteRune(r)
		count++
		if count == n {
			break
		}
	}
	return strings.TrimSpace(b.String())
}

func optDisplay(s *string, n int) *string {
	if s == nil {
		return nil
	}
	v := display(*s, n)
	if v == "" {
		return nil
	}
	return &v
}

func workerState(s gen.WorkerState) (registry.WorkerState, bool) {
	switch s {
	case gen.WorkerStateStarting:
		return registry.WorkerStarting, true
	case gen.WorkerStateActive:
		return registry.WorkerActive, true
	case gen.WorkerStateStopping:
		return registry.WorkerStopping, true
	case gen.WorkerStateStopped:
		return registry.WorkerStopped, true
	}
	return "", false
}

// workerIn projects one of the Runtime's Workers; ok is false when it
// breaks the contract (a bad response).
func (s *Source) workerIn(w gen.Worker) (registry.Worker, bool) {
	state, ok := workerState(w.State)
	if !ok || !registry.ValidID(w.WorkerId) {
		return registry.Worker{}, false
	}
	status := w.Status
	if !statusRE.MatchString(status) {
		status = string(state)
	}
	profile := display(w.Profile, 80)
	label := display(deref(w.Label), 80)
	if label == "" {
		label = display(w.ProfileLabel, 80)
	}
	if label == "" {
		label = profile
	}
	var profilePtr *string
	if profile != "" {
		profilePtr = &profile
	}
	seen := w.UpdatedAt.UTC()
	live := state != registry.WorkerStopped
	return registry.Worker{
		ID:        registry.WorkerID(w.WorkerId),
		RuntimeID: s.cfg.ID,
		HostID:    s.hostID,
		Label:     label,
		Role:      optDisplay(w.Intent.Role, 80),
		Profile:   profilePtr,
		State:     state,
		Status:    status,
		Workspace: registry.WorkerWorkspace{Visibility: registry.WorkspaceScopeCurrent, Identity: "runtime_workspace"},
		Implementation: registry.WorkerImplementation{
			Kind:        registry.ImplementationRemoteWorker,
			DisplayHint: display(w.ProfileLabel, 80),
		},
		Capabilities: registry.WorkerCapabilities{
			CanGetWorker:             true,
			CanStopWorker:            live,
			CanStop:                  live,
			CanAcceptInput:           state == registry.WorkerActive,
			CanStreamEvents:          true,
			CanReadBoundedTranscript: true,
		},
		LastSeenAt:  &seen,
		Diagnostics: []registry.Diagnostic{},
	}, true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func intentOut(in registry.Intent) gen.WorkerIntent {
	return gen.WorkerIntent{
		Kind:      gen.WorkerIntentKind(in.Kind),
		Purpose:   optString(in.Purpose),
		Objective: optString(in.Objective),
		Role:      optString(in.Role),
	}
}

func createOut(req registry.CreateWorkerRequest) gen.CreateWorkerRequest {
	return gen.CreateWorkerRequest{
		Intent:     intentOut(req.Intent),
		Profile:    optString(req.Profile),
		WorkerName: optString(req.WorkerName),
	}
}

func roleIn(r gen.TranscriptRole) (string, bool) {
	switch r {
	case gen.TranscriptRoleUser, gen.TranscriptRoleSystem, gen.TranscriptRoleAssistant:
		return string(r), true
	}
	return "", false
}

func entryIn(e gen.TranscriptItem) (registry.TranscriptEntry, bool) {
	role, ok := roleIn(e.Role)
	if !ok || e.Sequence < 1 {
		return registry.TranscriptEntry{}, false
	}
	return registry.TranscriptEntry{Sequence: e.Sequence, Role: role, Content: e.Content, At: e.At.UTC()}, true
}

func transcriptIn(ref registry.WorkerRef, p gen.TranscriptPage) (registry.TranscriptPage, bool) {
	out := registry.TranscriptPage{Ref: ref, Items: make([]registry.TranscriptEntry, 0, len(p.Items)),
		FirstSequence: p.FirstSequence, LastSequence: p.LastSequence, NextAfter: deref(p.NextAfter)}
	if p.FirstSequence < 0 || p.LastSequence < 0 || out.NextAfter < 0 || len(p.Items) > registry.MaxTranscriptLimit {
		return registry.TranscriptPage{}, false
	}
	for _, e := range p.Items {
		entry, ok := entryIn(e)
		if !ok {
			return registry.TranscriptPage{}, false
		}
		out.Items = append(out.Items, entry)
	}
	return out, true
}

func profilesIn(info gen.RuntimeInfo) []registry.Profile {
	out := make([]registry.Profile, 0, len(info.Profiles))
	// The default first, as the browser contract says.
	for pass := 0; pass < 2; pass++ {
		for _, p := range info.Profiles {
			if p.Default != (pass == 0) || !profileNameRE.MatchString(p.Name) {
				continue
			}
			out = append(out, registry.Profile{Name: p.Name, Label: display(p.Label, 80), Description: display(deref(p.Description), 512)})
		}
	}
	return out
}

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,80}$`)
