package compat_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

func TestSummaryAndHosts(t *testing.T) {
	f := newFixture(t)
	s := f.source()
	ctx := context.Background()
	host := compat.HostIDFor("my-workspace")
	maxWorkers := registry.DefaultMaxRecords
	caps := registry.Capabilities{
		CanListHosts: true, CanListWorkers: true, CanGetWorker: true, CanStreamEvents: true,
		LocalPodInspection: "available", WorkspaceScope: "current_workspace",
		MaxWorkers: &maxWorkers, OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
	sum, err := s.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Source.Note == "" {
		t.Error("source note is empty")
	}
	sum.Source.Note = ""
	want := registry.RuntimeSummary{
		ID: "local-worker-runtime", Label: "Local Worker runtime", Kind: "local_pod",
		Status: registry.Available, HostIDs: []registry.HostID{host},
		Source: registry.SourceInfo{Kind: registry.SourceLocalCompatibility, Status: registry.SourceActive,
			IdentityAuthority: "runtime_registry_projection"},
		Capabilities: caps,
		Diagnostics:  []registry.Diagnostic{},
	}
	if !reflect.DeepEqual(sum, want) {
		t.Errorf("Summary\n got %+v\nwant %+v", sum, want)
	}
	hosts, diags, err := s.Hosts(ctx)
	if err != nil || len(diags) != 0 {
		t.Fatalf("Hosts: %v %+v", err, diags)
	}
	if len(hosts) != 1 || hosts[0].ObservedAt.IsZero() {
		t.Fatalf("Hosts = %+v, want one with observed_at", hosts)
	}
	observed := hosts[0].ObservedAt
	wantHosts := []registry.Host{{ID: host, RuntimeID: compat.RuntimeID, Kind: "local-worker-host",
		Label: "project", Status: registry.Available, Capabilities: caps,
		ObservedAt: observed, LastSeenAt: nil, Diagnostics: []registry.Diagnostic{}}}
	if !reflect.DeepEqual(hosts, wantHosts) {
		t.Errorf("Hosts\n got %+v\nwant %+v", hosts, wantHosts)
	}
	if s.RuntimeID() != compat.RuntimeID {
		t.Errorf("RuntimeID = %q", s.RuntimeID())
	}
}

// Per-pod problems do not degrade the host or show in the host list.
func TestHostsIgnorePodProblems(t *testing.T) {
	f := newFixture(t)
	f.podDir("broken")
	hosts, diags, err := f.source().Hosts(context.Background())
	if err != nil || len(diags) != 0 || hosts[0].Status != registry.Available {
		t.Errorf("Hosts = %+v %+v %v", hosts, diags, err)
	}
}

func TestHostLabel(t *testing.T) {
	tests := []struct{ root, want string }{
		{"/home/u/project", "project"},
		{"/home/u/project/", "project"},
		{`C:\Users\u\proj`, "proj"},
		{"relative/dir", "dir"},
		{"", "workspace"},
		{"/", "workspace"},
		{".", "workspace"},
		{"///", "workspace"},
		{"/x/bad\x01name", "badname"},
		{"/x/in\u200bvis\u2028ible\U000E0041", "invisible"},
		{"/x/\ufeff\u00ad", "workspace"},
	}
	for _, tt := range tests {
		hosts, _, _ := compat.New(compat.Config{WorkspaceRoot: tt.root}).Hosts(context.Background())
		if got := hosts[0].Label; got != tt.want {
			t.Errorf("root %q: label %q, want %q", tt.root, got, tt.want)
		}
	}
}

func TestPaging(t *testing.T) {
	f := newFixture(t)
	pods := []string{"e", "a", "c", "b", "d"}
	for _, p := range pods {
		f.pod(p, nil)
	}
	f.podDir("broken") // every page carries the diagnostics
	ids := make([]registry.WorkerID, 0, len(pods))
	for _, p := range pods {
		ids = append(ids, compat.WorkerIDFor(p))
	}
	slices.Sort(ids)
	s := f.source()
	host := compat.HostIDFor("my-workspace")

	tests := []struct {
		name string
		q    registry.WorkerQuery
		want []registry.WorkerID
		more bool
	}{
		{"all", registry.WorkerQuery{Limit: 10}, ids, false},
		{"exact fit", registry.WorkerQuery{Limit: 5}, ids, false},
		{"first page", registry.WorkerQuery{Limit: 2}, ids[:2], true},
		{"second page", registry.WorkerQuery{After: ids[1], Limit: 2}, ids[2:4], true},
		{"last page", registry.WorkerQuery{After: ids[3], Limit: 2}, ids[4:], false},
		{"after the last", registry.WorkerQuery{After: ids[4], Limit: 2}, nil, false},
		{"after a non-member", registry.WorkerQuery{After: ids[1] + "0", Limit: 10}, ids[2:], false},
		{"after sorts before all", registry.WorkerQuery{After: "a", Limit: 1}, ids[:1], true},
		{"own host", registry.WorkerQuery{Limit: 10, HostID: host}, ids, false},
		{"other host", registry.WorkerQuery{Limit: 10, HostID: "local-other-0123456789abcdef"}, nil, false},
		{"zero limit is bounded", registry.WorkerQuery{}, ids, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.Workers(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			got := []registry.WorkerID{}
			for _, w := range page.Workers {
				got = append(got, w.ID)
			}
			if !slices.Equal(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			if page.More != tt.more {
				t.Errorf("More = %v, want %v", page.More, tt.more)
			}
			wantDiags := []string{compat.DiagMetadataUnreadable}
			if tt.q.HostID != "" && tt.q.HostID != host {
				wantDiags = []string{}
			}
			if !slices.Equal(codes(page.Diagnostics), wantDiags) {
				t.Errorf("diagnostics = %v, want %v", codes(page.Diagnostics), wantDiags)
			}
		})
	}
}

func TestOperationsUnsupported(t *testing.T) {
	f := newFixture(t)
	f.pod("p", nil)
	var s registry.Source = f.source()
	if _, ok := s.(registry.WorkerCreator); ok {
		t.Error("the compat source implements create")
	}
	if _, ok := s.(registry.InputSender); ok {
		t.Error("the compat source implements input")
	}
	if _, ok := s.(registry.WorkerStopper); ok {
		t.Error("the compat source implements stop")
	}
	if _, ok := s.(registry.TranscriptReader); ok {
		t.Error("the compat source implements transcripts")
	}
}

// Through the real registry: paging by cursor, lookups and routing.
func TestThroughRegistry(t *testing.T) {
	f := newFixture(t)
	for i := range 7 {
		f.pod(fmt.Sprintf("w%d", i), nil)
	}
	f.pod("other", map[string]any{"workspace_root": "/other"})
	reg, err := registry.New(registry.Options{WorkspaceID: "my-workspace", Auditor: registry.Auditors{}}, f.source())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var all []registry.WorkerID
	cursor := ""
	for range 10 {
		l, err := reg.RuntimeWorkers(ctx, compat.RuntimeID, 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range l.Items {
			all = append(all, w.ID)
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if len(all) != 7 || !slices.IsSorted(all) {
		t.Errorf("paged ids = %v", all)
	}
	hw, err := reg.HostWorkers(ctx, compat.HostIDFor("my-workspace"))
	if err != nil || len(hw.Items) != 7 {
		t.Errorf("HostWorkers: %d items, %v", len(hw.Items), err)
	}
	ref := registry.WorkerRef{RuntimeID: compat.RuntimeID, WorkerID: compat.WorkerIDFor("other")}
	if _, err := reg.Worker(ctx, ref); !errors.Is(err, registry.ErrWorkerNotVisible) {
		t.Errorf("other workspace: %v", err)
	}
	ref.WorkerID = compat.WorkerIDFor("w1")
	if _, err := reg.StopWorker(ctx, ref, registry.StopForce); !errors.Is(err, registry.ErrOperationUnsupported) {
		t.Errorf("stop: %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	f := newFixture(t)
	for i := range 10 {
		f.pod(fmt.Sprintf("w%d", i), nil)
	}
	s := f.source()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := s.Workers(ctx, registry.WorkerQuery{Limit: 3}); err != nil {
					t.Error(err)
				}
				if _, err := s.Worker(ctx, compat.WorkerIDFor(fmt.Sprintf("w%d", i))); err != nil {
					t.Error(err)
				}
				if _, err := s.Summary(ctx); err != nil {
					t.Error(err)
				}
				if _, _, err := s.Hosts(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// TestVersionedWorker checks the version a lookup carries: the snapshot's
// (the same as a page's), moved by a change of any pod, and none for an
// unstarted Source that reads per call.
func TestVersionedWorker(t *testing.T) {
	f := newFixture(t)
	f.pod("a", map[string]any{"worker_name": "first"})
	f.pod("b", map[string]any{"worker_name": "other"})
	id := compat.WorkerIDFor("a")

	unstarted := compat.New(compat.Config{WorkspaceID: "my-workspace", WorkspaceRoot: f.root, DataDir: f.dataDir})
	if w, v, err := unstarted.VersionedWorker(t.Context(), id); err != nil || v != "" || w.Label != "first" {
		t.Fatalf("unstarted: %q, version %q, %v; want first, no version", w.Label, v, err)
	}

	s := f.source()
	w, v1, err := s.VersionedWorker(t.Context(), id)
	if err != nil || v1 == "" || w.Label != "first" {
		t.Fatalf("started: %q, version %q, %v", w.Label, v1, err)
	}
	if page := list(t, s); page.Version != v1 {
		t.Errorf("lookup version %q, page version %q", v1, page.Version)
	}
	if _, v, err := s.VersionedWorker(t.Context(), compat.WorkerIDFor("missing")); errCode(err) != registry.CodeUnknownWorker || v != v1 {
		t.Errorf("unknown worker: version %q, %v", v, err)
	}

	f.pod("a", map[string]any{"worker_name": "second"})
	eventually(t, "the renamed pod", func() bool {
		w, v, err := s.VersionedWorker(t.Context(), id)
		if err != nil || w.Label != "second" {
			return false
		}
		if v == v1 {
			t.Fatalf("the worker changed under the same version %q", v)
		}
		return true
	})
}
