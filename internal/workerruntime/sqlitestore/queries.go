package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// Every SQL statement of the store is in this file.

const (
	sqlInsertEvent      = `INSERT INTO events (seq, kind, worker_id, payload) VALUES (?, ?, ?, ?)`
	sqlInsertTranscript = `INSERT INTO transcript (worker_id, seq, role, content, at) VALUES (?, ?, ?, ?, ?)`
	// multiRows rows per INSERT for bursts of output: one statement step
	// per 64 rows instead of per row roughly doubles lines/s.
	multiRows = 64
)

// multiRow repeats a one-row INSERT's VALUES tuple n times.
func multiRow(q string, n int) string {
	i := strings.Index(q, "VALUES ")
	tuple := q[i+len("VALUES "):]
	return q[:i+len("VALUES ")] + strings.TrimSuffix(strings.Repeat(tuple+", ", n), ", ")
}

const workerCols = `id, profile, profile_label, label, intent_kind, intent_purpose, intent_objective, intent_role,
	state, status, created_at, updated_at, stopped_at`

// The reads prepared once on the reader pool (see Store).
const (
	sqlSelectWorker       = `SELECT ` + workerCols + ` FROM workers WHERE id = ?`
	sqlSelectWorkersAfter = `SELECT ` + workerCols + ` FROM workers WHERE id > ? ORDER BY id LIMIT ?`
	sqlSelectMaxEventSeq  = `SELECT COALESCE(MAX(seq), 0) FROM events`
)

type scanner interface{ Scan(dest ...any) error }

func scanWorker(sc scanner) (wr.Worker, error) {
	var w wr.Worker
	var kind, state string
	var created, updated, stopped int64
	if err := sc.Scan(&w.ID, &w.Profile, &w.ProfileLabel, &w.Label, &kind, &w.Intent.Purpose, &w.Intent.Objective,
		&w.Intent.Role, &state, &w.Status, &created, &updated, &stopped); err != nil {
		return wr.Worker{}, err
	}
	w.Intent.Kind, w.State = wr.IntentKind(kind), wr.State(state)
	w.CreatedAt, w.UpdatedAt, w.StoppedAt = fromNanos(created), fromNanos(updated), fromNanos(stopped)
	return w, nil
}

// payloads of the events table: a stable JSON shape of our own.
type workerJSON struct {
	ID           string     `json:"id"`
	Profile      string     `json:"profile"`
	ProfileLabel string     `json:"profile_label"`
	Label        string     `json:"label"`
	Intent       intentJSON `json:"intent"`
	State        wr.State   `json:"state"`
	Status       string     `json:"status"`
	CreatedAt    int64      `json:"created_at"`
	UpdatedAt    int64      `json:"updated_at"`
	StoppedAt    int64      `json:"stopped_at,omitempty"`
}

type intentJSON struct {
	Kind      wr.IntentKind `json:"kind"`
	Purpose   string        `json:"purpose,omitempty"`
	Objective string        `json:"objective,omitempty"`
	Role      string        `json:"role,omitempty"`
}

type entryJSON struct {
	Sequence int64   `json:"sequence"`
	Role     wr.Role `json:"role"`
	Content  string  `json:"content"`
	At       int64   `json:"at"`
}

func encodePayload(ev wr.Event) (string, error) {
	var v any
	switch {
	case ev.Worker != nil:
		w := ev.Worker
		v = workerJSON{ID: w.ID, Profile: w.Profile, ProfileLabel: w.ProfileLabel, Label: w.Label,
			Intent: intentJSON(w.Intent), State: w.State, Status: w.Status,
			CreatedAt: nanos(w.CreatedAt), UpdatedAt: nanos(w.UpdatedAt), StoppedAt: nanos(w.StoppedAt)}
	case ev.Entry != nil:
		e := ev.Entry
		v = entryJSON{Sequence: e.Sequence, Role: e.Role, Content: e.Content, At: nanos(e.At)}
	default:
		v = struct{}{}
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func decodeEvent(seq int64, kind, workerID, payload string) (wr.StoredEvent, error) {
	ev := wr.Event{Kind: wr.EventKind(kind), WorkerID: workerID}
	switch ev.Kind {
	case wr.EventWorkerUpserted:
		var j workerJSON
		if err := json.Unmarshal([]byte(payload), &j); err != nil {
			return wr.StoredEvent{}, err
		}
		ev.Worker = &wr.Worker{ID: j.ID, Profile: j.Profile, ProfileLabel: j.ProfileLabel, Label: j.Label,
			Intent: wr.Intent(j.Intent), State: j.State, Status: j.Status,
			CreatedAt: fromNanos(j.CreatedAt), UpdatedAt: fromNanos(j.UpdatedAt), StoppedAt: fromNanos(j.StoppedAt)}
	case wr.EventTranscriptAppended:
		var j entryJSON
		if err := json.Unmarshal([]byte(payload), &j); err != nil {
			return wr.StoredEvent{}, err
		}
		ev.Entry = &wr.TranscriptEntry{Sequence: j.Sequence, Role: j.Role, Content: j.Content, At: fromNanos(j.At)}
	}
	return wr.StoredEvent{Seq: seq, Event: ev}, nil
}

// ---- writes

// Recover turns every non-terminal worker into stopped:runtime_restart.
func (s *Store) Recover(ctx context.Context, at time.Time) ([]wr.Worker, error) {
	var out []wr.Worker
	_, err := s.write(ctx, func(w *txState) error {
		out = nil
		rows, err := w.tx.QueryContext(w.ctx, `SELECT `+workerCols+` FROM workers WHERE state <> ? ORDER BY id`, string(wr.StateStopped))
		if err != nil {
			return err
		}
		var ws []wr.Worker
		for rows.Next() {
			wk, err := scanWorker(rows)
			if err != nil {
				_ = rows.Close()
				return err
			}
			ws = append(ws, wk)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, wk := range ws {
			wk.State, wk.Status, wk.UpdatedAt, wk.StoppedAt = wr.StateStopped, wr.StatusRuntimeRestart, at.UTC(), at.UTC()
			if err := w.updateWorker(wk); err != nil {
				return err
			}
			out = append(out, wk)
		}
		return nil
	})
	return out, err
}

// LookupIdempotency finds a key made at or after notBefore.
func (s *Store) LookupIdempotency(ctx context.Context, key string, notBefore time.Time) (string, string, bool, error) {
	var id, fp string
	err := s.rdb.QueryRowContext(ctx, `SELECT worker_id, fingerprint FROM idempotency_keys WHERE key = ? AND created_at >= ?`,
		key, nanos(notBefore)).Scan(&id, &fp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	return id, fp, true, nil
}

// CreateWorker inserts a worker (and its idempotency key) with an event.
func (s *Store) CreateWorker(ctx context.Context, wk wr.Worker, idem wr.Idempotency) error {
	_, err := s.write(ctx, func(w *txState) error {
		if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO workers (`+workerCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			wk.ID, wk.Profile, wk.ProfileLabel, wk.Label, string(wk.Intent.Kind), wk.Intent.Purpose, wk.Intent.Objective,
			wk.Intent.Role, string(wk.State), wk.Status, nanos(wk.CreatedAt), nanos(wk.UpdatedAt), nanos(wk.StoppedAt)); err != nil {
			return err
		}
		if idem.Key != "" {
			if _, err := w.tx.ExecContext(w.ctx, `INSERT OR REPLACE INTO idempotency_keys (key, worker_id, fingerprint, created_at) VALUES (?, ?, ?, ?)`,
				idem.Key, wk.ID, idem.Fingerprint, nanos(idem.At)); err != nil {
				return err
			}
		}
		c := wk
		return w.event(wr.Event{Kind: wr.EventWorkerUpserted, WorkerID: wk.ID, Worker: &c})
	})
	return err
}

// UpdateWorker writes state, status and times with an event.
func (s *Store) UpdateWorker(ctx context.Context, wk wr.Worker) error {
	_, err := s.write(ctx, func(w *txState) error { return w.updateWorker(wk) })
	return err
}

func (w *txState) updateWorker(wk wr.Worker) error {
	res, err := w.tx.ExecContext(w.ctx, `UPDATE workers SET state = ?, status = ?, updated_at = MAX(updated_at, ?), stopped_at = ? WHERE id = ?`,
		string(wk.State), wk.Status, nanos(wk.UpdatedAt), nanos(wk.StoppedAt), wk.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errors.Join(err, wr.ErrStoreNotFound)
	}
	// The event carries the row as stored (updated_at may be a later
	// transcript append's).
	row := w.tx.QueryRowContext(w.ctx, `SELECT `+workerCols+` FROM workers WHERE id = ?`, wk.ID)
	stored, err := scanWorker(row)
	if err != nil {
		return err
	}
	return w.event(wr.Event{Kind: wr.EventWorkerUpserted, WorkerID: wk.ID, Worker: &stored})
}

// AppendTranscript appends entries with the next sequences, trims the
// worker's transcript to the retention, and emits one event per entry.
func (s *Store) AppendTranscript(ctx context.Context, workerID string, entries []wr.TranscriptEntry) ([]wr.TranscriptEntry, error) {
	var out []wr.TranscriptEntry
	_, err := s.write(ctx, func(w *txState) error {
		out = make([]wr.TranscriptEntry, 0, len(entries))
		var first, last int64
		err := w.tx.QueryRowContext(w.ctx, `SELECT first_seq, last_seq FROM workers WHERE id = ?`, workerID).Scan(&first, &last)
		if errors.Is(err, sql.ErrNoRows) {
			return wr.ErrStoreNotFound
		}
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		var at time.Time
		evs := make([]wr.Event, 0, len(entries))
		args := make([]any, 0, 5*multiRows)
		for i, e := range entries {
			last++
			e.Sequence, e.At = last, e.At.UTC()
			out = append(out, e)
			evs = append(evs, wr.Event{Kind: wr.EventTranscriptAppended, WorkerID: workerID, Entry: &out[i]})
			at = e.At
		}
		rest := out
		for len(rest) >= multiRows {
			args = args[:0]
			for _, e := range rest[:multiRows] {
				args = append(args, workerID, e.Sequence, string(e.Role), e.Content, nanos(e.At))
			}
			if _, err := w.stmt(&w.stmts.transcriptN, s.insTranscriptN).ExecContext(w.ctx, args...); err != nil {
				return err
			}
			rest = rest[multiRows:]
		}
		for _, e := range rest {
			if _, err := w.stmt(&w.stmts.transcript, s.insTranscript).ExecContext(w.ctx, workerID, e.Sequence, string(e.Role), e.Content, nanos(e.At)); err != nil {
				return err
			}
		}
		if err := w.eventsN(evs); err != nil {
			return err
		}
		if first == 0 {
			first = out[0].Sequence
		}
		if keepFrom := last - int64(s.opts.TranscriptRetention) + 1; first < keepFrom {
			if _, err := w.tx.ExecContext(w.ctx, `DELETE FROM transcript WHERE worker_id = ? AND seq < ?`, workerID, keepFrom); err != nil {
				return err
			}
			first = keepFrom
		}
		_, err = w.tx.ExecContext(w.ctx, `UPDATE workers SET first_seq = ?, last_seq = ?, updated_at = MAX(updated_at, ?) WHERE id = ?`,
			first, last, nanos(at), workerID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ---- reads

// GetWorker returns one worker.
func (s *Store) GetWorker(ctx context.Context, id string) (wr.Worker, error) {
	w, err := scanWorker(s.selWorker.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return wr.Worker{}, wr.ErrStoreNotFound
	}
	return w, err
}

// ListWorkers returns a page in id order with the newest event seq, read
// in one transaction.
func (s *Store) ListWorkers(ctx context.Context, after string, limit int) (ws []wr.Worker, more bool, lastSeq int64, err error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, false, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.StmtContext(ctx, s.selWorkersAfter).QueryContext(ctx, after, limit+1)
	if err != nil {
		return nil, false, 0, err
	}
	for rows.Next() {
		w, err := scanWorker(rows)
		if err != nil {
			_ = rows.Close()
			return nil, false, 0, err
		}
		ws = append(ws, w)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, false, 0, err
	}
	if len(ws) > limit {
		ws, more = ws[:limit], true
	}
	if err := tx.StmtContext(ctx, s.selMaxEventSeq).QueryRowContext(ctx).Scan(&lastSeq); err != nil {
		return nil, false, 0, err
	}
	return ws, more, lastSeq, nil
}

// CountByState counts workers per state.
func (s *Store) CountByState(ctx context.Context) (map[wr.State]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT state, COUNT(*) FROM workers GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := map[wr.State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[wr.State(st)] = n
	}
	return out, rows.Err()
}

// Transcript returns entries after `after`, cut at limit and maxBytes.
func (s *Store) Transcript(ctx context.Context, workerID string, after int64, limit, maxBytes int) (wr.TranscriptPage, error) {
	p := wr.TranscriptPage{WorkerID: workerID}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return p, err
	}
	defer func() { _ = tx.Rollback() }()
	err = tx.QueryRowContext(ctx, `SELECT first_seq, last_seq FROM workers WHERE id = ?`, workerID).Scan(&p.FirstSequence, &p.LastSequence)
	if errors.Is(err, sql.ErrNoRows) {
		return p, wr.ErrStoreNotFound
	}
	if err != nil {
		return p, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, role, content, at FROM transcript WHERE worker_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		workerID, after, limit)
	if err != nil {
		return p, err
	}
	defer func() { _ = rows.Close() }()
	size := 0
	for rows.Next() {
		var e wr.TranscriptEntry
		var role string
		var at int64
		if err := rows.Scan(&e.Sequence, &role, &e.Content, &at); err != nil {
			return p, err
		}
		if len(p.Items) > 0 && size+len(e.Content) > maxBytes {
			break
		}
		size += len(e.Content)
		e.Role, e.At = wr.Role(role), fromNanos(at)
		p.Items = append(p.Items, e)
	}
	if err := rows.Err(); err != nil {
		return p, err
	}
	if n := len(p.Items); n > 0 && p.Items[n-1].Sequence < p.LastSequence {
		p.NextAfter = p.Items[n-1].Sequence
	}
	return p, nil
}

// LastEventSeq returns the newest committed event's seq.
func (s *Store) LastEventSeq(context.Context) (int64, error) { return s.lastSeqPub.Load(), nil }

// FirstEventSeq returns the oldest retained event's seq (0 if none).
func (s *Store) FirstEventSeq(ctx context.Context) (int64, error) {
	var first int64
	err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0) FROM events`).Scan(&first)
	return first, err
}

// EventsAfter returns events with after < seq <= upTo, ascending.
func (s *Store) EventsAfter(ctx context.Context, after, upTo int64, workerID string, limit int) ([]wr.StoredEvent, error) {
	q := `SELECT seq, kind, worker_id, payload FROM events WHERE seq > ? AND seq <= ?`
	args := []any{after, upTo}
	if workerID != "" {
		q += ` AND worker_id = ?`
		args = append(args, workerID)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []wr.StoredEvent
	for rows.Next() {
		var seq int64
		var kind, wid, payload string
		if err := rows.Scan(&seq, &kind, &wid, &payload); err != nil {
			return nil, err
		}
		ev, err := decodeEvent(seq, kind, wid, payload)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", seq, err)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}
