// Unit tests of the console's own logic: the merge of lists and events, the
// transcript window and its cursors, the create key. Run by `make test`
// (tsc -p tsconfig.test.json && node --test build-test/).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  abortLoad,
  applyEvent,
  beginLoad,
  compareTimes,
  emptyWindow,
  findWorker,
  finishLoad,
  hasOlder,
  IdempotencyKeys,
  latestQuery,
  mergedWorkers,
  mergeTranscript,
  newerQuery,
  offerWorker,
  olderQuery,
  randomKey,
  type WorkerState,
} from "../src/model.js";
import type { RegistryEvent, TranscriptItemLike, WorkerSummary } from "../src/types.js";

function worker(runtime_id: string, worker_id: string, over: Partial<WorkerSummary> = {}): WorkerSummary {
  return {
    worker_id,
    runtime_id,
    host_id: `host-${runtime_id}`,
    label: worker_id,
    role: null,
    profile: null,
    state: "active",
    status: "active:running",
    workspace: { visibility: "current_workspace", identity: "runtime_workspace" },
    implementation: { kind: "embedded_worker", display_hint: "" },
    capabilities: {
      can_get_worker: true,
      can_stop_worker: true,
      can_stop: true,
      can_accept_input: true,
      can_stream_events: true,
      can_read_bounded_transcript: true,
      can_spawn_followup: false,
    },
    last_seen_at: null,
    diagnostics: [],
    ...over,
  };
}

const upsert = (w: WorkerSummary, id = "c1"): RegistryEvent => ({ kind: "worker_upserted", id, data: w });
const removed = (runtime_id: string, worker_id: string): RegistryEvent => ({
  kind: "worker_removed",
  id: "c2",
  data: { runtime_id, worker_id },
});

function ids(state: WorkerState, order: string[] = []): string[] {
  return mergedWorkers(state, order).map((w) => `${w.runtime_id}/${w.worker_id}`);
}

describe("worker lists and events", () => {
  it("merges the lists of several runtimes, ordered by state, runtime, label", () => {
    const s: WorkerState = new Map();
    beginLoad(s, "rt-b");
    finishLoad(s, "rt-b", [worker("rt-b", "w1"), worker("rt-b", "w0", { state: "stopped" })]);
    beginLoad(s, "rt-a");
    finishLoad(s, "rt-a", [worker("rt-a", "w1"), worker("rt-a", "w2", { label: "a-first" })]);
    assert.deepEqual(ids(s, ["rt-a", "rt-b"]), ["rt-a/w2", "rt-a/w1", "rt-b/w1", "rt-b/w0"]);
  });

  it("keeps the same worker id apart in two runtimes", () => {
    const s: WorkerState = new Map();
    applyEvent(s, "rt-a", upsert(worker("rt-a", "w1", { label: "in a" })));
    applyEvent(s, "rt-b", upsert(worker("rt-b", "w1", { label: "in b" })));
    assert.equal(findWorker(s, "rt-a", "w1")?.label, "in a");
    assert.equal(findWorker(s, "rt-b", "w1")?.label, "in b");
  });

  it("applies upserts and removals, and reports whether anything changed", () => {
    const s: WorkerState = new Map();
    const cases: [RegistryEvent, string, string[]][] = [
      [upsert(worker("rt", "w1")), "workers_changed", ["rt/w1"]],
      [upsert(worker("rt", "w2")), "workers_changed", ["rt/w1", "rt/w2"]],
      [upsert(worker("rt", "w1", { state: "stopped" })), "workers_changed", ["rt/w2", "rt/w1"]],
      [removed("rt", "w2"), "workers_changed", ["rt/w1"]],
      [removed("rt", "w2"), "none", ["rt/w1"]],
      // An event naming another runtime is not this stream's to apply.
      [upsert(worker("other", "w9")), "none", ["rt/w1"]],
      [removed("other", "w1"), "none", ["rt/w1"]],
      [{ kind: "transcript_appended", id: "c3", data: { runtime_id: "rt", worker_id: "w1", sequence: 1, role: "user", content: "hi", at: "2026-01-01T00:00:00Z" } }, "none", ["rt/w1"]],
      [{ kind: "resync", id: "c4", data: { reason: "cursor_expired" } }, "resync", ["rt/w1"]],
    ];
    for (const [e, effect, after] of cases) {
      assert.equal(applyEvent(s, "rt", e), effect, `${e.kind}`);
      assert.deepEqual(ids(s), after, `after ${e.kind}`);
    }
  });

  it("holds events that arrive while a list is read, and replays them on top of it", () => {
    const s: WorkerState = new Map();
    beginLoad(s, "rt");
    // The list was read before w2 was created and before w1 stopped.
    assert.equal(applyEvent(s, "rt", upsert(worker("rt", "w2"))), "held");
    assert.equal(applyEvent(s, "rt", upsert(worker("rt", "w1", { state: "stopped" }))), "held");
    assert.equal(applyEvent(s, "rt", removed("rt", "w3")), "held");
    assert.deepEqual(ids(s), [], "nothing shown while loading");
    const changed = finishLoad(s, "rt", [worker("rt", "w1"), worker("rt", "w3")], '"etag"');
    assert.equal(changed, true);
    assert.deepEqual(ids(s), ["rt/w2", "rt/w1"]);
    assert.equal(findWorker(s, "rt", "w1")?.state, "stopped");
    // The replayed events changed the list, so its ETag no longer describes it.
    assert.equal(s.get("rt")?.etag, undefined);
  });

  it("a resync is never held: the page must re-read at once", () => {
    const s: WorkerState = new Map();
    beginLoad(s, "rt");
    assert.equal(applyEvent(s, "rt", { kind: "resync", id: "", data: { reason: "source_restarted" } }), "resync");
  });

  it("a failed read applies the held events to what was known", () => {
    const s: WorkerState = new Map();
    finishLoad(s, "rt", [worker("rt", "w1")]);
    beginLoad(s, "rt");
    applyEvent(s, "rt", upsert(worker("rt", "w2")));
    abortLoad(s, "rt");
    assert.deepEqual(ids(s), ["rt/w1", "rt/w2"]);
    assert.equal(s.get("rt")?.loading, false);
  });

  it("a list identical to what is shown reports no change and keeps its ETag", () => {
    const s: WorkerState = new Map();
    finishLoad(s, "rt", [worker("rt", "w1")], '"a"');
    beginLoad(s, "rt");
    assert.equal(finishLoad(s, "rt", [worker("rt", "w1")], '"a"'), false);
    assert.equal(s.get("rt")?.etag, '"a"');
    beginLoad(s, "rt");
    assert.equal(finishLoad(s, "rt", [worker("rt", "w1", { status: "stopping" })], '"b"'), true);
  });

  it("drops list items that belong to another runtime", () => {
    const s: WorkerState = new Map();
    finishLoad(s, "rt", [worker("rt", "w1"), worker("elsewhere", "w2")]);
    assert.deepEqual(ids(s), ["rt/w1"]);
  });
});

function entry(sequence: number, role: TranscriptItemLike["role"] = "assistant"): TranscriptItemLike {
  return { sequence, role, content: `#${sequence}`, at: "2026-01-01T00:00:00Z" };
}

describe("answers read beside the stream", () => {
  it("compares RFC 3339 times exactly, sub-millisecond digits included", () => {
    const cases: [string, string, number][] = [
      ["2026-11-29T16:04:30.99488812Z", "2026-11-29T16:04:30.9948Z", 1],
      ["2026-11-29T16:04:30.9948Z", "2026-11-29T16:04:30.994800000Z", 0],
      ["2026-11-29T16:04:30Z", "2026-11-29T16:04:30.000000001Z", -1],
      ["2026-11-29T16:04:31Z", "2026-11-29T16:04:30.999999999Z", 1],
      ["2025-12-31T23:59:59.9Z", "2026-01-01T00:00:00Z", -1],
    ];
    for (const [a, b, want] of cases) assert.equal(Math.sign(compareTimes(a, b)), want, `${a} vs ${b}`);
  });

  it("never lets a create's late answer undo a newer event", () => {
    const s: WorkerState = new Map();
    const starting = worker("rt", "w1", { state: "starting", status: "starting", last_seen_at: "2026-11-29T16:04:30.1000001Z" });
    const active = worker("rt", "w1", { last_seen_at: "2026-11-29T16:04:30.1000002Z" });
    applyEvent(s, "rt", upsert(active)); // the stream was quicker than the POST's answer
    assert.equal(offerWorker(s, "rt", starting), false);
    assert.equal(findWorker(s, "rt", "w1")?.state, "active");
    const stopped = worker("rt", "w1", { state: "stopped", status: "stopped:requested", last_seen_at: "2026-11-29T16:04:31Z" });
    assert.equal(offerWorker(s, "rt", stopped), true, "a newer answer applies");
    assert.equal(findWorker(s, "rt", "w1")?.state, "stopped");
    assert.equal(offerWorker(s, "rt", stopped), false, "the same answer again changes nothing");
  });

  it("applies an answer about an unknown worker, or one without times", () => {
    const s: WorkerState = new Map();
    assert.equal(offerWorker(s, "rt", worker("rt", "w1")), true);
    assert.equal(offerWorker(s, "rt", worker("rt", "w1", { status: "active:segment" })), true);
    assert.equal(offerWorker(s, "other", worker("rt", "w2")), false, "another runtime's worker");
  });

  it("holds an answer that arrives while the list is read", () => {
    const s: WorkerState = new Map();
    beginLoad(s, "rt");
    assert.equal(offerWorker(s, "rt", worker("rt", "w9")), false);
    finishLoad(s, "rt", []);
    assert.deepEqual(ids(s), ["rt/w9"]);
  });
});

describe("transcript window", () => {
  it("merges pages and events in any order, once each", () => {
    const w = emptyWindow();
    assert.equal(mergeTranscript(w, [entry(3), entry(4)]), true);
    assert.equal(mergeTranscript(w, [entry(5), entry(4)]), true);
    assert.equal(mergeTranscript(w, [entry(3)]), false, "a repeated event changes nothing");
    assert.equal(mergeTranscript(w, [entry(1), entry(2)]), true);
    assert.deepEqual(
      w.items.map((i) => i.sequence),
      [1, 2, 3, 4, 5],
    );
  });

  it("reads the newest page of a transcript", () => {
    const cases: [number, number, number, { after: number; limit: number }][] = [
      [0, 0, 50, { after: 0, limit: 50 }], // empty
      [1, 10, 50, { after: 0, limit: 50 }], // all of it fits
      [1, 120, 50, { after: 70, limit: 50 }],
      [101, 120, 50, { after: 100, limit: 50 }], // older entries trimmed by retention
      [1, 1000, 500, { after: 800, limit: 200 }], // the contract's largest page
      [1, 10, 0, { after: 9, limit: 1 }],
    ];
    for (const [first, last, size, want] of cases) {
      assert.deepEqual(latestQuery(first, last, size), want, `first ${first} last ${last} size ${size}`);
    }
  });

  it("pages back to the oldest retained entry, then stops", () => {
    const w = emptyWindow();
    w.firstSequence = 5;
    mergeTranscript(w, [entry(60), entry(61)]);
    const steps: { after: number; limit: number }[] = [];
    for (let q = olderQuery(w, 20); q !== undefined; q = olderQuery(w, 20)) {
      steps.push(q);
      const items: TranscriptItemLike[] = [];
      for (let s = q.after + 1; s <= q.after + q.limit; s++) items.push(entry(s));
      mergeTranscript(w, items);
      assert.ok(steps.length < 10, "paging back terminates");
    }
    assert.deepEqual(steps, [
      { after: 39, limit: 20 },
      { after: 19, limit: 20 },
      { after: 4, limit: 15 },
    ]);
    assert.equal(w.items[0]?.sequence, 5);
    assert.equal(hasOlder(w), false);
  });

  it("knows when older entries exist", () => {
    const w = emptyWindow();
    assert.equal(hasOlder(w), false);
    assert.equal(olderQuery(w, 10), undefined);
    w.firstSequence = 1;
    mergeTranscript(w, [entry(1), entry(2)]);
    assert.equal(hasOlder(w), false);
    const x = emptyWindow();
    x.firstSequence = 1;
    mergeTranscript(x, [entry(3)]);
    assert.equal(hasOlder(x), true);
    assert.deepEqual(olderQuery(x, 10), { after: 0, limit: 2 });
  });

  it("asks for what came after the newest entry held", () => {
    const w = emptyWindow();
    assert.deepEqual(newerQuery(w, 50), { after: 0, limit: 50 });
    w.firstSequence = 7;
    assert.deepEqual(newerQuery(w, 50), { after: 6, limit: 50 });
    mergeTranscript(w, [entry(7), entry(8)]);
    assert.deepEqual(newerQuery(w, 999), { after: 8, limit: 200 });
  });
});

describe("create idempotency keys", () => {
  it("reuses the key for a repeated submit of the same form, and only then", () => {
    let n = 0;
    const keys = new IdempotencyKeys(() => `k${++n}`);
    const body = { runtimeId: "rt", body: { intent: { kind: "task", objective: "x" } } };
    const first = keys.keyFor(body);
    assert.equal(keys.keyFor(structuredClone(body)), first, "a double click sends the same key");
    const other = keys.keyFor({ ...body, runtimeId: "rt2" });
    assert.notEqual(other, first, "another body gets another key");
    keys.done();
    assert.notEqual(keys.keyFor({ ...body, runtimeId: "rt2" }), other, "after a success the same form is a new create");
  });

  it("makes keys of the contract's id alphabet", () => {
    const key = randomKey((a) => a.fill(0xab));
    assert.match(key, /^[A-Za-z0-9_:-]{1,120}$/);
    assert.equal(key, "console-" + "ab".repeat(16));
  });
});
