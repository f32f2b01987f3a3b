// Package embeddedtest opens real embedded Runtimes for tests: a SQLite
// store in t.TempDir(), /bin/sh profiles, a workspace root of its own, and a
// cleanup that closes the Runtime and proves that every worker process it
// started has ended.
package embeddedtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/embedded"
)

// Profiles is the profiles file of a test Runtime. echo answers each line;
// quiet reads and says nothing; exits ends at once with status 0; stubborn
// ignores SIGTERM and stdin EOF, so only SIGKILL ends it.
const Profiles = `default: echo
profiles:
  - name: echo
    label: Echo
    description: Repeats every input line
    command: ["/bin/sh", "-c", "while IFS= read -r l; do printf 'echo: %s\n' \"$l\"; done"]
    stop_grace: 5s
  - name: quiet
    label: Quiet
    command: ["/bin/sh", "-c", "while IFS= read -r l; do :; done"]
    stop_grace: 5s
  - name: exits
    label: Exits
    command: ["/bin/sh", "-c", "exit 0"]
  - name: stubborn
    label: Stubborn
    command: ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
    stop_grace: 1s
`

// Options configure Open.
type Options struct {
	WorkspaceID string // default "local:test"
	MaxWorkers  int    // default 64
	// Logger receives the Runtime's logs; nil discards them.
	Logger *slog.Logger
	// Dir holds the state dir, the profiles file and the workspace root;
	// "" means a fresh t.TempDir().
	Dir string
	// Profiles is the profiles file's content; "" means Profiles.
	Profiles string
}

// Dirs are the private directories of a test Runtime (the leak sweeps look
// for them in answers).
type Dirs struct {
	StateDir, ProfilesFile, WorkspaceRoot string
}

// Open opens a real embedded Source. The cleanup closes it (the graceful
// sequence for live workers, bounded by a generous hang guard) and fails
// the test if any process that carries one of its workers' ids is still
// alive.
func Open(t testing.TB, opts Options) (*embedded.Source, Dirs) {
	t.Helper()
	base := opts.Dir
	if base == "" {
		base = t.TempDir()
	}
	if opts.Profiles == "" {
		opts.Profiles = Profiles
	}
	d := Dirs{
		StateDir:      filepath.Join(base, "state"),
		ProfilesFile:  filepath.Join(base, "profiles.yaml"),
		WorkspaceRoot: filepath.Join(base, "workspace"),
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.ProfilesFile, []byte(opts.Profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.WorkspaceRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if opts.WorkspaceID == "" {
		opts.WorkspaceID = "local:test"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	src, err := embedded.Open(context.Background(), embedded.OpenConfig{
		WorkspaceID: opts.WorkspaceID, StateDir: d.StateDir, ProfilesFile: d.ProfilesFile,
		WorkspaceRoot: d.WorkspaceRoot, MaxWorkers: opts.MaxWorkers, Logger: opts.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CloseAndCheck(t, src) })
	return src, d
}

// CloseAndCheck closes src (again, if it was closed already: Close answers
// the same) and fails t if a worker process of src outlived it: every
// started process must have been reaped, and no process on the machine may
// carry one of src's worker ids in its environment (a descendant that left
// the group).
func CloseAndCheck(t testing.TB, src *embedded.Source) {
	t.Helper()
	rt := src.Runtime()
	var ids []string
	for after := ""; ; {
		page, err := rt.List(context.Background(), after, 200)
		if err != nil {
			break // closed already: the ids were checked by the first call
		}
		for _, w := range page.Workers {
			ids = append(ids, w.ID)
		}
		if !page.More || len(page.Workers) == 0 {
			break
		}
		after = page.Workers[len(page.Workers)-1].ID
	}
	// Hang guard only: the Runtime's own budget is 10 s.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := src.Close(ctx); err != nil {
		t.Errorf("closing the embedded runtime: %v", err)
	}
	if st := rt.Stats(); st.ProcessesStarted != st.ProcessesExited {
		t.Errorf("%d worker processes started, %d exited", st.ProcessesStarted, st.ProcessesExited)
	}
	if pids := ProcessesOf(ids); len(pids) > 0 {
		t.Errorf("worker processes outlived the runtime: pids %v", pids)
	}
}

// ProcessesOf returns the pids of live processes whose environment holds
// WORKER_ID=<id> for one of ids. (A zombie shows an empty environment: the
// started/exited counts of CloseAndCheck cover reaping.)
func ProcessesOf(ids []string) []int {
	if len(ids) == 0 {
		return nil
	}
	want := make([][]byte, len(ids))
	for i, id := range ids {
		want[i] = []byte("WORKER_ID=" + id + "\x00")
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or not ours
		}
		for _, w := range want {
			if bytes.Contains(env, w) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
