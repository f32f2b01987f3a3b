// Package benchstore generates local Worker/Pod stores of any size for
// benchmarks and load runs: <dir>/pods/<pod>/metadata.json with metadata
// shaped like the real thing (active sessions, manifest snapshots, peers).
// It is used by the Go benchmarks and by cmd/loadbench; nothing in the
// server imports it.
package benchstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// PodName is the directory name of pod i of a generated store.
func PodName(i int) string { return fmt.Sprintf("%06d-Worker.%s", i, roles[i%len(roles)]) }

var roles = []string{"coder", "reviewer", "planner", "writer", "tester"}

// Metadata is the metadata.json of pod i whose workspace_root is root. label,
// when not empty, replaces the worker_name (a rewrite a load run can watch
// for).
func Metadata(i int, root, label string) []byte {
	name := PodName(i)
	if label != "" {
		name = label
	}
	m := map[string]any{
		"worker_name":      name,
		"workspace_root":   root,
		"spawned_children": []any{},
		"peers":            []any{map[string]any{"name": PodName((i + 1) % 1000), "socket": "/run/pods/peer.sock"}},
		"resolved_manifest_snapshot": map[string]any{
			"role":             roles[i%len(roles)],
			"profile_selector": map[string]any{"name": "default"},
			"tools":            []string{"shell", "git", "fs"},
		},
	}
	if i%3 != 0 {
		active := map[string]any{"session_id": "session-" + strconv.Itoa(i)}
		if i%2 == 0 {
			active["segment_id"] = "segment-" + strconv.Itoa(i)
		}
		m["active"] = active
	}
	data, err := json.Marshal(m)
	if err != nil {
		panic(err) // a map of strings always encodes
	}
	return data
}

// markerName marks a store as complete, with its pod count.
const markerName = ".benchstore-complete"

// Generate writes a store of n pods under dataDir (creating it), all of the
// workspace root, on a few goroutines. A store already generated there with
// the same n is reused as it is.
func Generate(dataDir string, n int, root string) error {
	marker := filepath.Join(dataDir, markerName)
	if b, err := os.ReadFile(marker); err == nil && string(b) == strconv.Itoa(n)+" "+root {
		return nil
	}
	if err := os.RemoveAll(filepath.Join(dataDir, "pods")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	pods := filepath.Join(dataDir, "pods")
	if err := os.MkdirAll(pods, 0o755); err != nil {
		return err
	}
	const workers = 4
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				dir := filepath.Join(pods, PodName(i))
				if err := os.Mkdir(dir, 0o755); err != nil {
					errs <- err
					return
				}
				if err := os.WriteFile(filepath.Join(dir, "metadata.json"), Metadata(i, root, ""), 0o644); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return os.WriteFile(marker, []byte(strconv.Itoa(n)+" "+root), 0o644)
}
