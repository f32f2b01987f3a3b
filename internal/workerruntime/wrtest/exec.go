package wrtest

import (
	"context"
	"sync"
	"syscall"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// Executor is a scriptable workerruntime.Executor: its processes are
// goroutine-free fakes a test drives (Emit, Exit) and inspects (Inputs,
// Signals).
type Executor struct {
	// StartErr, when set, makes every Start fail.
	StartErr error
	// IgnoreTerm makes processes ignore SIGTERM (only SIGKILL ends them).
	IgnoreTerm bool
	// ExitOnEOF makes a process exit 0 when its stdin is closed (like echo).
	ExitOnEOF bool
	// Block makes WriteInput block until the process ends (a process that
	// never reads stdin).
	Block bool
	// StartGate, when set, makes Start wait until it is closed (a slow
	// start).
	StartGate chan struct{}

	mu      sync.Mutex
	procs   []*Process
	started chan *Process
}

var _ wr.Executor = (*Executor)(nil)

// NewExecutor returns an Executor whose processes exit 0 on stdin EOF.
func NewExecutor() *Executor {
	return &Executor{ExitOnEOF: true, started: make(chan *Process, 1024)}
}

// Start makes a fake process (or fails with StartErr).
func (e *Executor) Start(_ context.Context, spec wr.StartSpec) (wr.Process, error) {
	if e.StartGate != nil {
		<-e.StartGate
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.StartErr != nil {
		return nil, e.StartErr
	}
	p := &Process{
		Spec:       spec,
		pid:        100000 + len(e.procs),
		lines:      make(chan wr.OutputLine, 1024),
		done:       make(chan struct{}),
		inClosed:   make(chan struct{}),
		ignoreTerm: e.IgnoreTerm,
		exitOnEOF:  e.ExitOnEOF,
		block:      e.Block,
	}
	e.procs = append(e.procs, p)
	e.started <- p
	return p, nil
}

// Started returns the channel of started processes, in start order.
func (e *Executor) Started() <-chan *Process { return e.started }

// Processes returns every process started so far.
func (e *Executor) Processes() []*Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Process(nil), e.procs...)
}

// Process is a fake worker process.
type Process struct {
	Spec wr.StartSpec

	pid        int
	lines      chan wr.OutputLine
	done       chan struct{}
	inClosed   chan struct{}
	ignoreTerm bool
	exitOnEOF  bool
	block      bool

	mu      sync.Mutex
	inputs  []wr.Input
	signals []syscall.Signal
	exited  bool
	exit    wr.ExitStatus
	closedI bool
}

var _ wr.Process = (*Process)(nil)

// PID is a made-up pid.
func (p *Process) PID() int { return p.pid }

// Lines delivers emitted lines; closed on exit.
func (p *Process) Lines() <-chan wr.OutputLine { return p.lines }

// Done is closed on exit.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit is the exit status once Done.
func (p *Process) Exit() wr.ExitStatus {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// WriteInput records an input (blocking until exit when Block is set).
func (p *Process) WriteInput(in wr.Input) error {
	if p.block {
		<-p.done
		return syscall.EPIPE
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited || p.closedI {
		return syscall.EPIPE
	}
	p.inputs = append(p.inputs, in)
	return nil
}

// CloseInput closes stdin; with ExitOnEOF the process exits 0.
func (p *Process) CloseInput() error {
	p.mu.Lock()
	if p.closedI {
		p.mu.Unlock()
		return nil
	}
	p.closedI = true
	close(p.inClosed)
	eof := p.exitOnEOF
	p.mu.Unlock()
	if eof {
		p.ExitWith(wr.ExitStatus{Code: 0})
	}
	return nil
}

// Signal records sig; SIGKILL (and SIGTERM unless IgnoreTerm) ends it.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	if p.exited {
		p.mu.Unlock()
		return nil
	}
	p.signals = append(p.signals, sig)
	ignore := p.ignoreTerm
	p.mu.Unlock()
	if sig == syscall.SIGKILL || (sig == syscall.SIGTERM && !ignore) {
		p.ExitWith(wr.ExitStatus{Code: -1, Signaled: true, Signal: sig})
	}
	return nil
}

// Emit prints one line (assistant for stdout, system for stderr).
func (p *Process) Emit(role wr.Role, content string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		p.lines <- wr.OutputLine{Role: role, Content: content}
	}
}

// ExitWith ends the process with st (once).
func (p *Process) ExitWith(st wr.ExitStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	p.exited = true
	p.exit = st
	close(p.lines)
	close(p.done)
}

// Inputs returns what was written to stdin.
func (p *Process) Inputs() []wr.Input {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wr.Input(nil), p.inputs...)
}

// Signals returns the signals sent, in order.
func (p *Process) Signals() []syscall.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]syscall.Signal(nil), p.signals...)
}

// StdinClosed is closed when stdin is closed.
func (p *Process) StdinClosed() <-chan struct{} { return p.inClosed }
