package procexec_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/procexec"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/sqlitestore"
)

const orphanEnv = "PROCEXEC_TEST_ORPHAN_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(orphanEnv); dir != "" {
		orphanChild(dir)
		return
	}
	os.Exit(m.Run())
}

const profilesYAML = `
default: echo
profiles:
  - name: echo
    command: ["/bin/sh", "-c", "while IFS= read -r l; do printf 'echo: %s\n' \"$l\"; done"]
    stop_grace: 5s
  - name: jsonl
    command: ["cat"]
    input: jsonl
  - name: ignore-term
    command: ["/bin/sh", "-c", "trap '' TERM; echo ready; while :; do read -r l || sleep 0.05; done"]
    stop_grace: 100ms
  - name: exit3
    command: ["/bin/sh", "-c", "echo bye >&2; exit 3"]
  - name: exit0
    command: ["/bin/sh", "-c", "echo done"]
  - name: lines
    command: ["seq", "1", "100000"]
  - name: deaf
    command: ["sleep", "1000"]
  - name: env
    command: ["env"]
    env: {PROFILE_VAR: from-profile}
  - name: pwd
    command: ["/bin/sh", "-c", "pwd"]
  - name: missing
    command: ["/nonexistent/program"]
`

// recExec records the pid of every process it starts.
type recExec struct {
	*procexec.Executor
	mu   sync.Mutex
	pids []int
}

func (r *recExec) Start(ctx context.Context, spec wr.StartSpec) (wr.Process, error) {
	p, err := r.Executor.Start(ctx, spec)
	if err == nil {
		r.mu.Lock()
		r.pids = append(r.pids, p.PID())
		r.mu.Unlock()
	}
	return p, err
}

func (r *recExec) started() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pids)
}

// gone reports whether pid no longer runs (absent, or a zombie nobody
// reaped: a container's init may not reap).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// groupMembers lists the running (not zombie) processes of group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// After the comm: state ppid pgrp ...
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

type env struct {
	rt   *wr.Runtime
	rec  *recExec
	root string
}

func newEnv(t *testing.T, opts sqlitestore.Options) *env {
	t.Helper()
	profiles, err := wr.ParseProfiles([]byte(profilesYAML))
	if err != nil {
		t.Fatalf("ParseProfiles: %v", err)
	}
	dir := t.TempDir()
	store, err := sqlitestore.Open(t.Context(), filepath.Join(dir, "w.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recExec{Executor: procexec.New()}
	root := t.TempDir()
	rt, err := wr.Open(t.Context(), wr.Options{Store: store, Executor: rec, Profiles: profiles, WorkspaceRoot: root,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		// Every process started has ended, and so has its group.
		for _, pid := range rec.started() {
			if !gone(pid) {
				t.Errorf("process %d outlived its runtime", pid)
			}
			if m := groupMembers(pid); len(m) > 0 {
				t.Errorf("process group %d still has running members %v", pid, m)
			}
		}
	})
	return &env{rt: rt, rec: rec, root: root}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute) // a hang guard (100,000 lines under -race on a loaded machine), not a timing assertion
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) create(t *testing.T, profile string) wr.Worker {
	t.Helper()
	w, err := e.rt.Create(t.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask, Objective: "test"}, Profile: profile})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return w
}

func (e *env) waitState(t *testing.T, id string, st wr.State) wr.Worker {
	t.Helper()
	var w wr.Worker
	waitFor(t, "state "+string(st), func() bool {
		var err error
		w, err = e.rt.Get(t.Context(), id)
		return err == nil && w.State == st
	})
	return w
}

// transcript reads every entry.
func (e *env) transcript(t *testing.T, id string) []wr.TranscriptEntry {
	t.Helper()
	var out []wr.TranscriptEntry
	after := int64(0)
	for {
		p, err := e.rt.Transcript(t.Context(), id, after, 200)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.NextAfter == 0 {
			return out
		}
		after = p.NextAfter
	}
}

func (e *env) waitEntry(t *testing.T, id string, role wr.Role, content string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s entry %q", role, content), func() bool {
		for _, en := range e.transcript(t, id) {
			if en.Role == role && en.Content == content {
				return true
			}
		}
		return false
	})
}

func TestEchoAndJSONL(t *testing.T) {
	e := newEnv(t, sqlitestore.Options{})
	w := e.create(t, "echo")
	e.waitState(t, w.ID, wr.StateActive)
	for _, s := range []string{"hello", "two words", ""} {
		if _, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: s}); err != nil {
			t.Fatal(err)
		}
		e.waitEntry(t, w.ID, wr.RoleAssistant, "echo: "+s)
	}
	if _, err := e.rt.Stop(t.Context(), w.ID, wr.StopGraceful); err != nil {
		t.Fatal(err)
	}
	if got := e.waitState(t, w.ID, wr.StateStopped); got.Status != wr.StatusRequested {
		t.Fatalf("status %s, want %s (exits on stdin EOF)", got.Status, wr.StatusRequested)
	}

	j := e.create(t, "jsonl")
	e.waitState(t, j.ID, wr.StateActive)
	if _, err := e.rt.SendInput(t.Context(), j.ID, wr.Input{Kind: wr.InputSystem, Content: "a \"quoted\"\nline"}); err != nil {
		t.Fatal(err)
	}
	e.waitEntry(t, j.ID, wr.RoleAssistant, `{"kind":"system","content":"a \"quoted\"\nline"}`)
}

func TestIgnoresSIGTERM(t *testing.T) {
	e := newEnv(t, sqlitestore.Options{})
	w := e.create(t, "ignore-term")
	e.waitEntry(t, w.ID, wr.RoleAssistant, "ready") // the trap is set
	if _, err := e.rt.Stop(t.Context(), w.ID, wr.StopGraceful); err != nil {
		t.Fatal(err)
	}
	if got := e.waitState(t, w.ID, wr.StateStopped); got.Status != wr.StatusRequested {
		t.Fatalf("status %s, want %s after SIGKILL", got.Status, wr.StatusRequested)
	}
}

func TestExitStatuses(t *testing.T) {
	e := newEnv(t, sqlitestore.Options{})
	for _, tc := range []struct{ profile, status, line string }{
		{"exit3", wr.StatusFailed, "bye"},
		{"exit0", wr.StatusExited, "done"},
		{"missing", wr.StatusFailed, ""},
	} {
		w := e.create(t, tc.profile)
		if got := e.waitState(t, w.ID, wr.StateStopped); got.Status != tc.status {
			t.Fatalf("%s: status %s, want %s", tc.profile, got.Status, tc.status)
		}
		if tc.line != "" {
			role := wr.RoleAssistant
			if tc.profile == "exit3" {
				role = wr.RoleSystem // stderr
			}
			e.waitEntry(t, w.ID, role, tc.line)
		}
	}
}

func TestHundredThousandLines(t *testing.T) {
	// Keep every entry so all of them can be read back.
	e := newEnv(t, sqlitestore.Options{TranscriptRetention: 200_000})
	w := e.create(t, "lines")
	e.waitState(t, w.ID, wr.StateStopped)
	all := e.transcript(t, w.ID)
	if len(all) != 100_000 {
		t.Fatalf("%d entries, want 100000", len(all))
	}
	for i, en := range all {
		if en.Content != strconv.Itoa(i+1) || en.Sequence != int64(i+1) || en.Role != wr.RoleAssistant {
			t.Fatalf("entry %d: %+v", i, en)
		}
	}
	if got, _ := e.rt.Get(t.Context(), w.ID); got.Status != wr.StatusExited {
		t.Fatalf("status %s", got.Status)
	}
}

func TestDeafWorkerFillsItsQueue(t *testing.T) {
	e := newEnv(t, sqlitestore.Options{})
	w := e.create(t, "deaf")
	e.waitState(t, w.ID, wr.StateActive)
	big := strings.Repeat("x", 60<<10) // a few fill the pipe, then the queue fills
	var err error
	n := 0
	for ; n < 200; n++ {
		if _, err = e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: big}); err != nil {
			break
		}
	}
	if !errors.Is(err, wr.ErrWorkerBusy) {
		t.Fatalf("after %d inputs: %v, want worker_busy", n, err)
	}
	if n < wr.InputQueueSize {
		t.Fatalf("busy after %d inputs, fewer than the queue", n)
	}
	got, err := e.rt.Stop(t.Context(), w.ID, wr.StopForce)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != wr.StateStopped {
		got = e.waitState(t, w.ID, wr.StateStopped)
	}
	if got.Status != wr.StatusCancelled {
		t.Fatalf("status %s", got.Status)
	}
}

func TestEnvironmentIsolationAndDir(t *testing.T) {
	t.Setenv("WR_TEST_CANARY_SECRET", "canary-value")
	e := newEnv(t, sqlitestore.Options{})
	w := e.create(t, "env")
	e.waitState(t, w.ID, wr.StateStopped)
	vars := map[string]string{}
	for _, en := range e.transcript(t, w.ID) {
		k, v, _ := strings.Cut(en.Content, "=")
		vars[k] = v
	}
	if _, leaked := vars["WR_TEST_CANARY_SECRET"]; leaked {
		t.Fatal("the backend's environment leaked into the worker")
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"HOME", "LANG", "PATH", "PROFILE_VAR", "WORKER_ID", "WORKER_INTENT", "WORKER_PROFILE"}
	if !slices.Equal(keys, want) {
		t.Fatalf("environment %v, want %v", keys, want)
	}
	if vars["WORKER_ID"] != w.ID || vars["WORKER_PROFILE"] != "env" || vars["PROFILE_VAR"] != "from-profile" ||
		vars["WORKER_INTENT"] != `{"kind":"task","objective":"test"}` {
		t.Fatalf("values: %v", vars)
	}

	p := e.create(t, "pwd")
	e.waitState(t, p.ID, wr.StateStopped)
	if tr := e.transcript(t, p.ID); len(tr) != 1 || tr[0].Content != e.root {
		t.Fatalf("working directory %+v, want %s", tr, e.root)
	}
}

func TestLongLinesAreSplit(t *testing.T) {
	e := newEnv(t, sqlitestore.Options{})
	w := e.create(t, "echo")
	e.waitState(t, w.ID, wr.StateActive)
	in := strings.Repeat("a", wr.MaxInputBytes) // "echo: " + 64 KiB > 64 KiB
	if _, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: in}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the split line", func() bool { return len(e.transcript(t, w.ID)) >= 3 })
	tr := e.transcript(t, w.ID)
	if len(tr[1].Content) != procexec.MaxLineBytes || tr[1].Content+tr[2].Content != "echo: "+in {
		t.Fatalf("split: %d + %d bytes", len(tr[1].Content), len(tr[2].Content))
	}
}

// orphanChild runs in a re-executed test binary: a Runtime with one
// `sleep 1000` worker; it prints the worker's pid and waits to be killed.
func orphanChild(dir string) {
	ctx := context.Background()
	profiles, err := wr.ParseProfiles([]byte(profilesYAML))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "w.db"), sqlitestore.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	rec := &recExec{Executor: procexec.New()}
	rt, err := wr.Open(ctx, wr.Options{Store: store, Executor: rec, Profiles: profiles, WorkspaceRoot: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if _, err := rt.Create(ctx, wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}, Profile: "deaf"}); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for len(rec.started()) == 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println(rec.started()[0])
	select {}
}

func TestNoOrphanAfterRuntimeSIGKILL(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil || pid <= 0 {
		t.Fatalf("child said %q: %v %v", line, err, perr)
	}
	if gone(pid) {
		t.Fatalf("worker %d is not running before the kill", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waited = true
	if !gone(cmd.Process.Pid) {
		t.Fatal("the runtime process survived SIGKILL")
	}
	deadline := time.Now().Add(30 * time.Second) // generous: a hang guard
	for !gone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL) // do not leave it behind
			t.Fatalf("worker %d outlived its SIGKILLed runtime", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
