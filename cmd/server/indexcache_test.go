package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIndexCacheAcrossRestarts runs the server twice over the same store
// with --index-cache: the first run writes the file (0600), the second
// answers the same from it without reading a pod, and neither logs its path.
func TestIndexCacheAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	root, dataDir := filepath.Join(dir, "ws"), filepath.Join(dir, "data")
	for _, pod := range []string{"alpha", "beta"} {
		p := filepath.Join(dataDir, "pods", pod)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		meta := `{"worker_name": "` + pod + `", "workspace_root": "` + root + `"}`
		if err := os.WriteFile(filepath.Join(p, "metadata.json"), []byte(meta), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Files written within a timestamp tick of their read are not cached
	// (racy): let them age past it.
	time.Sleep(50 * time.Millisecond)
	cache := filepath.Join(dir, "state", "index.cache")
	if err := os.Mkdir(filepath.Dir(cache), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := config{WorkspaceID: "local:test", WorkspaceRoot: root, DataDir: dataDir, MaxRecords: 200,
		SourceTimeout: time.Second, MaxConns: 16, IndexCache: cache, Runtime: runtimeConfig{MaxStreams: 4}}
	var bodies []string
	for run := range 2 {
		s := startRun(t, cfg)
		r := get(t, "GET", s.url("/api/runtimes/local-worker-runtime/workers"), nil)
		if r.status != 200 {
			t.Fatalf("run %d: list %d %s", run, r.status, r.body)
		}
		bodies = append(bodies, string(r.body))
		s.shutdown(t)
		logs := s.logs.String()
		want := map[int]string{0: `"from_index_cache":0,"read":2`, 1: `"from_index_cache":2,"read":0`}[run]
		if !strings.Contains(logs, want) {
			t.Errorf("run %d: logs lack %s:\n%s", run, want, logs)
		}
		if strings.Contains(logs, cache) || strings.Contains(logs, filepath.Dir(cache)) {
			t.Errorf("run %d: logs name the cache file:\n%s", run, logs)
		}
		fi, err := os.Stat(cache)
		if err != nil || fi.Mode() != 0o600 {
			t.Fatalf("run %d: cache file %v, %v; want mode 0600", run, fi, err)
		}
	}
	if bodies[0] != bodies[1] {
		t.Errorf("the restart answers\n%s\nthe first run answered\n%s", bodies[1], bodies[0])
	}
}
