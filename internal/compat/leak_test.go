package compat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// TestNoLeak plants marker strings in every private place the store and the
// configuration have and checks that none comes out of the Source: not in a
// summary, host, worker, diagnostic, error text or log line.
//
// The last element of the workspace root is the host label by design, so the
// root's marker is planted in its parent directory.
func TestNoLeak(t *testing.T) {
	markers := []string{
		"MARKSESSION", "MARKSEGMENT", "MARKOTHERROOT", "MARKPEER", "MARKCHILD",
		"MARKDATA", "MARKWSPARENT", "MARK.BROKEN", "MARK.NOROOT", "MARK.FOREIGN",
	}
	base := t.TempDir()
	root := filepath.Join(base, "MARKWSPARENT", "project")
	dataDir := filepath.Join(base, "MARKDATA")
	pods := filepath.Join(dataDir, "pods")
	if err := os.MkdirAll(pods, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(pod string, meta any) {
		dir := filepath.Join(pods, pod)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		data, ok := meta.([]byte)
		if !ok {
			var err error
			if data, err = json.Marshal(meta); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "metadata.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	private := map[string]any{
		"active":           map[string]any{"session_id": "MARKSESSION", "segment_id": "MARKSEGMENT"},
		"peers":            []any{"MARKPEER", map[string]any{"socket": "/run/MARKPEER.sock"}},
		"spawned_children": []any{"MARKCHILD"},
		"workspace_root":   root,
		"resolved_manifest_snapshot": map[string]any{
			"role": "reviewer", "session_path": "/MARKSESSION/x", "profile": map[string]any{"name": "p", "path": "/MARKDATA"},
		},
	}
	write("visible", private)
	write("pending", map[string]any{"active": map[string]any{"session_id": "MARKSESSION"}, "workspace_root": root + "/"})
	write("stale", map[string]any{"worker_name": "renamed", "workspace_root": root, "peers": []any{"MARKPEER"}})
	write("MARK.FOREIGN", map[string]any{"workspace_root": "/MARKOTHERROOT/ws", "active": map[string]any{"session_id": "MARKSESSION"}})
	write("MARK.NOROOT", map[string]any{"worker_name": "x", "active": map[string]any{"session_id": "MARKSESSION"}})
	write("MARK.BROKEN", []byte(`{"worker_name": "MARKSESSION", "workspace_root": "/MARKOTHERROOT`))

	// The index goroutines log too, so the buffer is locked.
	logs := &testproc.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sources := map[string]*compat.Source{
		"ok":           started(t, compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: dataDir, Logger: logger}),
		"ok unstarted": compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: dataDir, Logger: logger}),
		"no data dir":  started(t, compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, Logger: logger}),
		"unreadable":   started(t, compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: filepath.Join(dataDir, "MARKDATA-missing"), Logger: logger}),
	}
	lookups := []registry.WorkerID{
		compat.WorkerIDFor("visible"), compat.WorkerIDFor("stale"), compat.WorkerIDFor("MARK.FOREIGN"),
		compat.WorkerIDFor("MARK.NOROOT"), compat.WorkerIDFor("MARK.BROKEN"), "local-worker-unknown",
	}

	var out strings.Builder
	dump := func(v any) {
		fmt.Fprintf(&out, "%+v\n", v)
		if data, err := json.Marshal(v); err == nil {
			out.Write(data)
			out.WriteByte('\n')
		}
	}
	dumpErr := func(err error) {
		if err == nil {
			return
		}
		// Error() and Detail are what a caller may show; Cause is for logs
		// only and is allowed to hold a path.
		fmt.Fprintf(&out, "%+v\n", err)
		var e *registry.Error
		if !errors.As(err, &e) {
			t.Errorf("untyped error %T", err)
			return
		}
		out.WriteString(e.Detail + "\n")
		e.Cause = nil
		dump(*e)
	}
	ctx := context.Background()
	listed := 0
	for name, s := range sources {
		sum, err := s.Summary(ctx)
		dump(sum)
		dumpErr(err)
		hosts, diags, err := s.Hosts(ctx)
		dump(hosts)
		dump(diags)
		dumpErr(err)
		q := registry.WorkerQuery{Limit: 1}
		for {
			page, err := s.Workers(ctx, q)
			dumpErr(err)
			dump(page)
			for _, w := range page.Workers {
				if w.Role != nil {
					out.WriteString(*w.Role + "\n")
				}
				if w.Profile != nil {
					out.WriteString(*w.Profile + "\n")
				}
			}
			if name == "ok" {
				listed += len(page.Workers)
			}
			if !page.More {
				break
			}
			q.After = page.Workers[len(page.Workers)-1].ID
		}
		for _, id := range lookups {
			w, err := s.Worker(ctx, id)
			dump(w)
			dumpErr(err)
		}
	}
	if listed != 3 {
		t.Errorf("listed %d workers, want 3 (visible, pending, stale)", listed)
	}

	// Events: an upsert and a removal of pods full of private values, and
	// the refusals of the sources without an index.
	for name, s := range sources {
		st, err := s.Events(ctx, registry.EventQuery{Cursor: "MARKDATA"})
		dumpErr(err)
		if name != "ok" {
			continue
		}
		changed := maps.Clone(private)
		changed["resolved_manifest_snapshot"] = map[string]any{"role": "coder", "session_path": "/MARKSESSION/y"}
		write("visible", changed)
		if err := os.RemoveAll(filepath.Join(pods, "stale")); err != nil {
			t.Fatal(err)
		}
		for range 3 { // the resync for the foreign cursor, then the two changes
			ectx, cancel := context.WithTimeout(ctx, freshnessDeadline)
			ev, err := st.Next(ectx)
			cancel()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			dump(ev)
		}
		st.Close()
	}
	if logs.String() == "" {
		t.Error("no debug log lines: the log check below proves nothing")
	}
	for _, m := range markers {
		if strings.Contains(out.String(), m) {
			t.Errorf("marker %q appears in the Source's output", m)
		}
		if strings.Contains(logs.String(), m) {
			t.Errorf("marker %q appears in the Source's logs", m)
		}
	}
	if strings.Contains(out.String(), base) || strings.Contains(logs.String(), base) {
		t.Error("a path appears in the Source's output or logs")
	}
	if t.Failed() {
		t.Logf("output:\n%s\nlogs:\n%s", out.String(), logs.String())
	}
}
