-- The base schema of the Worker Runtime's store. Times are Unix nanoseconds
-- (UTC); 0 means "not set".

-- +goose Up
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE workers (
    id               TEXT PRIMARY KEY,
    profile          TEXT NOT NULL,
    profile_label    TEXT NOT NULL,
    label            TEXT NOT NULL,
    intent_kind      TEXT NOT NULL,
    intent_purpose   TEXT NOT NULL,
    intent_objective TEXT NOT NULL,
    intent_role      TEXT NOT NULL,
    state            TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    stopped_at       INTEGER NOT NULL DEFAULT 0,
    first_seq        INTEGER NOT NULL DEFAULT 0, -- oldest retained transcript entry
    last_seq         INTEGER NOT NULL DEFAULT 0  -- newest transcript entry
);

CREATE TABLE transcript (
    worker_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    role      TEXT NOT NULL,
    content   TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (worker_id, seq)
) WITHOUT ROWID;

-- seq is the global event cursor, assigned by the single writer.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    payload   TEXT NOT NULL
);

CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    worker_id   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE transcript;
DROP TABLE workers;
DROP TABLE meta;
