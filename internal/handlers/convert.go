package handlers

import (
	"time"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// All conversions between the generated models and the registry's domain types
// live in this file, so that generated types never leak into the domain.

func capabilitiesOut(c registry.Capabilities) gen.Capabilities {
	return gen.Capabilities{
		CanListHosts:                 c.CanListHosts,
		CanListWorkers:               c.CanListWorkers,
		CanGetWorker:                 c.CanGetWorker,
		CanSpawnWorker:               c.CanSpawnWorker,
		CanStopWorker:                c.CanStopWorker,
		CanAcceptInput:               c.CanAcceptInput,
		CanStreamEvents:              c.CanStreamEvents,
		CanReadBoundedTranscript:     c.CanReadBoundedTranscript,
		HasWorkspaceFs:               c.HasWorkspaceFS,
		HasShell:                     c.HasShell,
		HasGit:                       c.HasGit,
		SupportsWorktrees:            c.SupportsWorktrees,
		SupportsBackendInternalTools: c.SupportsBackendInternalTools,
		LocalPodInspection:           gen.CapabilitiesLocalPodInspection(c.LocalPodInspection),
		WorkspaceScope:               gen.CapabilitiesWorkspaceScope(c.WorkspaceScope),
		MaxWorkers:                   derefInt(c.MaxWorkers),
		Os:                           c.OS,
		Arch:                         c.Arch,
	}
}

func runtimeOut(s registry.RuntimeSummary) gen.RuntimeSummary {
	hostIDs := make([]gen.Identifier, len(s.HostIDs))
	for i, h := range s.HostIDs {
		hostIDs[i] = string(h)
	}
	return gen.RuntimeSummary{
		RuntimeId: string(s.ID),
		Label:     s.Label,
		Kind:      s.Kind,
		Status:    gen.RuntimeStatus(s.Status),
		HostIds:   hostIDs,
		Source: gen.RuntimeSource{
			Kind:              gen.SourceKind(s.Source.Kind),
			Status:            gen.SourceStatus(s.Source.Status),
			IdentityAuthority: gen.IdentityAuthority(s.Source.IdentityAuthority),
			Note:              s.Source.Note,
		},
		Capabilities: capabilitiesOut(s.Capabilities),
		Diagnostics:  diagnosticsOut(s.Diagnostics),
	}
}

func hostOut(h registry.Host) gen.HostSummary {
	return gen.HostSummary{
		HostId:       string(h.ID),
		RuntimeId:    string(h.RuntimeID),
		Kind:         h.Kind,
		Label:        h.Label,
		Status:       gen.HostStatus(h.Status),
		ObservedAt:   h.ObservedAt.UTC(),
		LastSeenAt:   timeOut(h.LastSeenAt),
		Capabilities: capabilitiesOut(h.Capabilities),
		Diagnostics:  diagnosticsOut(h.Diagnostics),
	}
}

func workerOut(w registry.Worker) gen.WorkerSummary {
	return gen.WorkerSummary{
		WorkerId:  string(w.ID),
		RuntimeId: string(w.RuntimeID),
		HostId:    string(w.HostID),
		Label:     w.Label,
		Role:      w.Role,
		Profile:   w.Profile,
		State:     gen.WorkerState(w.State),
		Status:    w.Status,
		Workspace: gen.WorkerWorkspace{
			Visibility: gen.WorkerWorkspaceVisibility(w.Workspace.Visibility),
			Identity:   gen.WorkerWorkspaceIdentity(w.Workspace.Identity),
		},
		Implementation: gen.WorkerImplementation{
			Kind:        gen.WorkerImplementationKind(w.Implementation.Kind),
			DisplayHint: w.Implementation.DisplayHint,
		},
		Capabilities: gen.WorkerCapabilities{
			CanGetWorker:             w.Capabilities.CanGetWorker,
			CanStopWorker:            w.Capabilities.CanStopWorker,
			CanStop:                  w.Capabilities.CanStop,
			CanAcceptInput:           w.Capabilities.CanAcceptInput,
			CanStreamEvents:          w.Capabilities.CanStreamEvents,
			CanReadBoundedTranscript: w.Capabilities.CanReadBoundedTranscript,
			CanSpawnFollowup:         w.Capabilities.CanSpawnFollowup,
		},
		LastSeenAt:  timeOut(w.LastSeenAt),
		Diagnostics: diagnosticsOut(w.Diagnostics),
	}
}

func diagnosticsOut(ds []registry.Diagnostic) []gen.Diagnostic {
	out := make([]gen.Diagnostic, len(ds))
	for i, d := range ds {
		out[i] = gen.Diagnostic{Code: d.Code, Severity: gen.DiagnosticSeverity(d.Severity), Message: d.Message}
	}
	return out
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func cursorOut(c string) *string {
	if c == "" {
		return nil
	}
	return &c
}

func runtimeListOut(l registry.List[registry.RuntimeSummary]) gen.RuntimeList {
	return gen.RuntimeList{
		WorkspaceId: l.WorkspaceID,
		Limit:       l.Limit,
		Items:       mapSlice(l.Items, runtimeOut),
		Source:      gen.ListSourceWorkerRuntimeRegistry,
		Diagnostics: diagnosticsOut(l.Diagnostics),
		NextCursor:  cursorOut(l.NextCursor),
	}
}

func hostListOut(l registry.List[registry.Host]) gen.HostList {
	return gen.HostList{
		WorkspaceId: l.WorkspaceID,
		Limit:       l.Limit,
		Items:       mapSlice(l.Items, hostOut),
		Source:      gen.ListSourceWorkerRuntimeRegistry,
		Diagnostics: diagnosticsOut(l.Diagnostics),
		NextCursor:  cursorOut(l.NextCursor),
	}
}

func workerListOut(l registry.List[registry.Worker]) gen.WorkerList {
	return gen.WorkerList{
		WorkspaceId: l.WorkspaceID,
		Limit:       l.Limit,
		Items:       mapSlice(l.Items, workerOut),
		Source:      gen.ListSourceWorkerRuntimeRegistry,
		Diagnostics: diagnosticsOut(l.Diagnostics),
		NextCursor:  cursorOut(l.NextCursor),
	}
}

func profileListOut(l registry.List[registry.Profile]) gen.ProfileList {
	return gen.ProfileList{
		WorkspaceId: l.WorkspaceID,
		Limit:       l.Limit,
		Items: mapSlice(l.Items, func(p registry.Profile) gen.ProfileSummary {
			out := gen.ProfileSummary{Name: p.Name, Label: p.Label}
			if p.Description != "" {
				out.Description = ptr(p.Description)
			}
			return out
		}),
		Source:      gen.ListSourceWorkerRuntimeRegistry,
		Diagnostics: diagnosticsOut(l.Diagnostics),
	}
}

func transcriptItemOut(e registry.TranscriptEntry) gen.TranscriptItem {
	return gen.TranscriptItem{Sequence: e.Sequence, Role: gen.TranscriptRole(e.Role), Content: e.Content, At: e.At.UTC()}
}

func transcriptPageOut(p registry.TranscriptPage) gen.TranscriptPage {
	out := gen.TranscriptPage{
		RuntimeId:     string(p.Ref.RuntimeID),
		WorkerId:      string(p.Ref.WorkerID),
		Items:         mapSlice(p.Items, transcriptItemOut),
		FirstSequence: p.FirstSequence,
		LastSequence:  p.LastSequence,
	}
	if p.NextAfter > 0 {
		out.NextAfter = ptr(p.NextAfter)
	}
	return out
}

// timeOut is the wire form of an optional time: UTC, or null.
func timeOut(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func createRequestIn(b gen.CreateWorkerRequest) registry.CreateWorkerRequest {
	return registry.CreateWorkerRequest{
		Intent: registry.Intent{
			Kind:      registry.IntentKind(b.Intent.Kind),
			Purpose:   deref(b.Intent.Purpose),
			Objective: deref(b.Intent.Objective),
			Role:      deref(b.Intent.Role),
		},
		Profile:    deref(b.Profile),
		WorkerName: deref(b.WorkerName),
	}
}
