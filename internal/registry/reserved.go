package registry

import (
	"context"
	"fmt"
	"runtime"
)

// ReservedSource holds a runtime_id for a Runtime that is not connected (a
// configured Runtime that failed to start, say). It is listed with source
// status reserved, implements no operation, and answers runtime_unavailable
// for every read: it never fakes a Worker or a result.
type ReservedSource struct {
	id    RuntimeID
	kind  SourceKind
	label string
}

var _ Source = (*ReservedSource)(nil)

// NewReservedSource reserves id for a Runtime of the given kind.
func NewReservedSource(id RuntimeID, kind SourceKind, label string) *ReservedSource {
	return &ReservedSource{id: id, kind: kind, label: label}
}

// RuntimeID returns the reserved id.
func (s *ReservedSource) RuntimeID() RuntimeID { return s.id }

// Summary projects the reserved Runtime: unavailable, no hosts, no capabilities.
func (s *ReservedSource) Summary(context.Context) (RuntimeSummary, error) {
	return RuntimeSummary{
		ID:      s.id,
		Label:   s.label,
		Kind:    string(s.kind),
		Status:  Unavailable,
		HostIDs: []HostID{},
		Source: SourceInfo{
			Kind:              s.kind,
			Status:            SourceReserved,
			IdentityAuthority: IdentityAuthorityProjection,
			Note:              fmt.Sprintf("Reserved for a %s runtime; it is not connected yet.", s.kind),
		},
		Capabilities: Capabilities{
			LocalPodInspection: InspectionUnavailable,
			WorkspaceScope:     WorkspaceScopeCurrent,
			OS:                 runtime.GOOS,
			Arch:               runtime.GOARCH,
		},
		Diagnostics: []Diagnostic{{Code: "runtime_unavailable", Severity: SeverityWarning,
			Message: "The runtime is reserved and not connected yet."}},
	}, nil
}

func (s *ReservedSource) unavailable() *Error {
	return RuntimeUnavailable(s.id, "The runtime is reserved and not connected yet.", nil)
}

// Hosts answers runtime_unavailable.
func (s *ReservedSource) Hosts(context.Context) ([]Host, []Diagnostic, error) {
	return nil, nil, s.unavailable()
}

// Workers answers runtime_unavailable.
func (s *ReservedSource) Workers(context.Context, WorkerQuery) (WorkerPage, error) {
	return WorkerPage{}, s.unavailable()
}

// Worker answers runtime_unavailable.
func (s *ReservedSource) Worker(context.Context, WorkerID) (Worker, error) {
	return Worker{}, s.unavailable()
}
