package compat_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// TestPodDiagnostics puts one pod in each odd condition next to a healthy
// one and checks what the list says and what a lookup answers.
func TestPodDiagnostics(t *testing.T) {
	type setup func(f *fixture, pod string)
	rawMeta := func(s string) setup {
		return func(f *fixture, pod string) { f.raw(pod, []byte(s)) }
	}
	withMeta := func(m map[string]any) setup {
		return func(f *fixture, pod string) { f.pod(pod, m) }
	}
	tests := []struct {
		name     string
		setup    setup
		rootOnly bool // skip when running as root
		listed   bool
		code     string // "" for no diagnostic
		severity registry.Severity
		lookup   registry.Code // "" for success
	}{
		{"missing metadata.json", func(f *fixture, pod string) { f.podDir(pod) },
			false, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"metadata.json is a directory", func(f *fixture, pod string) {
			if err := os.MkdirAll(filepath.Join(f.podDir(pod), "metadata.json"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"metadata.json mode 000", func(f *fixture, pod string) {
			f.pod(pod, nil)
			if err := os.Chmod(filepath.Join(f.pods, pod, "metadata.json"), 0); err != nil {
				t.Fatal(err)
			}
		}, true, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"pod dir mode 000", func(f *fixture, pod string) {
			f.pod(pod, nil)
			dir := filepath.Join(f.pods, pod)
			if err := os.Chmod(dir, 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
		}, true, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"metadata.json is a FIFO", func(f *fixture, pod string) {
			if err := syscall.Mkfifo(filepath.Join(f.podDir(pod), "metadata.json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"metadata.json is a symlink", func(f *fixture, pod string) {
			target := filepath.Join(t.TempDir(), "real.json")
			if err := os.WriteFile(target, []byte(`{"worker_name":"x","workspace_root":`+quote(f.root)+`}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(f.podDir(pod), "metadata.json")); err != nil {
				t.Fatal(err)
			}
		}, false, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"metadata.json is a hard link", func(f *fixture, pod string) {
			// A second name of a file elsewhere (here outside the data dir).
			target := filepath.Join(t.TempDir(), "real.json")
			if err := os.WriteFile(target, []byte(`{"worker_name":"x","workspace_root":`+quote(f.root)+`}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(target, filepath.Join(f.podDir(pod), "metadata.json")); err != nil {
				t.Skipf("no hard links here: %v", err)
			}
		}, false, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"pod dir is a symlink", func(f *fixture, pod string) {
			real := filepath.Join(t.TempDir(), "realpod")
			if err := os.MkdirAll(real, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(real, "metadata.json"), []byte(`{"workspace_root":`+quote(f.root)+`}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, filepath.Join(f.pods, pod)); err != nil {
				t.Fatal(err)
			}
		}, false, false, compat.DiagMetadataUnreadable, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"over 1 MiB", func(f *fixture, pod string) {
			pad := strings.Repeat(" ", 1<<20)
			f.raw(pod, []byte(`{"workspace_root":`+quote(f.root)+`}`+pad))
		}, false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"exactly 1 MiB is read", func(f *fixture, pod string) {
			doc := `{"workspace_root":` + quote(f.root) + `}`
			f.raw(pod, []byte(doc+strings.Repeat(" ", 1<<20-len(doc))))
		}, false, true, "", "", ""},
		{"invalid JSON", rawMeta(`{"worker_name": "x",`), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"empty file", rawMeta(``), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"top-level null", rawMeta(`null`), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"top-level array", rawMeta(`[1]`), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"worker_name is a number", withMeta(map[string]any{"worker_name": 7}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"active is a string", withMeta(map[string]any{"active": "yes"}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"session_id is a number", withMeta(map[string]any{"active": map[string]any{"session_id": 1}}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"segment_id is an object", withMeta(map[string]any{"active": map[string]any{"segment_id": map[string]any{}}}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"workspace_root is a number", withMeta(map[string]any{"workspace_root": 3}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"snapshot is a string", withMeta(map[string]any{"resolved_manifest_snapshot": "x"}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"role is a number", withMeta(map[string]any{"resolved_manifest_snapshot": map[string]any{"role": 1}}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"role is an array", withMeta(map[string]any{"resolved_manifest_snapshot": map[string]any{"role": []any{"a"}}}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"role_claim is a string", withMeta(map[string]any{"resolved_manifest_snapshot": map[string]any{"role_claim": "a"}}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"profile name is a number", withMeta(map[string]any{"resolved_manifest_snapshot": map[string]any{"profile": map[string]any{"name": 5}}}), false, false, compat.DiagMetadataInvalid, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"workspace_root absent", rawMeta(`{"worker_name":"p"}`), false, false, compat.DiagWorkspaceRootMissing, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"workspace_root empty", withMeta(map[string]any{"workspace_root": ""}), false, false, compat.DiagWorkspaceRootMissing, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"workspace_root null", withMeta(map[string]any{"workspace_root": nil}), false, false, compat.DiagWorkspaceRootMissing, registry.SeverityWarning, registry.CodeUnknownWorker},
		{"another workspace", withMeta(map[string]any{"workspace_root": "/elsewhere/project"}), false, false, compat.DiagWorkspaceNotVisible, registry.SeverityInfo, registry.CodeWorkerNotVisible},
		{"stale worker_name", withMeta(map[string]any{"worker_name": "renamed"}), false, true, compat.DiagMetadataStale, registry.SeverityWarning, ""},
		{"stray file in pods", func(f *fixture, pod string) {
			if err := os.WriteFile(filepath.Join(f.pods, pod), []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, false, "", "", registry.CodeUnknownWorker},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rootOnly && os.Geteuid() == 0 {
				t.Skip("root reads files whatever their mode; the directory case covers unreadable metadata")
			}
			f := newFixture(t)
			f.pod("healthy", map[string]any{"worker_name": "healthy"})
			pod := fmt.Sprintf("Pod.%02d", i)
			tt.setup(f, pod)
			id := compat.WorkerIDFor(pod)
			s := f.source()

			done := make(chan registry.WorkerPage, 1)
			go func() { done <- list(t, s) }()
			var page registry.WorkerPage
			select {
			case page = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("listing blocked")
			}

			ids := []registry.WorkerID{}
			for _, w := range page.Workers {
				ids = append(ids, w.ID)
			}
			if !slices.Contains(ids, compat.WorkerIDFor("healthy")) {
				t.Errorf("healthy pod not listed: %v", ids)
			}
			if got := slices.Contains(ids, id); got != tt.listed {
				t.Errorf("listed = %v, want %v", got, tt.listed)
			}
			switch {
			case tt.code == "" && len(page.Diagnostics) != 0:
				t.Errorf("diagnostics = %+v, want none", page.Diagnostics)
			case tt.code != "":
				if len(page.Diagnostics) != 1 || page.Diagnostics[0].Code != tt.code || page.Diagnostics[0].Severity != tt.severity {
					t.Fatalf("diagnostics = %+v, want one %s/%s", page.Diagnostics, tt.code, tt.severity)
				}
				msg := page.Diagnostics[0].Message
				if strings.Contains(msg, pod) || strings.Contains(msg, f.dataDir) || strings.Contains(msg, "/") {
					t.Errorf("diagnostic message reveals a name or path: %q", msg)
				}
				// Warnings name the worker; the info about other workspaces only counts.
				if tt.severity == registry.SeverityWarning && !strings.Contains(msg, string(id)) {
					t.Errorf("warning %q does not name worker %s", msg, id)
				}
			}
			_, err := s.Worker(context.Background(), id)
			if errCode(err) != tt.lookup {
				t.Errorf("Worker() error = %v, want code %q", err, tt.lookup)
			}
			if tt.lookup == registry.CodeWorkerNotVisible && !errors.Is(err, registry.ErrWorkerNotVisible) {
				t.Errorf("errors.Is(%v, ErrWorkerNotVisible) = false", err)
			}
		})
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func TestStaleListedUnderDirID(t *testing.T) {
	f := newFixture(t)
	f.pod("dir-name", map[string]any{"worker_name": "Other Name"})
	page := list(t, f.source())
	if len(page.Workers) != 1 {
		t.Fatalf("workers = %+v", page.Workers)
	}
	w := page.Workers[0]
	if w.ID != compat.WorkerIDFor("dir-name") || w.Label != "Other Name" || w.Implementation.DisplayHint != "dir-name" {
		t.Errorf("stale pod projected as %+v", w)
	}
	if w.ID == compat.WorkerIDFor("Other Name") {
		t.Error("stale pod took the id of its worker_name")
	}
	// The stale worker says so itself, besides the list.
	if got := codes(w.Diagnostics); !slices.Equal(got, []string{compat.DiagMetadataStale}) || w.Diagnostics[0] != page.Diagnostics[0] {
		t.Errorf("worker diagnostics %+v, list %+v", w.Diagnostics, page.Diagnostics)
	}
	if w.LastSeenAt != nil {
		t.Errorf("last_seen_at %v of a local pod", w.LastSeenAt)
	}
}

// TestListLimitIsMaxWorkers checks that max_workers is the configured list
// limit (the server's --max-records), a number, on the Runtime and its host.
func TestListLimitIsMaxWorkers(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ limit, want int }{{0, registry.DefaultMaxRecords}, {50, 50}} {
		s := compat.New(compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir, ListLimit: tt.limit})
		sum, _ := s.Summary(t.Context())
		hosts, _, _ := s.Hosts(t.Context())
		for what, c := range map[string]registry.Capabilities{"runtime": sum.Capabilities, "host": hosts[0].Capabilities} {
			if c.MaxWorkers == nil || *c.MaxWorkers != tt.want {
				t.Errorf("limit %d: %s max_workers %v, want %d", tt.limit, what, c.MaxWorkers, tt.want)
			}
		}
	}
}

func TestWorkspaceMatch(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "ws", "project")
	link := filepath.Join(base, "link")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		configured, pod string
		visible         bool
	}{
		{root, root, true},
		{root, root + "/", true},
		{root + "//", root, true},
		{root, strings.ReplaceAll(root, "/", `\`), true},
		{strings.ReplaceAll(root, "/", `\`) + `\`, root, true},
		{"/", "/", true},
		{"/", `\`, true},
		{root, root + "2", false},
		{root, root + "/sub", false},
		{root, filepath.Dir(root), false},
		{root, strings.ToUpper(root), false},
		// Lexical only: a symlink to the root is another workspace.
		{root, link, false},
		{link, root, false},
		// No configured root matches nothing.
		{"", root, false},
	}
	for _, tt := range tests {
		f := newFixture(t)
		f.pod("p", map[string]any{"workspace_root": tt.pod})
		s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: tt.configured, DataDir: f.dataDir})
		_, err := s.Worker(context.Background(), compat.WorkerIDFor("p"))
		page := list(t, s)
		if tt.visible {
			if err != nil || len(page.Workers) != 1 || len(page.Diagnostics) != 0 {
				t.Errorf("configured %q, pod %q: err=%v page=%+v, want visible", tt.configured, tt.pod, err, page)
			}
			continue
		}
		if !errors.Is(err, registry.ErrWorkerNotVisible) || len(page.Workers) != 0 ||
			!slices.Equal(codes(page.Diagnostics), []string{compat.DiagWorkspaceNotVisible}) {
			t.Errorf("configured %q, pod %q: err=%v page=%+v, want not visible", tt.configured, tt.pod, err, page)
		}
	}
}

func TestNotVisibleCountedOnce(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"a", "b", "c"} {
		f.pod(p, map[string]any{"workspace_root": "/other"})
	}
	page := list(t, f.source())
	if len(page.Diagnostics) != 1 || !strings.HasPrefix(page.Diagnostics[0].Message, "3 ") {
		t.Errorf("diagnostics = %+v, want one counting 3", page.Diagnostics)
	}
}

func TestDiagnosticsCapped(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.podDir(fmt.Sprintf("broken-%02d", i))
	}
	f.pod("good", nil)
	page := list(t, f.source())
	if len(page.Workers) != 1 {
		t.Errorf("workers = %d, want 1", len(page.Workers))
	}
	if len(page.Diagnostics) != registry.MaxDiagnostics {
		t.Fatalf("got %d diagnostics, want %d", len(page.Diagnostics), registry.MaxDiagnostics)
	}
	if last := page.Diagnostics[registry.MaxDiagnostics-1]; last.Code != "diagnostics_truncated" {
		t.Errorf("last diagnostic = %+v, want diagnostics_truncated", last)
	}
}

func TestNoDataDir(t *testing.T) {
	s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: "/x/proj"})
	ctx := context.Background()
	sum, err := s.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status != registry.Degraded || sum.Capabilities.LocalPodInspection != "unavailable" ||
		!slices.Equal(codes(sum.Diagnostics), []string{compat.DiagRegistryUnavailable}) {
		t.Errorf("summary = %+v, want degraded with inspection unavailable, saying why", sum)
	}
	hosts, diags, err := s.Hosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].Status != registry.Degraded ||
		hosts[0].Capabilities.LocalPodInspection != "unavailable" ||
		!slices.Equal(codes(diags), []string{compat.DiagRegistryUnavailable}) ||
		!slices.Equal(codes(hosts[0].Diagnostics), []string{compat.DiagRegistryUnavailable}) {
		t.Errorf("Hosts = %+v %+v %v", hosts, diags, err)
	}
	// The runtime's own list and a lookup answer alike: unavailable.
	if _, err := s.Workers(ctx, registry.WorkerQuery{Limit: 10}); !errors.Is(err, registry.ErrRuntimeUnavailable) {
		t.Errorf("Workers error = %v, want runtime_unavailable", err)
	}
	if _, err := s.Worker(ctx, compat.WorkerIDFor("p")); !errors.Is(err, registry.ErrRuntimeUnavailable) {
		t.Errorf("Worker error = %v, want runtime_unavailable", err)
	}
}

func TestPodsDirUnreadable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dataDir string)
	}{
		{"data dir missing", func(t *testing.T, dataDir string) {}},
		{"pods missing", func(t *testing.T, dataDir string) {
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"pods is a file", func(t *testing.T, dataDir string) {
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dataDir, "pods"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			tt.setup(t, dataDir)
			s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: "/x/proj", DataDir: dataDir})
			ctx := context.Background()
			sum, _ := s.Summary(ctx)
			if sum.Status != registry.Degraded || sum.Capabilities.LocalPodInspection != "available" ||
				!slices.Equal(codes(sum.Diagnostics), []string{compat.DiagRegistryUnreadable}) {
				t.Errorf("summary = %+v", sum)
			}
			hosts, diags, err := s.Hosts(ctx)
			if err != nil || len(hosts) != 1 || hosts[0].Status != registry.Degraded ||
				!slices.Equal(codes(diags), []string{compat.DiagRegistryUnreadable}) ||
				!slices.Equal(codes(hosts[0].Diagnostics), []string{compat.DiagRegistryUnreadable}) {
				t.Errorf("Hosts = %+v %+v %v", hosts, diags, err)
			}
			// The runtime's own list answers as a lookup does: unavailable,
			// never an empty page that could be cached.
			_, listErr := s.Workers(ctx, registry.WorkerQuery{Limit: 10})
			_, err = s.Worker(ctx, compat.WorkerIDFor("p"))
			for what, err := range map[string]error{"Workers": listErr, "Worker": err} {
				if !errors.Is(err, registry.ErrRuntimeUnavailable) {
					t.Fatalf("%s error = %v, want runtime_unavailable", what, err)
				}
				// The cause is kept for logs, but never in the visible text.
				var e *registry.Error
				if errors.As(err, &e); e.Cause == nil || strings.Contains(e.Error(), dataDir) {
					t.Errorf("%s error = %q, cause %v", what, e.Error(), e.Cause)
				}
			}
		})
	}
}

func TestEmptyStore(t *testing.T) {
	f := newFixture(t)
	s := f.source()
	page := list(t, s)
	if len(page.Workers) != 0 || len(page.Diagnostics) != 0 || page.More || page.Workers == nil || page.Diagnostics == nil {
		t.Errorf("page = %#v, want empty non-nil slices", page)
	}
	if _, err := s.Worker(context.Background(), compat.WorkerIDFor("x")); !errors.Is(err, registry.ErrUnknownWorker) {
		t.Errorf("Worker error = %v", err)
	}
}
