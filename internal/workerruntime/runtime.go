package workerruntime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/workspace-backend/runtime-registry/internal/errchain"
)

// Limits of the domain (DESIGN "Limits").
const (
	// MaxInputBytes bounds one input's content.
	MaxInputBytes = 64 << 10
	// InputQueueSize is each worker's input queue; full is worker_busy.
	InputQueueSize = 64
	// DefaultMaxWorkers is the live-worker cap when Options.MaxWorkers is 0.
	DefaultMaxWorkers = 64
	// MaxLabelRunes bounds a sanitised label.
	MaxLabelRunes = 80
	// IdempotencyWindow is how long an idempotency key answers its first create.
	IdempotencyWindow = 24 * time.Hour
	// ShutdownBudget bounds the graceful sequence of every worker at Close.
	ShutdownBudget = 10 * time.Second
	// KillWait is the wait between SIGTERM and SIGKILL of a graceful stop.
	KillWait = 2 * time.Second
	// MaxTranscriptPageBytes cuts a transcript page's content.
	MaxTranscriptPageBytes = 1 << 20
	// maxIntentField bounds each free-text intent field.
	maxIntentField = 4096
	// outputBatch bounds the lines committed in one store call.
	outputBatch = 16384
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,120}$`)

// Options configure a Runtime.
type Options struct {
	Store         Store
	Executor      Executor
	Profiles      *Profiles
	WorkspaceRoot string
	MaxWorkers    int              // 0 = 64
	Now           func() time.Time // nil = time.Now
	Logger        *slog.Logger     // nil = slog.Default()
}

// Runtime runs workers: it is safe for concurrent use. Open makes one;
// Close stops every live worker and closes the store.
type Runtime struct {
	store    Store
	exec     Executor
	profiles *Profiles
	root     string
	max      int
	now      func() time.Time
	log      *slog.Logger
	hub      *hub
	instance string
	prefix   string // cursor prefix: the instance id's first 8 hex digits

	createMu sync.Mutex // serialises creates: idempotency and capacity checks

	mu       sync.Mutex
	live     map[string]*liveWorker
	closing  bool
	shutdown chan struct{} // closed by Close: every live worker stops
	wg       sync.WaitGroup

	stoppedCount     atomic.Int64
	processesStarted atomic.Uint64
	processesExited  atomic.Uint64
	transcriptLines  atomic.Uint64
	events           atomic.Uint64
	storeWrites      atomic.Uint64
	storeWriteNanos  atomic.Int64

	// committed is the newest event seq whose commit hook has run; pages
	// keeps list pages by the seq they were read at (pagecache.go).
	committed   atomic.Int64
	pages       pageCache
	storeClosed atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// liveWorker is a worker this Runtime runs (starting, active or stopping).
type liveWorker struct {
	id      string
	profile Profile

	mu       sync.Mutex // orders the record's store writes and the input queue
	w        Worker
	graceful bool // a graceful stop was requested
	forced   bool // a force stop was requested
	atClose  bool // the Runtime's Close stopped it

	queue     chan Input
	stopInput chan struct{} // closed: write what is queued, then close stdin
	gracefulC chan struct{} // closed on a graceful stop request
	forceC    chan struct{} // closed on a force stop request
	done      chan struct{} // closed once the stopped record is committed
}

// Open starts a Runtime over its store and executor. Crash recovery happens
// here: every worker the store holds as non-terminal becomes
// stopped:runtime_restart. It fails with invalid options or a failing store.
func Open(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Store == nil || opts.Executor == nil || opts.Profiles == nil || len(opts.Profiles.List) == 0 {
		return nil, errors.New("workerruntime: Store, Executor and Profiles are required")
	}
	if opts.WorkspaceRoot == "" {
		return nil, errors.New("workerruntime: WorkspaceRoot is required")
	}
	r := &Runtime{
		store:    opts.Store,
		exec:     opts.Executor,
		profiles: opts.Profiles,
		root:     opts.WorkspaceRoot,
		max:      opts.MaxWorkers,
		now:      opts.Now,
		log:      opts.Logger,
		live:     map[string]*liveWorker{},
		shutdown: make(chan struct{}),
		hub:      newHub(),
	}
	if r.max <= 0 {
		r.max = DefaultMaxWorkers
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.instance = r.store.InstanceID()
	r.prefix = strings.ReplaceAll(r.instance, "-", "")
	if len(r.prefix) > 8 {
		r.prefix = r.prefix[:8]
	}
	if !idRE.MatchString(r.prefix) {
		return nil, errors.New("workerruntime: the store's instance id is not usable")
	}
	r.store.SetCommitHook(r.onCommit)
	recovered, err := r.store.Recover(ctx, r.nowUTC())
	if err != nil {
		return nil, errCode(CodeRuntimeUnavailable, "the store could not recover", err)
	}
	for _, w := range recovered {
		r.log.Info("worker found live after a restart", "worker_id", w.ID, "status", w.Status)
	}
	last, err := r.store.LastEventSeq(ctx)
	if err != nil {
		return nil, errCode(CodeRuntimeUnavailable, "the store could not be read", err)
	}
	r.hub.setLast(last)
	advanceCommitted(&r.committed, last)
	counts, err := r.store.CountByState(ctx)
	if err != nil {
		return nil, errCode(CodeRuntimeUnavailable, "the store could not be read", err)
	}
	r.stoppedCount.Store(int64(counts[StateStopped]))
	return r, nil
}

func (r *Runtime) nowUTC() time.Time { return r.now().UTC() }

// onCommit is the store's commit hook: it fans committed events out.
func (r *Runtime) onCommit(evs []StoredEvent) {
	if n := len(evs); n > 0 {
		// Before the write returns: its caller then sees the new seq.
		advanceCommitted(&r.committed, evs[n-1].Seq)
	}
	r.events.Add(uint64(len(evs)))
	r.hub.publish(evs)
}

// timed runs one store write and accounts its time for Stats.
func (r *Runtime) timed(f func() error) error {
	t := time.Now()
	err := f()
	r.storeWriteNanos.Add(int64(time.Since(t)))
	r.storeWrites.Add(1)
	return err
}

func storeErr(err error) error {
	if errors.Is(err, ErrStoreNotFound) {
		return errCode(CodeUnknownWorker, "no such worker", nil)
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errCode(CodeRuntimeUnavailable, "the runtime's store failed", err)
}

// Info describes the Runtime: its instance id, profiles, cap and live counts.
func (r *Runtime) Info(ctx context.Context) (RuntimeInfo, error) {
	info := RuntimeInfo{InstanceID: r.instance, MaxWorkers: r.max, Counts: r.liveCounts()}
	for _, p := range r.profiles.List {
		info.Profiles = append(info.Profiles, ProfileSummary{
			Name: p.Name, Label: p.Label, Description: p.Description, Default: p.Name == r.profiles.Default,
		})
	}
	return info, nil
}

func (r *Runtime) liveCounts() map[State]int {
	counts := map[State]int{StateStarting: 0, StateActive: 0, StateStopping: 0}
	r.mu.Lock()
	lws := make([]*liveWorker, 0, len(r.live))
	for _, lw := range r.live {
		lws = append(lws, lw)
	}
	r.mu.Unlock()
	for _, lw := range lws {
		lw.mu.Lock()
		if lw.w.State != StateStopped {
			counts[lw.w.State]++
		}
		lw.mu.Unlock()
	}
	return counts
}

// SanitizeLabel makes a requested worker name safe to display: it drops
// invalid UTF-8, control and format characters, line and paragraph
// separators, '/' and '\', trims spaces and keeps the first 80 characters.
func SanitizeLabel(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, ""))
	var b strings.Builder
	n := 0
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || unicode.Is(unicode.Zl, c) ||
			unicode.Is(unicode.Zp, c) || c == '/' || c == '\\' {
			continue
		}
		b.WriteRune(c)
		n++
		if n == MaxLabelRunes {
			break
		}
	}
	return strings.TrimSpace(b.String())
}

func validateIntent(in Intent) error {
	switch in.Kind {
	case IntentAssistant, IntentTask, IntentRole:
	default:
		return invalid("intent.kind", `must be "assistant", "task" or "role"`)
	}
	for name, v := range map[string]string{"intent.purpose": in.Purpose, "intent.objective": in.Objective, "intent.role": in.Role} {
		if len(v) > maxIntentField {
			return invalid(name, "longer than 4096 bytes")
		}
		if !utf8.ValidString(v) {
			return invalid(name, "not valid UTF-8")
		}
	}
	return nil
}

func fingerprint(req CreateRequest, profile string) string {
	b, _ := json.Marshal(struct {
		Intent  Intent
		Profile string
		Label   string
	}{req.Intent, profile, req.Label})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Create accepts a worker and starts its process in the background; it
// answers the worker as committed (state starting). Errors: invalid_request
// (field intent.kind, profile, idempotency_key), idempotency_key_reused,
// runtime_at_capacity, runtime_unavailable. The same idempotency key with
// the same request within 24 h answers the first worker and creates nothing.
func (r *Runtime) Create(ctx context.Context, req CreateRequest) (Worker, error) {
	if err := validateIntent(req.Intent); err != nil {
		return Worker{}, err
	}
	prof, ok := r.profiles.Lookup(req.Profile)
	if !ok {
		return Worker{}, invalid("profile", "no such profile")
	}
	if req.IdempotencyKey != "" && !idRE.MatchString(req.IdempotencyKey) {
		return Worker{}, invalid("idempotency_key", "1-120 characters of A-Z a-z 0-9 _ : -")
	}
	r.createMu.Lock()
	defer r.createMu.Unlock()
	if r.isClosing() {
		return Worker{}, errCode(CodeRuntimeUnavailable, "the runtime is shutting down", nil)
	}
	now := r.nowUTC()
	fp := fingerprint(req, prof.Name)
	if req.IdempotencyKey != "" {
		id, oldFP, found, err := r.store.LookupIdempotency(ctx, req.IdempotencyKey, now.Add(-IdempotencyWindow))
		if err != nil {
			return Worker{}, storeErr(err)
		}
		if found {
			if oldFP != fp {
				return Worker{}, errCode(CodeIdempotencyKeyReused, "the idempotency key was used for a different request", nil)
			}
			w, err := r.store.GetWorker(ctx, id)
			if err != nil {
				return Worker{}, storeErr(err)
			}
			return w, nil
		}
	}
	r.mu.Lock()
	n := len(r.live)
	r.mu.Unlock()
	if n >= r.max {
		return Worker{}, errCode(CodeRuntimeAtCapacity, "the runtime runs its maximum number of workers", nil)
	}
	uid, err := uuid.NewV7()
	if err != nil {
		return Worker{}, errCode(CodeInternal, "could not make a worker id", err)
	}
	w := Worker{
		ID:           uid.String(),
		Profile:      prof.Name,
		ProfileLabel: prof.Label,
		Label:        SanitizeLabel(req.Label),
		Intent:       req.Intent,
		State:        StateStarting,
		Status:       StatusStarting,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	idem := Idempotency{}
	if req.IdempotencyKey != "" {
		idem = Idempotency{Key: req.IdempotencyKey, Fingerprint: fp, At: now}
	}
	if err := r.timed(func() error { return r.store.CreateWorker(ctx, w, idem) }); err != nil {
		return Worker{}, storeErr(err)
	}
	lw := &liveWorker{
		id:        w.ID,
		profile:   prof,
		w:         w,
		queue:     make(chan Input, InputQueueSize),
		stopInput: make(chan struct{}),
		gracefulC: make(chan struct{}),
		forceC:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	r.mu.Lock()
	r.live[w.ID] = lw
	r.wg.Add(1)
	r.mu.Unlock()
	go r.supervise(lw)
	return w, nil
}

func (r *Runtime) isClosing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

func (r *Runtime) liveWorker(id string) *liveWorker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live[id]
}

// Get returns one worker. Errors: unknown_worker, runtime_unavailable.
func (r *Runtime) Get(ctx context.Context, id string) (Worker, error) {
	if !idRE.MatchString(id) {
		return Worker{}, errCode(CodeUnknownWorker, "no such worker", nil)
	}
	w, err := r.store.GetWorker(ctx, id)
	if err != nil {
		return Worker{}, storeErr(err)
	}
	return w, nil
}

// List returns up to limit (1..200; 0 means 100) workers with an id after
// `after`, ascending. An unchanged page is answered from memory
// (pagecache.go) and is never older than a write the caller has seen
// acknowledged. The page's Workers may be shared with other callers: read
// them, never modify them. Errors: invalid_request (limit, cursor),
// runtime_unavailable.
func (r *Runtime) List(ctx context.Context, after string, limit int) (WorkerPage, error) {
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 200 {
		return WorkerPage{}, invalid("limit", "must be 1-200")
	}
	if after != "" && !idRE.MatchString(after) {
		return WorkerPage{}, invalid("cursor", "not a worker id")
	}
	if r.storeClosed.Load() {
		return WorkerPage{}, errCode(CodeRuntimeUnavailable, "the runtime is shut down", nil)
	}
	key := pageKey{after: after, limit: limit}
	if p, ok := r.pages.get(key, r.committed.Load()); ok {
		return p, nil
	}
	ws, more, seq, err := r.store.ListWorkers(ctx, after, limit)
	if err != nil {
		return WorkerPage{}, storeErr(err)
	}
	if ws == nil {
		ws = []Worker{}
	}
	// Clipped: a caller's append copies instead of writing into a shared page.
	page := WorkerPage{Workers: slices.Clip(ws), More: more, Version: r.cursor(seq)}
	r.pages.put(key, seq, page)
	return page, nil
}

// SendInput appends an input to the worker's transcript (role = its kind),
// commits it, and queues it for the process's stdin. Errors:
// invalid_request (kind, content), unknown_worker, worker_not_running
// (not active), worker_busy (64 inputs queued), runtime_unavailable.
func (r *Runtime) SendInput(ctx context.Context, id string, in Input) (InputAck, error) {
	switch in.Kind {
	case InputUser, InputSystem:
	default:
		return InputAck{}, invalid("kind", `must be "user" or "system"`)
	}
	if len(in.Content) > MaxInputBytes {
		return InputAck{}, invalid("content", "longer than 64 KiB")
	}
	if !utf8.ValidString(in.Content) {
		return InputAck{}, invalid("content", "not valid UTF-8")
	}
	if r.isClosing() {
		return InputAck{}, errCode(CodeRuntimeUnavailable, "the runtime is shutting down", nil)
	}
	lw := r.liveWorker(id)
	if lw == nil {
		if _, err := r.Get(ctx, id); err != nil {
			return InputAck{}, err
		}
		return InputAck{}, errCode(CodeWorkerNotRunning, "the worker is not running", nil)
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.w.State != StateActive {
		return InputAck{}, errCode(CodeWorkerNotRunning, "the worker is not running", nil)
	}
	if len(lw.queue) >= cap(lw.queue) {
		return InputAck{}, errCode(CodeWorkerBusy, "the worker's input queue is full", nil)
	}
	var stored []TranscriptEntry
	err := r.timed(func() error {
		var err error
		stored, err = r.store.AppendTranscript(ctx, id, []TranscriptEntry{{Role: Role(in.Kind), Content: in.Content, At: r.nowUTC()}})
		return err
	})
	if err != nil || len(stored) != 1 {
		return InputAck{}, storeErr(err)
	}
	r.transcriptLines.Add(1)
	// Never blocks: only this function adds, under lw.mu, after the check.
	lw.queue <- in
	return InputAck{Sequence: stored[0].Sequence}, nil
}

// Stop stops a worker: graceful (close stdin, stop_grace, SIGTERM, 2 s,
// SIGKILL) or force (SIGKILL now). It is sticky and idempotent: a stopped
// worker is answered as it is. A force stop waits (bounded by ctx and 2 s)
// for the worker to be stopped. Errors: invalid_request (mode),
// unknown_worker, runtime_unavailable.
func (r *Runtime) Stop(ctx context.Context, id string, mode StopMode) (Worker, error) {
	switch mode {
	case StopGraceful, StopForce:
	case "":
		mode = StopGraceful
	default:
		return Worker{}, invalid("mode", `must be "graceful" or "force"`)
	}
	lw := r.liveWorker(id)
	if lw == nil {
		return r.Get(ctx, id)
	}
	lw.mu.Lock()
	if lw.w.State == StateStopped {
		w := lw.w
		lw.mu.Unlock()
		return w, nil
	}
	if lw.w.State != StateStopping {
		if err := r.setStatusLocked(ctx, lw, StateStopping, StatusStopping); err != nil {
			lw.mu.Unlock()
			return Worker{}, err
		}
	}
	switch {
	case mode == StopForce && !lw.forced:
		lw.forced = true
		close(lw.forceC)
	case mode == StopGraceful && !lw.graceful && !lw.forced:
		lw.graceful = true
		close(lw.gracefulC)
	}
	w := lw.w
	lw.mu.Unlock()
	if mode == StopForce {
		wait, cancel := context.WithTimeout(ctx, KillWait)
		defer cancel()
		select {
		case <-lw.done:
			lw.mu.Lock()
			w = lw.w
			lw.mu.Unlock()
		case <-wait.Done():
		}
	}
	return w, nil
}

// setStatusLocked commits a state change (lw.mu held) and emits worker_upserted.
func (r *Runtime) setStatusLocked(ctx context.Context, lw *liveWorker, st State, status string) error {
	w := lw.w
	now := r.nowUTC()
	w.State, w.Status, w.UpdatedAt = st, status, now
	if st == StateStopped {
		w.StoppedAt = now
	}
	if err := r.timed(func() error { return r.store.UpdateWorker(ctx, w) }); err != nil {
		return storeErr(err)
	}
	lw.w = w
	return nil
}

// Transcript returns up to limit (1..200; 0 means 100) entries with a
// sequence after `after`, the page also cut at 1 MiB of content. Errors:
// invalid_request (limit, after), unknown_worker, runtime_unavailable.
func (r *Runtime) Transcript(ctx context.Context, id string, after int64, limit int) (TranscriptPage, error) {
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 200 {
		return TranscriptPage{}, invalid("limit", "must be 1-200")
	}
	if after < 0 {
		return TranscriptPage{}, invalid("after", "must be 0 or more")
	}
	if !idRE.MatchString(id) {
		return TranscriptPage{}, errCode(CodeUnknownWorker, "no such worker", nil)
	}
	p, err := r.store.Transcript(ctx, id, after, limit, MaxTranscriptPageBytes)
	if err != nil {
		return TranscriptPage{}, storeErr(err)
	}
	if p.Items == nil {
		p.Items = []TranscriptEntry{}
	}
	p.WorkerID = id
	return p, nil
}

// Stats returns counters and gauges for metrics.
func (r *Runtime) Stats() Stats {
	by := r.liveCounts()
	by[StateStopped] = int(r.stoppedCount.Load())
	return Stats{
		WorkersByState:    by,
		ProcessesStarted:  r.processesStarted.Load(),
		ProcessesExited:   r.processesExited.Load(),
		TranscriptLines:   r.transcriptLines.Load(),
		Events:            r.events.Load(),
		Subscribers:       r.hub.count(),
		StoreWriteSeconds: float64(r.storeWriteNanos.Load()) / 1e9,
		StoreWrites:       r.storeWrites.Load(),
	}
}

// Close stops every live worker with the graceful sequence (10 s in all),
// marking them stopped:runtime_shutdown, ends every subscription and closes
// the store (and the executor, when it has a Close method). It answers
// their close errors; later calls answer the same.
func (r *Runtime) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.createMu.Lock() // no create is half-way
		r.mu.Lock()
		r.closing = true
		close(r.shutdown)
		r.mu.Unlock()
		r.createMu.Unlock()
		finished := make(chan struct{})
		go func() { r.wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-ctx.Done():
			r.log.Warn("runtime close: gave up waiting for workers", "error", ctx.Err())
		}
		r.hub.close()
		var execErr error
		if c, ok := r.exec.(interface{ Close() error }); ok {
			execErr = c.Close()
		}
		r.closeErr = errors.Join(r.store.Close(), execErr)
		r.storeClosed.Store(true)
		r.pages.clear()
	})
	return r.closeErr
}

// supervise runs one worker from start to its stopped record.
func (r *Runtime) supervise(lw *liveWorker) {
	defer r.wg.Done()
	defer close(lw.done)
	ctx := context.Background()
	lw.mu.Lock()
	intent := lw.w.Intent
	lw.mu.Unlock()
	proc, err := r.exec.Start(ctx, StartSpec{WorkerID: lw.id, Profile: lw.profile, Intent: intent, Dir: r.root})
	if err != nil {
		r.log.Warn("worker process could not start", "worker_id", lw.id, "profile", lw.profile.Name, "cause_types", errchain.Types(err))
		r.appendOutput(ctx, lw.id, []TranscriptEntry{{Role: RoleSystem, Content: "the worker's process could not start", At: r.nowUTC()}})
		r.finish(ctx, lw, StatusFailed)
		return
	}
	r.processesStarted.Add(1)
	lw.mu.Lock()
	if lw.w.State == StateStarting {
		if err := r.setStatusLocked(ctx, lw, StateActive, StatusRunning); err != nil {
			r.log.Error("worker state not recorded", "worker_id", lw.id, "cause_types", errchain.Types(err))
		}
	}
	lw.mu.Unlock()

	pumped := make(chan struct{})
	go func() { defer close(pumped); r.pump(ctx, lw.id, proc.Lines()) }()
	go r.writeInputs(lw, proc)

	shutdownGrace := time.Duration(0)
	select {
	case <-proc.Done():
	case <-lw.forceC:
		_ = proc.Signal(syscall.SIGKILL)
	case <-lw.gracefulC:
		r.gracefulStop(lw, proc, lw.profile.StopGrace)
	case <-r.shutdown:
		lw.mu.Lock()
		lw.atClose = !lw.graceful && !lw.forced
		if lw.w.State != StateStopping {
			if err := r.setStatusLocked(ctx, lw, StateStopping, StatusStopping); err != nil {
				r.log.Error("worker state not recorded", "worker_id", lw.id, "cause_types", errchain.Types(err))
			}
		}
		lw.mu.Unlock()
		shutdownGrace = min(lw.profile.StopGrace, ShutdownBudget-KillWait-time.Second)
		r.gracefulStop(lw, proc, shutdownGrace)
	}
	<-proc.Done()
	<-pumped
	r.processesExited.Add(1)
	ex := proc.Exit()
	lw.mu.Lock()
	status := StatusFailed
	switch {
	case lw.atClose:
		status = StatusRuntimeShutdown
	case lw.forced:
		status = StatusCancelled
	case lw.graceful:
		status = StatusRequested
	case !ex.Signaled && ex.Code == 0:
		status = StatusExited
	}
	lw.mu.Unlock()
	r.log.Info("worker process ended", "worker_id", lw.id, "exit_code", ex.Code, "signal", int(ex.Signal), "status", status)
	r.finish(ctx, lw, status)
}

// gracefulStop closes stdin, waits grace, SIGTERMs the group, waits 2 s and
// SIGKILLs it; a force request at any point SIGKILLs at once, and the
// Runtime's Close shortens a long grace to fit its 10 s budget.
func (r *Runtime) gracefulStop(lw *liveWorker, proc Process, grace time.Duration) {
	close(lw.stopInput)
	shutdown := r.shutdown
	deadline := time.Now().Add(grace)
	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if i == 1 {
			deadline = time.Now().Add(KillWait)
		}
	wait:
		for {
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-proc.Done():
				t.Stop()
				return
			case <-lw.forceC:
				t.Stop()
				_ = proc.Signal(syscall.SIGKILL)
				return
			case <-shutdown:
				t.Stop()
				shutdown = nil
				if limit := time.Now().Add(ShutdownBudget - KillWait - time.Second); deadline.After(limit) {
					deadline = limit
				}
			case <-t.C:
				_ = proc.Signal(sig)
				break wait
			}
		}
	}
}

// finish commits the stopped record and retires the worker from the live set.
func (r *Runtime) finish(ctx context.Context, lw *liveWorker, status string) {
	lw.mu.Lock()
	if err := r.setStatusLocked(ctx, lw, StateStopped, status); err != nil {
		r.log.Error("worker state not recorded", "worker_id", lw.id, "cause_types", errchain.Types(err))
		// Keep the in-memory record truthful even when the store failed.
		lw.w.State, lw.w.Status = StateStopped, status
	}
	lw.mu.Unlock()
	r.stoppedCount.Add(1)
	r.mu.Lock()
	delete(r.live, lw.id)
	r.mu.Unlock()
}

// writeInputs feeds queued inputs to stdin; on a stop it writes what is
// still queued, then closes stdin.
func (r *Runtime) writeInputs(lw *liveWorker, proc Process) {
	write := func(in Input) bool {
		if err := proc.WriteInput(in); err != nil {
			r.log.Debug("worker input not written", "worker_id", lw.id, "cause_types", errchain.Types(err))
			return false
		}
		return true
	}
	for {
		select {
		case in := <-lw.queue:
			if !write(in) {
				_ = proc.CloseInput()
				return
			}
		case <-lw.stopInput:
			for {
				select {
				case in := <-lw.queue:
					if !write(in) {
						_ = proc.CloseInput()
						return
					}
				default:
					_ = proc.CloseInput()
					return
				}
			}
		case <-proc.Done():
			_ = proc.CloseInput()
			return
		}
	}
}

// pump commits output lines, one store call per burst of queued lines.
func (r *Runtime) pump(ctx context.Context, id string, lines <-chan OutputLine) {
	batch := make([]TranscriptEntry, 0, 64)
	for l := range lines {
		now := r.nowUTC()
		batch = append(batch[:0], TranscriptEntry{Role: l.Role, Content: l.Content, At: now})
	burst:
		for len(batch) < outputBatch {
			select {
			case l, ok := <-lines:
				if !ok {
					break burst
				}
				batch = append(batch, TranscriptEntry{Role: l.Role, Content: l.Content, At: now})
			default:
				break burst
			}
		}
		r.appendOutput(ctx, id, batch)
	}
}

func (r *Runtime) appendOutput(ctx context.Context, id string, entries []TranscriptEntry) {
	err := r.timed(func() error {
		_, err := r.store.AppendTranscript(ctx, id, entries)
		return err
	})
	if err != nil {
		r.log.Error("worker output not recorded", "worker_id", id, "lines", len(entries), "cause_types", errchain.Types(err))
		return
	}
	r.transcriptLines.Add(uint64(len(entries)))
}
