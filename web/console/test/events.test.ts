// Tests of the typed event-stream helper (clients/typescript/src/events.ts)
// as the console uses it, over a fake EventSource.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { openRuntimeEvents, parseEvent, type RegistryEvent } from "../../../clients/typescript/src/events.js";

const summary = JSON.stringify({
  worker_id: "w1",
  runtime_id: "rt",
  host_id: "h",
  label: "echo",
  role: null,
  profile: "echo",
  state: "active",
  status: "active:running",
  workspace: { visibility: "current_workspace", identity: "runtime_workspace" },
  implementation: { kind: "embedded_worker", display_hint: "" },
  capabilities: {},
  last_seen_at: null,
  diagnostics: [],
});

describe("parseEvent", () => {
  it("types each kind's data and rejects what it cannot use", () => {
    const cases: [string, string, string | undefined][] = [
      ["worker_upserted", summary, "worker_upserted"],
      ["worker_removed", '{"runtime_id":"rt","worker_id":"w1"}', "worker_removed"],
      ["transcript_appended", '{"runtime_id":"rt","worker_id":"w1","sequence":3,"role":"assistant","content":"hi","at":"2026-01-01T00:00:00Z"}', "transcript_appended"],
      ["resync", '{"reason":"cursor_expired"}', "resync"],
      ["worker_upserted", '{"runtime_id":"rt"}', undefined],
      ["transcript_appended", '{"runtime_id":"rt","worker_id":"w1","sequence":"3","role":"user","content":"","at":""}', undefined],
      ["worker_removed", "not json", undefined],
      ["worker_removed", "[1,2]", undefined],
      ["resync", "null", undefined],
      ["something_new", '{"reason":"x"}', undefined],
    ];
    for (const [kind, data, want] of cases) {
      assert.equal(parseEvent(kind, "c9", data)?.kind, want, `${kind} ${data}`);
    }
    const e = parseEvent("transcript_appended", "c9", '{"runtime_id":"rt","worker_id":"w1","sequence":3,"role":"assistant","content":"hi","at":"x"}');
    assert.equal(e?.id, "c9");
    if (e?.kind === "transcript_appended") assert.equal(e.data.sequence, 3);
    else assert.fail("not a transcript event");
  });
});

class FakeEventSource extends EventTarget {
  readyState = 0;
  closed = false;
  constructor(readonly url: string) {
    super();
  }
  close(): void {
    this.closed = true;
    this.readyState = 2;
  }
  emit(kind: string, id: string, data: string): void {
    this.dispatchEvent(new MessageEvent(kind, { data, lastEventId: id }));
  }
}

describe("openRuntimeEvents", () => {
  it("opens the runtime's stream (resuming after a cursor) and delivers typed events in order", () => {
    let fake: FakeEventSource | undefined;
    const got: RegistryEvent[] = [];
    const bad: string[] = [];
    let opened = 0;
    const errors: boolean[] = [];
    const stream = openRuntimeEvents("http://127.0.0.1:1", "rt:1", {
      cursor: "c 1",
      eventSource: (url) => (fake = new FakeEventSource(url)) as unknown as EventSource,
      onEvent: (e) => got.push(e),
      onMalformed: (kind, id) => bad.push(`${kind}@${id}`),
      onOpen: () => opened++,
      onError: (closed) => errors.push(closed),
    });
    assert.ok(fake);
    assert.equal(fake.url, "http://127.0.0.1:1/api/runtimes/rt%3A1/events?cursor=c%201");
    assert.equal(stream.lastEventId, "c 1");
    fake.dispatchEvent(new Event("open"));
    fake.emit("worker_upserted", "c2", summary);
    fake.emit("worker_removed", "c3", "{}");
    fake.emit("resync", "c4", '{"reason":"source_restarted"}');
    fake.emit("message", "c5", summary); // an unnamed event is not one of ours
    fake.dispatchEvent(new Event("error"));
    assert.deepEqual(
      got.map((e) => `${e.kind}@${e.id}`),
      ["worker_upserted@c2", "resync@c4"],
    );
    assert.deepEqual(bad, ["worker_removed@c3"]);
    assert.equal(opened, 1);
    assert.deepEqual(errors, [false], "reconnecting, not closed");
    assert.equal(stream.lastEventId, "c4");
    stream.close();
    assert.equal(fake.closed, true);
  });
});
