/**
 * Typed live events of the registry API over the browser's `EventSource`.
 *
 * The two SSE routes (`/api/runtimes/{runtime_id}/events` and
 * `/api/runtimes/{runtime_id}/workers/{worker_id}/events`) send events whose
 * `event:` line names the kind and whose `data:` line is one JSON object of the
 * kind's generated schema. `openEventStream` listens to every kind, parses each
 * event's data into its type and hands the caller a discriminated union:
 *
 * ```ts
 * import { openRuntimeEvents } from "@workspace-backend/runtime-registry-client/events";
 * const stream = openRuntimeEvents("", runtime_id, {
 *   onEvent(e) {
 *     switch (e.kind) {
 *       case "worker_upserted": upsert(e.data); break;   // e.data: WorkerSummary
 *       case "worker_removed": remove(e.data.worker_id); break;
 *       case "transcript_appended": append(e.data); break;
 *       case "resync": reloadLists(); break;
 *     }
 *   },
 * });
 * // later: stream.close();
 * ```
 *
 * `EventSource` itself reconnects after a dropped connection and resumes with
 * `Last-Event-ID`; the server replays what was missed (or sends `resync`).
 * This module imports types only, so it runs in Node for tests as well.
 */
import type { components } from "./schema.js";

type S = components["schemas"];

/** The data of each event kind, as the contract declares it. */
export interface EventDataByKind {
  /** A Worker appeared or changed: its whole summary. */
  worker_upserted: S["WorkerSummary"];
  /** A Worker is no longer visible. */
  worker_removed: S["WorkerRemovedEvent"];
  /** A transcript entry was recorded. */
  transcript_appended: S["TranscriptAppendedEvent"];
  /** The cursor is unknown or too old, or the source restarted: re-read the lists. */
  resync: S["ResyncEvent"];
}

/** The event kinds of the contract. */
export type EventKind = keyof EventDataByKind;

/** Every event kind, in a fixed order. */
export const EVENT_KINDS: readonly EventKind[] = ["worker_upserted", "worker_removed", "transcript_appended", "resync"];

/**
 * One parsed event: `kind` discriminates `data`; `id` is the event's cursor
 * (opaque, scoped to one runtime; `""` when the server sent none).
 */
export type RegistryEvent = { [K in EventKind]: { kind: K; id: string; data: EventDataByKind[K] } }[EventKind];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function hasStrings(o: Record<string, unknown>, keys: readonly string[]): boolean {
  return keys.every((k) => typeof o[k] === "string");
}

/**
 * The minimal shape each kind must have to be used safely (the ids a client
 * routes by, the fields it orders by). The server is validated against the
 * contract; this guards the client against a truncated or foreign message.
 */
function shapeOK(kind: EventKind, o: Record<string, unknown>): boolean {
  switch (kind) {
    case "worker_upserted":
      return hasStrings(o, ["runtime_id", "worker_id", "label", "state", "status"]) && isObject(o["capabilities"]);
    case "worker_removed":
      return hasStrings(o, ["runtime_id", "worker_id"]);
    case "transcript_appended":
      return hasStrings(o, ["runtime_id", "worker_id", "role", "content", "at"]) && Number.isSafeInteger(o["sequence"]);
    case "resync":
      return typeof o["reason"] === "string";
  }
}

/** Whether `kind` is one of the contract's event kinds. */
export function isEventKind(kind: string): kind is EventKind {
  return (EVENT_KINDS as readonly string[]).includes(kind);
}

/**
 * Parses one SSE message into a typed event. It returns undefined for an
 * unknown kind (a later release may add kinds: ignore them), data that is not
 * JSON, or data without the fields its kind needs.
 */
export function parseEvent(kind: string, id: string, data: string): RegistryEvent | undefined {
  if (!isEventKind(kind)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || !shapeOK(kind, parsed)) return undefined;
  return { kind, id, data: parsed } as RegistryEvent;
}

/** What an event stream reports besides events. */
export interface EventStreamHandlers {
  /** Each well-formed event of a known kind, in stream order. */
  onEvent(event: RegistryEvent): void;
  /** The connection is open (again): the first time and after each reconnect. */
  onOpen?(): void;
  /**
   * The connection failed or dropped. `closed` is true when the browser gave
   * up (e.g. a non-2xx answer such as 503 too_many_streams); otherwise it is
   * reconnecting by itself.
   */
  onError?(closed: boolean): void;
  /** A message of a known kind whose data could not be used (it is skipped). */
  onMalformed?(kind: EventKind, id: string): void;
}

/** Options of `openEventStream`. */
export interface EventStreamOptions extends EventStreamHandlers {
  /** Resume after this cursor (`?cursor=`); absent: only events from now on. */
  cursor?: string;
  /**
   * Makes the EventSource; defaults to `new EventSource(url)`. Tests pass a
   * fake; a page may pass one that sets `withCredentials`.
   */
  eventSource?: (url: string) => EventSource;
}

/** An open event stream. */
export interface EventStream {
  /** Stops the stream for good (no reconnect). */
  close(): void;
  /** The cursor of the last event received, or the starting cursor. */
  readonly lastEventId: string | undefined;
}

/** The path of a runtime's event stream. */
export function runtimeEventsPath(runtimeId: string): string {
  return `/api/runtimes/${encodeURIComponent(runtimeId)}/events`;
}

/** The path of one Worker's event stream. */
export function workerEventsPath(runtimeId: string, workerId: string): string {
  return `/api/runtimes/${encodeURIComponent(runtimeId)}/workers/${encodeURIComponent(workerId)}/events`;
}

/**
 * Opens `baseUrl + path` (one of the SSE routes) as an EventSource and hands
 * every event to `opts.onEvent`, parsed and typed by kind.
 */
export function openEventStream(baseUrl: string, path: string, opts: EventStreamOptions): EventStream {
  let url = baseUrl + path;
  if (opts.cursor !== undefined) url += `?cursor=${encodeURIComponent(opts.cursor)}`;
  const make = opts.eventSource ?? ((u: string) => new EventSource(u));
  const source = make(url);
  let last = opts.cursor;
  for (const kind of EVENT_KINDS) {
    source.addEventListener(kind, (ev: MessageEvent<string>) => {
      const parsed = parseEvent(kind, ev.lastEventId, ev.data);
      if (ev.lastEventId !== "") last = ev.lastEventId;
      if (parsed === undefined) {
        opts.onMalformed?.(kind, ev.lastEventId);
        return;
      }
      opts.onEvent(parsed);
    });
  }
  source.addEventListener("open", () => opts.onOpen?.());
  // EventSource.CLOSED is 2; the constant is read from the instance so a fake
  // need not provide the static.
  source.addEventListener("error", () => opts.onError?.(source.readyState === 2));
  return {
    close: () => source.close(),
    get lastEventId() {
      return last;
    },
  };
}

/** Opens a runtime's event stream (see `openEventStream`). */
export function openRuntimeEvents(baseUrl: string, runtimeId: string, opts: EventStreamOptions): EventStream {
  return openEventStream(baseUrl, runtimeEventsPath(runtimeId), opts);
}

/** Opens one Worker's event stream (see `openEventStream`). */
export function openWorkerEvents(baseUrl: string, runtimeId: string, workerId: string, opts: EventStreamOptions): EventStream {
  return openEventStream(baseUrl, workerEventsPath(runtimeId, workerId), opts);
}
