// Package wrtest holds the shared test doubles of the Worker Runtime's
// ports: an in-memory Store and a scriptable Executor.
package wrtest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// Store is an in-memory workerruntime.Store with the same semantics as the
// SQLite one (sequences, events, retention), for domain tests.
type Store struct {
	// TranscriptRetention and EventRetention bound what is kept (0 = the
	// production 10,000 and 100,000). Set them before use.
	TranscriptRetention int
	EventRetention      int
	// FailWrites makes every write fail with this error when set.
	FailWrites error

	mu      sync.Mutex
	hook    func([]wr.StoredEvent)
	workers map[string]*fakeWorker
	events  []wr.StoredEvent
	nextSeq int64
	idem    map[string]wr.Idempotency
	idemW   map[string]string
	closed  bool
	// Writes counts write calls.
	Writes int
}

type fakeWorker struct {
	w       wr.Worker
	entries []wr.TranscriptEntry
	last    int64
}

var _ wr.Store = (*Store)(nil)

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{workers: map[string]*fakeWorker{}, idem: map[string]wr.Idempotency{}, idemW: map[string]string{}, nextSeq: 1}
}

// ErrClosed is what a closed Store answers.
var ErrClosed = errors.New("wrtest: store closed")

// InstanceID is fixed.
func (s *Store) InstanceID() string { return "0f0f0f0f-0000-7000-8000-000000000000" }

// SetCommitHook installs the commit hook.
func (s *Store) SetCommitHook(f func([]wr.StoredEvent)) {
	s.mu.Lock()
	s.hook = f
	s.mu.Unlock()
}

func (s *Store) writable() error {
	if s.closed {
		return ErrClosed
	}
	s.Writes++
	return s.FailWrites
}

// emit appends events, trims, and calls the hook (s.mu held).
func (s *Store) emit(evs ...wr.Event) {
	out := make([]wr.StoredEvent, 0, len(evs))
	for _, e := range evs {
		se := wr.StoredEvent{Seq: s.nextSeq, Event: e}
		s.nextSeq++
		s.events = append(s.events, se)
		out = append(out, se)
	}
	keep := s.EventRetention
	if keep <= 0 {
		keep = 100_000
	}
	if len(s.events) > keep {
		s.events = append([]wr.StoredEvent(nil), s.events[len(s.events)-keep:]...)
	}
	if s.hook != nil {
		s.hook(out)
	}
}

// Recover stops every non-terminal worker with runtime_restart.
func (s *Store) Recover(_ context.Context, at time.Time) ([]wr.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return nil, err
	}
	var out []wr.Worker
	for _, id := range s.ids() {
		fw := s.workers[id]
		if fw.w.State == wr.StateStopped {
			continue
		}
		fw.w.State, fw.w.Status, fw.w.UpdatedAt, fw.w.StoppedAt = wr.StateStopped, wr.StatusRuntimeRestart, at, at
		c := fw.w
		s.emit(wr.Event{Kind: wr.EventWorkerUpserted, WorkerID: id, Worker: &c})
		out = append(out, c)
	}
	return out, nil
}

func (s *Store) ids() []string {
	ids := make([]string, 0, len(s.workers))
	for id := range s.workers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// LookupIdempotency finds a key made at or after notBefore.
func (s *Store) LookupIdempotency(_ context.Context, key string, notBefore time.Time) (string, string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.idem[key]
	if !ok || k.At.Before(notBefore) {
		return "", "", false, nil
	}
	return s.idemW[key], k.Fingerprint, true, nil
}

// CreateWorker inserts a worker.
func (s *Store) CreateWorker(_ context.Context, w wr.Worker, idem wr.Idempotency) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if _, dup := s.workers[w.ID]; dup {
		return errors.New("wrtest: duplicate worker id")
	}
	s.workers[w.ID] = &fakeWorker{w: w}
	if idem.Key != "" {
		s.idem[idem.Key] = idem
		s.idemW[idem.Key] = w.ID
	}
	c := w
	s.emit(wr.Event{Kind: wr.EventWorkerUpserted, WorkerID: w.ID, Worker: &c})
	return nil
}

// UpdateWorker writes state, status and times.
func (s *Store) UpdateWorker(_ context.Context, w wr.Worker) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	fw, ok := s.workers[w.ID]
	if !ok {
		return wr.ErrStoreNotFound
	}
	fw.w.State, fw.w.Status, fw.w.StoppedAt = w.State, w.Status, w.StoppedAt
	if w.UpdatedAt.After(fw.w.UpdatedAt) {
		fw.w.UpdatedAt = w.UpdatedAt
	}
	c := fw.w
	s.emit(wr.Event{Kind: wr.EventWorkerUpserted, WorkerID: w.ID, Worker: &c})
	return nil
}

// AppendTranscript appends entries with the next sequences.
func (s *Store) AppendTranscript(_ context.Context, id string, entries []wr.TranscriptEntry) ([]wr.TranscriptEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return nil, err
	}
	fw, ok := s.workers[id]
	if !ok {
		return nil, wr.ErrStoreNotFound
	}
	out := make([]wr.TranscriptEntry, 0, len(entries))
	evs := make([]wr.Event, 0, len(entries))
	for _, e := range entries {
		fw.last++
		e.Sequence = fw.last
		fw.entries = append(fw.entries, e)
		out = append(out, e)
		c := e
		evs = append(evs, wr.Event{Kind: wr.EventTranscriptAppended, WorkerID: id, Entry: &c})
		if e.At.After(fw.w.UpdatedAt) {
			fw.w.UpdatedAt = e.At
		}
	}
	keep := s.TranscriptRetention
	if keep <= 0 {
		keep = 10_000
	}
	if len(fw.entries) > keep {
		fw.entries = append([]wr.TranscriptEntry(nil), fw.entries[len(fw.entries)-keep:]...)
	}
	s.emit(evs...)
	return out, nil
}

// GetWorker returns one worker.
func (s *Store) GetWorker(_ context.Context, id string) (wr.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw, ok := s.workers[id]
	if !ok {
		return wr.Worker{}, wr.ErrStoreNotFound
	}
	return fw.w, nil
}

// ListWorkers returns a page in id order.
func (s *Store) ListWorkers(_ context.Context, after string, limit int) ([]wr.Worker, bool, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wr.Worker
	for _, id := range s.ids() {
		if id <= after {
			continue
		}
		if len(out) == limit {
			return out, true, s.nextSeq - 1, nil
		}
		out = append(out, s.workers[id].w)
	}
	return out, false, s.nextSeq - 1, nil
}

// CountByState counts workers per state.
func (s *Store) CountByState(context.Context) (map[wr.State]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[wr.State]int{}
	for _, fw := range s.workers {
		out[fw.w.State]++
	}
	return out, nil
}

// Transcript returns entries after `after`.
func (s *Store) Transcript(_ context.Context, id string, after int64, limit, maxBytes int) (wr.TranscriptPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fw, ok := s.workers[id]
	if !ok {
		return wr.TranscriptPage{}, wr.ErrStoreNotFound
	}
	p := wr.TranscriptPage{WorkerID: id, LastSequence: fw.last}
	if len(fw.entries) > 0 {
		p.FirstSequence = fw.entries[0].Sequence
	}
	size := 0
	for _, e := range fw.entries {
		if e.Sequence <= after {
			continue
		}
		if len(p.Items) == limit || (len(p.Items) > 0 && size+len(e.Content) > maxBytes) {
			break
		}
		size += len(e.Content)
		p.Items = append(p.Items, e)
	}
	if n := len(p.Items); n > 0 && p.Items[n-1].Sequence < fw.last {
		p.NextAfter = p.Items[n-1].Sequence
	}
	return p, nil
}

// LastEventSeq returns the newest seq.
func (s *Store) LastEventSeq(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq - 1, nil
}

// FirstEventSeq returns the oldest retained seq.
func (s *Store) FirstEventSeq(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) == 0 {
		return 0, nil
	}
	return s.events[0].Seq, nil
}

// EventsAfter returns events with after < seq <= upTo.
func (s *Store) EventsAfter(_ context.Context, after, upTo int64, workerID string, limit int) ([]wr.StoredEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wr.StoredEvent
	for _, e := range s.events {
		if e.Seq <= after || e.Seq > upTo || (workerID != "" && e.Event.WorkerID != workerID) {
			continue
		}
		out = append(out, e)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// Close marks the store closed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
