-- Indexes for per-worker event replay, crash recovery and the idempotency
-- key sweep.

-- +goose Up
CREATE INDEX events_worker_seq ON events (worker_id, seq);
CREATE INDEX workers_state ON workers (state);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP INDEX idempotency_keys_created;
DROP INDEX workers_state;
DROP INDEX events_worker_seq;
