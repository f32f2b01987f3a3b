/**
 * The console's state and its pure transitions: merging each runtime's worker
 * list with the events of its stream, and the transcript window with its
 * paging cursors. Nothing here touches the DOM or the network, so it is unit
 * tested under Node (test/model.test.ts).
 */
import type { RegistryEvent, TranscriptItemLike, WorkerSummary } from "./types.js";

/** A worker's key: runtime and worker id together (a worker id alone is not unique). */
export function workerKey(runtimeId: string, workerId: string): string {
  return `${runtimeId}\u0000${workerId}`;
}

/** What is known about one runtime's workers. */
export interface RuntimeWorkers {
  /** The workers by worker id. */
  workers: Map<string, WorkerSummary>;
  /**
   * Whether a list read is in flight. Events that arrive meanwhile are kept in
   * `pending` and replayed on top of the list when it lands, because the list
   * may have been read before they happened.
   */
  loading: boolean;
  /** Events received while loading, in order. */
  pending: RegistryEvent[];
  /** The ETag of the last full list (for conditional polling). */
  etag: string | undefined;
}

/** The merged worker state of every runtime. */
export type WorkerState = Map<string, RuntimeWorkers>;

function runtimeOf(state: WorkerState, runtimeId: string): RuntimeWorkers {
  let r = state.get(runtimeId);
  if (r === undefined) {
    r = { workers: new Map(), loading: false, pending: [], etag: undefined };
    state.set(runtimeId, r);
  }
  return r;
}

/** Marks a list read of `runtimeId` as started: its events are held until `finishLoad`. */
export function beginLoad(state: WorkerState, runtimeId: string): void {
  const r = runtimeOf(state, runtimeId);
  r.loading = true;
  r.pending = [];
}

/**
 * Replaces `runtimeId`'s workers with a freshly read list, then replays the
 * events that arrived while it was read. It returns whether anything visible
 * changed.
 */
export function finishLoad(state: WorkerState, runtimeId: string, items: readonly WorkerSummary[], etag?: string): boolean {
  const r = runtimeOf(state, runtimeId);
  const before = r.workers;
  r.workers = new Map();
  for (const w of items) {
    if (w.runtime_id === runtimeId) r.workers.set(w.worker_id, w);
  }
  r.loading = false;
  r.etag = etag;
  const pending = r.pending;
  r.pending = [];
  for (const e of pending) applyEvent(state, runtimeId, e);
  return !sameWorkers(before, r.workers);
}

/** Ends a failed list read: the held events are applied to what was known. */
export function abortLoad(state: WorkerState, runtimeId: string): void {
  const r = runtimeOf(state, runtimeId);
  r.loading = false;
  const pending = r.pending;
  r.pending = [];
  for (const e of pending) applyEvent(state, runtimeId, e);
}

/** Forgets a runtime's workers (e.g. it is no longer listed). */
export function dropRuntime(state: WorkerState, runtimeId: string): void {
  state.delete(runtimeId);
}

function sameWorkers(a: Map<string, WorkerSummary>, b: Map<string, WorkerSummary>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, w] of a) {
    const o = b.get(id);
    if (o === undefined || JSON.stringify(o) !== JSON.stringify(w)) return false;
  }
  return true;
}

/** What an event asks of the page beyond the worker state. */
export type EventEffect = "none" | "workers_changed" | "resync" | "held";

/**
 * Applies one event of `runtimeId`'s stream. Upserts and removals change the
 * workers (an event for another runtime is ignored: ids are scoped);
 * `resync` asks the page to re-read the lists; a transcript entry changes no
 * worker. While a list read is in flight the event is held ("held").
 */
export function applyEvent(state: WorkerState, runtimeId: string, e: RegistryEvent): EventEffect {
  const r = runtimeOf(state, runtimeId);
  if (e.kind === "resync") return "resync";
  if (r.loading) {
    r.pending.push(e);
    return "held";
  }
  switch (e.kind) {
    case "worker_upserted":
      if (e.data.runtime_id !== runtimeId) return "none";
      r.workers.set(e.data.worker_id, e.data);
      r.etag = undefined;
      return "workers_changed";
    case "worker_removed":
      if (e.data.runtime_id !== runtimeId || !r.workers.delete(e.data.worker_id)) return "none";
      r.etag = undefined;
      return "workers_changed";
    case "transcript_appended":
      return "none";
  }
}

/**
 * Compares two RFC 3339 UTC times ("…:SSZ" or "…:SS.fffffffffZ") exactly,
 * sub-millisecond digits included: negative, zero or positive.
 */
export function compareTimes(a: string, b: string): number {
  const split = (t: string): [string, string] => {
    const body = t.endsWith("Z") ? t.slice(0, -1) : t;
    const dot = body.indexOf(".");
    return dot < 0 ? [body, "".padEnd(9, "0")] : [body.slice(0, dot), body.slice(dot + 1).padEnd(9, "0")];
  };
  const [as, af] = split(a);
  const [bs, bf] = split(b);
  return as < bs ? -1 : as > bs ? 1 : af < bf ? -1 : af > bf ? 1 : 0;
}

/**
 * Offers a worker summary read outside the stream (a create's or a stop's
 * answer, a GET). The stream may already have delivered a newer one (the
 * worker went from starting to active before the create's answer arrived),
 * so it is applied only when nothing is known of the worker, or when it is
 * strictly newer by last_seen_at, or when either has no time to compare.
 * It returns whether it was applied.
 */
export function offerWorker(state: WorkerState, runtimeId: string, w: WorkerSummary): boolean {
  if (w.runtime_id !== runtimeId) return false;
  const r = runtimeOf(state, runtimeId);
  const known = r.workers.get(w.worker_id);
  if (known !== undefined && known.last_seen_at !== null && w.last_seen_at !== null && compareTimes(w.last_seen_at, known.last_seen_at) <= 0) {
    return false;
  }
  if (known !== undefined && JSON.stringify(known) === JSON.stringify(w)) return false;
  if (r.loading) {
    r.pending.push({ kind: "worker_upserted", id: "", data: w });
    return false;
  }
  r.workers.set(w.worker_id, w);
  r.etag = undefined;
  return true;
}

/** The order workers are shown in: live ones first, then by runtime, label and id. */
const stateRank: Record<string, number> = { starting: 0, active: 1, stopping: 2, metadata_only: 3, stopped: 4 };

/** Every worker of every runtime, in display order (stable between updates). */
export function mergedWorkers(state: WorkerState, runtimeOrder: readonly string[]): WorkerSummary[] {
  const rank = new Map(runtimeOrder.map((id, i) => [id, i]));
  const all: WorkerSummary[] = [];
  for (const r of state.values()) all.push(...r.workers.values());
  return all.sort(
    (a, b) =>
      (stateRank[a.state] ?? 9) - (stateRank[b.state] ?? 9) ||
      (rank.get(a.runtime_id) ?? 1e9) - (rank.get(b.runtime_id) ?? 1e9) ||
      a.label.localeCompare(b.label) ||
      (a.worker_id < b.worker_id ? -1 : a.worker_id > b.worker_id ? 1 : 0),
  );
}

/** One worker, if known. */
export function findWorker(state: WorkerState, runtimeId: string, workerId: string): WorkerSummary | undefined {
  return state.get(runtimeId)?.workers.get(workerId);
}

// ---- transcript ----

/** The part of a worker's transcript the page holds: a contiguous run of entries. */
export interface TranscriptWindow {
  /** Entries, oldest first, unique by sequence. */
  items: TranscriptItemLike[];
  /** The oldest entry the server still retains (0: empty transcript). */
  firstSequence: number;
}

/** An empty window. */
export function emptyWindow(): TranscriptWindow {
  return { items: [], firstSequence: 0 };
}

/**
 * Merges entries (from a page or from events, in any order, possibly
 * repeated) into the window: unique by sequence, oldest first. It returns
 * whether the window changed.
 */
export function mergeTranscript(w: TranscriptWindow, entries: readonly TranscriptItemLike[]): boolean {
  let changed = false;
  const bySeq = new Map(w.items.map((i) => [i.sequence, i]));
  for (const e of entries) {
    if (bySeq.has(e.sequence)) continue;
    bySeq.set(e.sequence, { sequence: e.sequence, role: e.role, content: e.content, at: e.at });
    changed = true;
  }
  if (changed) w.items = [...bySeq.values()].sort((a, b) => a.sequence - b.sequence);
  return changed;
}

/** A transcript request: `after` is exclusive, `limit` 1–200. */
export interface TranscriptQuery {
  after: number;
  limit: number;
}

/** The largest page the contract allows. */
export const MAX_TRANSCRIPT_LIMIT = 200;

/**
 * The query that reads the newest `pageSize` entries of a transcript whose
 * retained entries run from `first` to `last` (both 0 when it is empty).
 */
export function latestQuery(first: number, last: number, pageSize: number): TranscriptQuery {
  const size = clampLimit(pageSize);
  const floor = first > 0 ? first - 1 : 0;
  return { after: Math.max(floor, last - size), limit: size };
}

/**
 * The query that reads up to `pageSize` entries just before the oldest one
 * held, or undefined when nothing older is retained.
 */
export function olderQuery(w: TranscriptWindow, pageSize: number): TranscriptQuery | undefined {
  const oldest = w.items[0]?.sequence;
  if (oldest === undefined) return undefined;
  const floor = w.firstSequence > 0 ? w.firstSequence - 1 : 0;
  if (oldest - 1 <= floor) return undefined;
  const after = Math.max(floor, oldest - 1 - clampLimit(pageSize));
  return { after, limit: oldest - 1 - after };
}

/** The query that reads what came after the newest entry held. */
export function newerQuery(w: TranscriptWindow, pageSize: number): TranscriptQuery {
  const newest = w.items[w.items.length - 1]?.sequence ?? Math.max(0, w.firstSequence - 1);
  return { after: newest, limit: clampLimit(pageSize) };
}

/** Whether entries older than the window are retained on the server. */
export function hasOlder(w: TranscriptWindow): boolean {
  const oldest = w.items[0]?.sequence;
  return oldest !== undefined && oldest > Math.max(1, w.firstSequence);
}

function clampLimit(n: number): number {
  return Math.min(MAX_TRANSCRIPT_LIMIT, Math.max(1, Math.floor(n)));
}

// ---- create ----

/** The intent kinds and the field each one's text goes to. */
export const INTENT_FIELDS = { assistant: "purpose", task: "objective", role: "role" } as const;

/** An intent kind. */
export type IntentKind = keyof typeof INTENT_FIELDS;

/**
 * Holds one Idempotency-Key per distinct create body: a repeated submit of
 * the same form (a double click, a retry after a lost answer) reuses the key,
 * so the server creates one worker; a changed form or a success gets a new key.
 */
export class IdempotencyKeys {
  private body: string | undefined;
  private key: string | undefined;
  constructor(private readonly fresh: () => string) {}

  /** The key for a submit of `body` (compared by its JSON). */
  keyFor(body: unknown): string {
    const text = JSON.stringify(body);
    if (this.key === undefined || this.body !== text) {
      this.key = this.fresh();
      this.body = text;
    }
    return this.key;
  }

  /** Forgets the key after a success: the next submit is a new create. */
  done(): void {
    this.key = undefined;
    this.body = undefined;
  }
}

/** A fresh Idempotency-Key (the contract's id alphabet, 32 hex digits). */
export function randomKey(rand: (a: Uint8Array) => Uint8Array): string {
  const bytes = rand(new Uint8Array(16));
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
