// Package procexec is the Worker Runtime's process Executor: one child per
// worker, in its own process group, in the workspace root, with a minimal
// environment, killed with its Runtime (Linux parent-death signal).
package procexec

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// MaxLineBytes is the longest transcript entry a line makes: a longer
// output line is split into several entries.
const MaxLineBytes = 64 << 10

// linesBuffer is how many output lines wait for the Runtime before the
// readers stop reading (and the child blocks on a full pipe).
const linesBuffer = 32768

// After the process ended its output is read while it keeps coming: each
// read may wait drainWait for more (a descendant that escaped the group
// could hold a pipe open without writing), and all of it ends drainCap after
// the exit (one could keep writing). The wait is per read, not from the
// exit: output already in the pipe is kept however slowly the Runtime takes
// the lines before it.
const (
	drainWait = 2 * time.Second
	drainCap  = 30 * time.Second
)

// Defaults for the three variables taken from the parent when it has none.
const (
	defaultPath = "/usr/local/bin:/usr/bin:/bin"
	defaultHome = "/"
	defaultLang = "C.UTF-8"
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("procexec: executor closed")

// Executor starts worker processes. Make one with New and Close it when
// its Runtime is done: closing ends the thread that started the children,
// which (by the parent-death signal) kills any still alive.
type Executor struct {
	base  []string // PATH, HOME, LANG as KEY=value
	reqs  chan startReq
	quit  chan struct{}
	ended chan struct{}
	once  sync.Once
}

var _ wr.Executor = (*Executor)(nil)

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

// New starts an Executor and its starter goroutine.
func New() *Executor {
	e := &Executor{
		base:  baseEnv(),
		reqs:  make(chan startReq),
		quit:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	go e.starter()
	return e
}

func baseEnv() []string {
	get := func(k, def string) string {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			return k + "=" + v
		}
		return k + "=" + def
	}
	return []string{get("PATH", defaultPath), get("HOME", defaultHome), get("LANG", defaultLang)}
}

// starter starts every child from one OS thread that lives as long as the
// Executor. Pdeathsig is delivered when the *thread* that forked the child
// exits, not when the process does: Go may start a child from any thread
// and a thread can end while the process goes on (a locked goroutine that
// returns takes its thread with it), which would kill healthy workers. So
// the goroutine locks itself to its thread and never unlocks: the thread
// ends only when Close ends this goroutine (or the process dies).
func (e *Executor) starter() {
	runtime.LockOSThread()
	// No UnlockOSThread: returning while locked terminates this thread,
	// which is what Close wants (children still alive get SIGKILL).
	defer close(e.ended)
	for {
		select {
		case r := <-e.reqs:
			r.done <- r.cmd.Start()
		case <-e.quit:
			return
		}
	}
}

// Close stops the starter; any child still alive gets SIGKILL from the
// kernel as its parent thread ends. Close waits for the starter to end.
func (e *Executor) Close() error {
	e.once.Do(func() { close(e.quit) })
	<-e.ended
	return nil
}

// Env returns the environment a worker gets: only PATH, HOME, LANG (from
// this process, or defaults), the profile's env, and WORKER_ID,
// WORKER_PROFILE, WORKER_INTENT (the intent as JSON).
func (e *Executor) Env(spec wr.StartSpec) []string {
	env := append([]string(nil), e.base...)
	keys := make([]string, 0, len(spec.Profile.Env))
	for k := range spec.Profile.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+spec.Profile.Env[k])
	}
	intent, _ := json.Marshal(struct {
		Kind      wr.IntentKind `json:"kind"`
		Purpose   string        `json:"purpose,omitempty"`
		Objective string        `json:"objective,omitempty"`
		Role      string        `json:"role,omitempty"`
	}{spec.Intent.Kind, spec.Intent.Purpose, spec.Intent.Objective, spec.Intent.Role})
	return append(env, "WORKER_ID="+spec.WorkerID, "WORKER_PROFILE="+spec.Profile.Name, "WORKER_INTENT="+string(intent))
}

// Start starts the profile's command for one worker. It fails when the
// command cannot be started or the Executor is closed.
func (e *Executor) Start(ctx context.Context, spec wr.StartSpec) (wr.Process, error) {
	if len(spec.Profile.Command) == 0 {
		return nil, errors.New("procexec: empty command")
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:   spec.Profile.Command[0],
		Args:   spec.Profile.Command,
		Dir:    spec.Dir,
		Env:    e.Env(spec),
		Stdin:  inR,
		Stdout: outW,
		Stderr: errW,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,            // its own group: stop signals reach its children too
			Pdeathsig: syscall.SIGKILL, // dies with the starter thread (see starter)
		},
	}
	req := startReq{cmd: cmd, done: make(chan error, 1)}
	select {
	case e.reqs <- req:
		err = <-req.done
	case <-e.quit:
		err = ErrClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	closeAll(inR, outW, errW) // the child holds its own copies
	if err != nil {
		closeAll(inW, outR, errR)
		return nil, fmt.Errorf("procexec: start: %w", err)
	}
	p := &process{
		cmd:   cmd,
		pid:   cmd.Process.Pid,
		stdin: inW,
		input: spec.Profile.Input,
		lines: make(chan wr.OutputLine, linesBuffer),
		done:  make(chan struct{}),
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); p.read(outR, wr.RoleAssistant) }()
	go func() { defer readers.Done(); p.read(errR, wr.RoleSystem) }()
	go func() {
		p.wait()
		// Output still in the pipes is read (see drainWait); a reader
		// waiting in a read now is woken after drainWait at the latest.
		p.exitedAt.Store(time.Now().UnixNano())
		_ = outR.SetReadDeadline(time.Now().Add(drainWait))
		_ = errR.SetReadDeadline(time.Now().Add(drainWait))
		readers.Wait()
		closeAll(outR, errR)
		close(p.lines)
	}()
	return p, nil
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

type process struct {
	cmd   *exec.Cmd
	pid   int
	input wr.InputMode
	lines chan wr.OutputLine
	done  chan struct{}
	// exitedAt is when the process ended (Unix ns), 0 while it runs.
	exitedAt atomic.Int64

	inMu   sync.Mutex
	stdin  *os.File
	closed bool

	mu     sync.Mutex // guards exited against Signal
	exited bool
	exit   wr.ExitStatus
}

var _ wr.Process = (*process)(nil)

func (p *process) PID() int                    { return p.pid }
func (p *process) Lines() <-chan wr.OutputLine { return p.lines }
func (p *process) Done() <-chan struct{}       { return p.done }
func (p *process) Exit() wr.ExitStatus         { <-p.done; return p.exit }

// wait waits for the leader to exit WITHOUT reaping it (WNOWAIT): while it
// is a zombie its pid, and so its group id, cannot be reused, so killing
// the group's leftovers and any late Signal cannot hit a stranger. Then it
// reaps.
func (p *process) wait() {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil || !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.mu.Lock()
	// Descendants left in the group go with the leader.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.exited = true
	p.mu.Unlock()
	err := p.cmd.Wait()
	st := wr.ExitStatus{Code: -1}
	if ps := p.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				st.Signaled, st.Signal = true, ws.Signal()
			case ws.Exited():
				st.Code = ws.ExitStatus()
			}
		}
	} else if err != nil {
		st.Code = -1
	}
	p.exit = st
	p.inMu.Lock()
	if !p.closed {
		p.closed = true
		_ = p.stdin.Close()
	}
	p.inMu.Unlock()
	close(p.done)
}

// Signal sends sig to the process group; after the leader exited it does
// nothing.
func (p *process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// WriteInput writes one input to stdin: text is content + "\n", jsonl is
// {"kind":..,"content":..} + "\n". It may block while the child does not
// read; CloseInput or the child's exit unblocks it with an error.
func (p *process) WriteInput(in wr.Input) error {
	var b []byte
	if p.input == wr.InputJSONL {
		j, err := json.Marshal(struct {
			Kind    wr.InputKind `json:"kind"`
			Content string       `json:"content"`
		}{in.Kind, in.Content})
		if err != nil {
			return err
		}
		b = append(j, '\n')
	} else {
		b = append([]byte(in.Content), '\n')
	}
	p.inMu.Lock()
	f, closed := p.stdin, p.closed
	p.inMu.Unlock()
	if closed {
		return os.ErrClosed
	}
	_, err := f.Write(b)
	return err
}

// CloseInput closes stdin (idempotent).
func (p *process) CloseInput() error {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.stdin.Close()
}

// read turns a stream into lines of at most MaxLineBytes.
func (p *process) read(f *os.File, role wr.Role) {
	br := bufio.NewReaderSize(f, MaxLineBytes)
	for {
		if at := p.exitedAt.Load(); at != 0 {
			deadline := time.Now().Add(drainWait)
			if limit := time.Unix(0, at).Add(drainCap); limit.Before(deadline) {
				deadline = limit
			}
			_ = f.SetReadDeadline(deadline)
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if chunk[len(chunk)-1] == '\n' {
				chunk = chunk[:len(chunk)-1]
			}
			p.lines <- wr.OutputLine{Role: role, Content: toValidUTF8(chunk)}
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, bufio.ErrBufferFull):
			// A line of exactly MaxLineBytes: its newline ends it, it does
			// not make an empty entry.
			if b, perr := br.Peek(1); perr == nil && b[0] == '\n' {
				_, _ = br.Discard(1)
			}
			continue
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, os.ErrClosed):
			return
		default:
			return
		}
	}
}
