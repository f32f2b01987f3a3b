package compat_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// fixture is a data dir and a workspace root in a temporary directory.
type fixture struct {
	t       *testing.T
	root    string // configured workspace root
	dataDir string
	pods    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{
		t:       t,
		root:    filepath.Join(base, "ws", "project"),
		dataDir: filepath.Join(base, "data"),
	}
	f.pods = filepath.Join(f.dataDir, "pods")
	for _, d := range []string{f.root, f.pods} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// source is a started Source over the fixture: every test of the projection
// runs against the index.
func (f *fixture) source() *compat.Source {
	return started(f.t, compat.Config{WorkspaceID: "my-workspace", WorkspaceRoot: f.root, DataDir: f.dataDir})
}

// started builds a Source for cfg, starts its index and closes it when the
// test ends.
func started(t testing.TB, cfg compat.Config) *compat.Source {
	t.Helper()
	s := compat.New(cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// podDir creates an empty pod directory and returns its path.
func (f *fixture) podDir(name string) string {
	f.t.Helper()
	dir := filepath.Join(f.pods, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	return dir
}

// raw writes metadata.json of pod name verbatim.
func (f *fixture) raw(name string, data []byte) string {
	f.t.Helper()
	p := filepath.Join(f.podDir(name), "metadata.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// pod writes metadata for pod name; workspace_root defaults to the fixture's
// root unless meta sets the key (to anything, including nil).
func (f *fixture) pod(name string, meta map[string]any) {
	f.t.Helper()
	m := map[string]any{}
	for k, v := range meta {
		m[k] = v
	}
	if _, ok := m["workspace_root"]; !ok {
		m["workspace_root"] = f.root
	}
	data, err := json.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	f.raw(name, data)
}

// list returns every visible Worker in one page.
func list(t *testing.T, s *compat.Source) registry.WorkerPage {
	t.Helper()
	page, err := s.Workers(context.Background(), registry.WorkerQuery{Limit: 1000})
	if err != nil {
		t.Fatalf("Workers: %v", err)
	}
	return page
}

func digest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])[:16]
}

func ptr(s string) *string { return &s }

func codes(ds []registry.Diagnostic) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Code)
	}
	return out
}

func errCode(err error) registry.Code {
	var e *registry.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "untyped"
}
