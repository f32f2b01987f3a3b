// Package sqlitestore is the Worker Runtime's Store on SQLite
// (modernc.org/sqlite, pure Go): WAL, embedded goose migrations applied at
// open, one writer goroutine that batches queued writes into one
// transaction, and a separate pool of readers.
//
// The SQL is hand-written database/sql in this one file (queries.go):
// there are few queries, and it keeps an extra code generator out of CI.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Retention defaults (DESIGN "Limits").
const (
	DefaultTranscriptRetention = 10_000
	DefaultEventRetention      = 100_000
	// IdempotencyRetention is how long an idempotency key is kept.
	IdempotencyRetention = 24 * time.Hour
	// maxBatch bounds the write requests that share one transaction.
	maxBatch = 512
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("sqlitestore: closed")

// Options tune a Store; the zero value is the production setting.
type Options struct {
	TranscriptRetention int              // entries kept per worker; 0 = 10,000
	EventRetention      int              // events kept; 0 = 100,000
	Now                 func() time.Time // for the idempotency sweep; nil = time.Now
}

// Store is the SQLite Store. It is safe for concurrent use.
type Store struct {
	wdb, rdb   *sql.DB
	opts       Options
	instanceID string

	reqs     chan *writeReq
	mu       sync.Mutex // guards closed and sends on reqs
	closed   bool
	finished chan struct{}

	hook atomic.Pointer[func([]workerruntime.StoredEvent)]

	// Prepared on the writer connection: one row, and multiRows rows at once.
	insEvent, insTranscript, insEventN, insTranscriptN *sql.Stmt
	// Prepared on the reader pool (database/sql prepares each once per
	// connection): the reads of every list and lookup, which SQLite would
	// otherwise parse again on every call.
	selWorker, selWorkersAfter, selMaxEventSeq *sql.Stmt

	// writer goroutine state
	nextSeq    int64
	firstSeq   int64 // oldest retained event seq (0 if none)
	lastSweep  time.Time
	lastSeqPub atomic.Int64
}

var _ workerruntime.Store = (*Store)(nil)

type writeReq struct {
	ctx    context.Context
	fn     func(w *txState) error
	done   chan error
	events []workerruntime.StoredEvent
}

// txState is what one write request sees inside the shared transaction.
type txState struct {
	s     *Store
	tx    *sql.Tx
	ctx   context.Context
	req   *writeReq
	stmts *batchStmts
}

// batchStmts are the hot statements bound to one batch's transaction
// (prepared once per store: parsing SQL per row cost a fifth of the CPU).
type batchStmts struct {
	event, transcript, eventN, transcriptN *sql.Stmt
}

func (w *txState) stmt(slot **sql.Stmt, prepared *sql.Stmt) *sql.Stmt {
	if *slot == nil {
		*slot = w.tx.StmtContext(w.ctx, prepared)
	}
	return *slot
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating when missing) the database at path, applies the
// embedded migrations and starts the writer. Its errors are start-up errors.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.TranscriptRetention <= 0 {
		opts.TranscriptRetention = DefaultTranscriptRetention
	}
	if opts.EventRetention <= 0 {
		opts.EventRetention = DefaultEventRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	wdb, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open the database: %w", err)
	}
	// One writer connection: SQLite has one writer anyway, and this keeps
	// every write on the goroutine that batches them.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	if err := migrate(ctx, wdb); err != nil {
		_ = wdb.Close()
		return nil, err
	}
	rdb, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("open the database: %w", err)
	}
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)
	s := &Store{wdb: wdb, rdb: rdb, opts: opts, reqs: make(chan *writeReq, maxBatch), finished: make(chan struct{})}
	if err := s.init(ctx); err != nil {
		_ = wdb.Close()
		_ = rdb.Close()
		return nil, err
	}
	for _, st := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&s.insEvent, sqlInsertEvent}, {&s.insTranscript, sqlInsertTranscript},
		{&s.insEventN, multiRow(sqlInsertEvent, multiRows)}, {&s.insTranscriptN, multiRow(sqlInsertTranscript, multiRows)},
	} {
		if err == nil {
			*st.dst, err = wdb.PrepareContext(ctx, st.q)
		}
	}
	for _, st := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&s.selWorker, sqlSelectWorker}, {&s.selWorkersAfter, sqlSelectWorkersAfter}, {&s.selMaxEventSeq, sqlSelectMaxEventSeq},
	} {
		if err == nil {
			*st.dst, err = rdb.PrepareContext(ctx, st.q)
		}
	}
	if err != nil {
		_ = wdb.Close()
		_ = rdb.Close()
		return nil, fmt.Errorf("prepare statements: %w", err)
	}
	go s.writer()
	return s, nil
}

// Migrations returns the embedded migrations (for tests that build an
// older schema).
func Migrations() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

func migrate(ctx context.Context, db *sql.DB) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, Migrations())
	if err != nil {
		return fmt.Errorf("load the migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply the migrations: %w", err)
	}
	return nil
}

func (s *Store) init(ctx context.Context) error {
	if _, err := s.wdb.ExecContext(ctx, `INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?)`, uuid.NewString()); err != nil {
		return fmt.Errorf("write the instance id: %w", err)
	}
	if err := s.wdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'instance_id'`).Scan(&s.instanceID); err != nil {
		return fmt.Errorf("read the instance id: %w", err)
	}
	var first, last int64
	if err := s.wdb.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM events`).Scan(&first, &last); err != nil {
		return fmt.Errorf("read the event cursor: %w", err)
	}
	s.firstSeq, s.nextSeq = first, last+1
	s.lastSeqPub.Store(last)
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, nanos(s.opts.Now().Add(-IdempotencyRetention))); err != nil {
		return fmt.Errorf("sweep idempotency keys: %w", err)
	}
	s.lastSweep = s.opts.Now()
	return nil
}

// InstanceID is the UUID made at the store's first open.
func (s *Store) InstanceID() string { return s.instanceID }

// SetCommitHook installs the receiver of committed events (cursor order).
func (s *Store) SetCommitHook(f func([]workerruntime.StoredEvent)) { s.hook.Store(&f) }

// Close lets queued writes finish, stops the writer and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.finished
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.finished
	return errors.Join(s.insEvent.Close(), s.insTranscript.Close(), s.insEventN.Close(), s.insTranscriptN.Close(),
		s.selWorker.Close(), s.selWorkersAfter.Close(), s.selMaxEventSeq.Close(),
		s.rdb.Close(), s.wdb.Close())
}

// write queues fn for the writer and waits for its commit.
func (s *Store) write(ctx context.Context, fn func(w *txState) error) ([]workerruntime.StoredEvent, error) {
	req := &writeReq{ctx: context.WithoutCancel(ctx), fn: fn, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	// The writer drains reqs continually, so this send waits at most for
	// one batch; holding mu keeps Close from closing the channel under it.
	s.reqs <- req
	s.mu.Unlock()
	// Once queued, the write is committed or failed regardless of ctx:
	// callers need to know which, so this waits for the answer.
	err := <-req.done
	return req.events, err
}

// writer is the only goroutine that writes: it takes what is queued (up to
// maxBatch requests), runs it in one transaction, commits, repeats.
func (s *Store) writer() {
	defer close(s.finished)
	for first := range s.reqs {
		batch := []*writeReq{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.runBatch(batch)
	}
}

func (s *Store) runBatch(batch []*writeReq) {
	byRequest, err := s.tryBatch(batch)
	if err == nil {
		return
	}
	if byRequest && len(batch) > 1 {
		// One request failed (an unknown worker, say): run each alone so
		// the others still commit. Failures are rare, so the common path
		// needs no SAVEPOINT per request (a savepoint journals every page
		// it touches: a tenth of the CPU of an output burst).
		for _, r := range batch {
			s.runBatch([]*writeReq{r})
		}
		return
	}
	for _, r := range batch {
		r.events = nil
		r.done <- err
	}
}

// tryBatch runs batch in one transaction. On success it publishes the
// events, answers every request and returns nil; on failure it rolls back
// and returns the error, byRequest telling a request's own failure from
// the transaction's.
func (s *Store) tryBatch(batch []*writeReq) (byRequest bool, err error) {
	startSeq, startFirst, startSweep := s.nextSeq, s.firstSeq, s.lastSweep
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	undo := func() {
		_ = tx.Rollback()
		s.nextSeq, s.firstSeq, s.lastSweep = startSeq, startFirst, startSweep
		for _, r := range batch {
			r.events = nil
		}
	}
	stmts := &batchStmts{}
	for _, r := range batch {
		r.events = nil
		if err := r.fn(&txState{s: s, tx: tx, ctx: r.ctx, req: r, stmts: stmts}); err != nil {
			undo()
			return true, err
		}
	}
	if err := s.retain(ctx, tx); err != nil {
		undo()
		return false, err
	}
	if err := tx.Commit(); err != nil {
		undo()
		return false, err
	}
	s.lastSeqPub.Store(s.nextSeq - 1)
	var all []workerruntime.StoredEvent
	for _, r := range batch {
		all = append(all, r.events...)
	}
	if h := s.hook.Load(); h != nil && len(all) > 0 {
		(*h)(all)
	}
	for _, r := range batch {
		r.done <- nil
	}
	return false, nil
}

// retain trims old events and, now and then, expired idempotency keys.
func (s *Store) retain(ctx context.Context, tx *sql.Tx) error {
	last := s.nextSeq - 1
	if s.firstSeq == 0 && last > 0 {
		s.firstSeq = 1
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0) FROM events`).Scan(&s.firstSeq); err != nil {
			return err
		}
	}
	if keepFrom := last - int64(s.opts.EventRetention) + 1; s.firstSeq > 0 && s.firstSeq < keepFrom {
		if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE seq < ?`, keepFrom); err != nil {
			return err
		}
		s.firstSeq = keepFrom
	}
	if now := s.opts.Now(); now.Sub(s.lastSweep) >= time.Hour || now.Before(s.lastSweep) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, nanos(now.Add(-IdempotencyRetention))); err != nil {
			return err
		}
		s.lastSweep = now
	}
	return nil
}

// eventsN appends events in the current request, multiRows per statement
// where it can (a burst of output lines is one such call).
func (w *txState) eventsN(evs []workerruntime.Event) error {
	for len(evs) >= multiRows {
		args := make([]any, 0, 4*multiRows)
		stored := make([]workerruntime.StoredEvent, 0, multiRows)
		for i, ev := range evs[:multiRows] {
			payload, err := encodePayload(ev)
			if err != nil {
				return err
			}
			seq := w.s.nextSeq + int64(i)
			args = append(args, seq, string(ev.Kind), ev.WorkerID, payload)
			stored = append(stored, workerruntime.StoredEvent{Seq: seq, Event: ev})
		}
		if _, err := w.stmt(&w.stmts.eventN, w.s.insEventN).ExecContext(w.ctx, args...); err != nil {
			return err
		}
		w.s.nextSeq += multiRows
		w.req.events = append(w.req.events, stored...)
		evs = evs[multiRows:]
	}
	for _, ev := range evs {
		if err := w.event(ev); err != nil {
			return err
		}
	}
	return nil
}

// event appends one event in the current request.
func (w *txState) event(ev workerruntime.Event) error {
	payload, err := encodePayload(ev)
	if err != nil {
		return err
	}
	seq := w.s.nextSeq
	if _, err := w.stmt(&w.stmts.event, w.s.insEvent).ExecContext(w.ctx, seq, string(ev.Kind), ev.WorkerID, payload); err != nil {
		return err
	}
	w.s.nextSeq++
	w.req.events = append(w.req.events, workerruntime.StoredEvent{Seq: seq, Event: ev})
	return nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
