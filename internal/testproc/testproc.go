// Package testproc builds and runs the worker-runtime binary for tests: a
// real process on loopback with its own state directory and token, whose
// end every test proves. It also holds the small helpers the test packages
// share (a TestMain that builds the binary, a concurrency-safe log buffer).
// It is test support only.
package testproc

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Profiles is a profiles file for tests: echo (the default) repeats every
// input line; slow ignores its stdin's end for a while.
const Profiles = `default: echo
profiles:
  - name: echo
    label: Echo
    description: Repeats every input line
    command: ["/bin/sh", "-c", "while IFS= read -r l; do printf 'echo: %s\n' \"$l\"; done"]
    stop_grace: 2s
  - name: counter
    label: Counter
    command: ["/bin/sh", "-c", "n=0; while IFS= read -r l; do n=$((n+1)); echo \"$n: $l\"; done"]
    stop_grace: 2s
`

// Build compiles ./cmd/worker-runtime into dir and returns the binary's
// path. root is the repository root.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "worker-runtime")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/worker-runtime")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building worker-runtime: %w\n%s", err, out)
	}
	return bin, nil
}

// RepoRoot walks up from the working directory to the folder with go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// NewToken makes a random token.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "tok-" + hex.EncodeToString(b[:])
}

// Options start one runtime.
type Options struct {
	StateDir string // "" = a new t.TempDir()
	Token    string // "" = a new random token
	Listen   string // "" = 127.0.0.1:0
	Extra    []string
}

// Proc is one running worker-runtime process.
type Proc struct {
	Bin      string
	URL      string
	Addr     string
	Token    string
	StateDir string
	cmd      *exec.Cmd
	log      *Buffer
	exited   chan struct{}
	err      error
}

// Start runs bin with a fresh token file and profiles, waits for its
// "listening" log line, and registers a cleanup that ends it (SIGCONT,
// SIGTERM, then SIGKILL after 20 s) and proves it ended.
func Start(t testing.TB, bin string, o Options) *Proc {
	t.Helper()
	dir := t.TempDir()
	if o.StateDir == "" {
		o.StateDir = filepath.Join(dir, "state")
	}
	if o.Token == "" {
		o.Token = NewToken()
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	tokenFile := filepath.Join(dir, "token")
	profiles := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(tokenFile, []byte(o.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(profiles, []byte(Profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--listen", o.Listen, "--state-dir", o.StateDir, "--profiles", profiles,
		"--workspace-root", dir, "--token-file", tokenFile, "--label", "Test runtime"}, o.Extra...)
	p := &Proc{Bin: bin, Token: o.Token, StateDir: o.StateDir, log: &Buffer{}, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = io.MultiWriter(p.log, pw)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.End(t) })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			var line struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if !sent && json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Listen
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case a := <-addr:
		p.Addr = a
		p.URL = "http://" + a
	case <-p.exited:
		t.Fatalf("worker-runtime exited at start: %v\n%s", p.err, p.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("worker-runtime did not start:\n%s", p.log.String())
	}
	return p
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Log is everything the process wrote to stderr.
func (p *Proc) Log() string { return p.log.String() }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGSTOP and waits (hang guard d) until every thread of the
// process is stopped: a signal is delivered asynchronously, and a request
// sent at once could still be answered by a thread not yet stopped.
func (p *Proc) Stop(t testing.TB, d time.Duration) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(d)
	for !allThreadsStopped(p.PID()) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not stop", p.PID())
		}
		time.Sleep(time.Millisecond)
	}
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped) according to /proc.
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// The state follows the ")" that ends the command name.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || i+2 >= len(stat) || stat[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Exited is closed when the process has ended.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Wait waits for the process to end (hang guard d) and returns its error.
func (p *Proc) Wait(d time.Duration) (error, bool) {
	select {
	case <-p.exited:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	if _, ok := p.Wait(30 * time.Second); !ok {
		t.Fatalf("worker-runtime %d did not end after SIGKILL", p.PID())
	}
}

// End stops the process gracefully (SIGTERM; SIGKILL after 20 s) and
// proves it ended.
func (p *Proc) End(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(20 * time.Second); !ok {
		_ = p.cmd.Process.Kill()
		if _, ok := p.Wait(10 * time.Second); !ok {
			t.Errorf("worker-runtime %d did not end", p.PID())
		}
	}
	// Proven: the kernel no longer knows the pid (it was reaped by Wait).
	if err := syscall.Kill(p.PID(), 0); err == nil && runtime.GOOS == "linux" {
		t.Errorf("worker-runtime %d still exists", p.PID())
	}
}

// Contains reports whether the process log contains s.
func (p *Proc) Contains(s string) bool { return strings.Contains(p.log.String(), s) }

// Ctx is a hang guard for a test step.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// MainWithBinary is the body of a TestMain whose tests run the
// worker-runtime binary: it builds the binary into a new temporary
// directory (named with prefix), stores its path in *bin, runs the tests,
// removes the directory and returns the exit code for os.Exit (1, with the
// reason on stderr, when the build fails).
func MainWithBinary(m *testing.M, prefix string, bin *string) int {
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if *bin, err = Build(root, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
