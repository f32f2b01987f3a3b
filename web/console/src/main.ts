/**
 * The browser console: every runtime, every worker (live over each runtime's
 * event stream, or conditional polling where a runtime cannot stream), one
 * worker's transcript with input and stop, and a create form. Built on the
 * generated client (`clients/typescript`) and EventSource; the DOM is built
 * with createElement/textContent only (no innerHTML: what a worker writes is
 * data), and nothing is inline, so the page runs under a strict CSP.
 */
import {
  createRegistryClient,
  ok,
  ProblemError,
  openRuntimeEvents,
  openWorkerEvents,
  type EventStream,
  type RegistryEvent,
} from "../../../clients/typescript/src/client.js";
import {
  abortLoad,
  applyEvent,
  beginLoad,
  dropRuntime,
  emptyWindow,
  findWorker,
  finishLoad,
  hasOlder,
  IdempotencyKeys,
  INTENT_FIELDS,
  latestQuery,
  mergedWorkers,
  mergeTranscript,
  newerQuery,
  offerWorker,
  olderQuery,
  randomKey,
  workerKey,
  type IntentKind,
  type TranscriptQuery,
  type TranscriptWindow,
  type WorkerState,
} from "./model.js";
import type { CreateWorkerRequest, Diagnostic, RuntimeSummary, TranscriptItemLike, WorkerSummary } from "./types.js";

const POLL_MS = 4000;
const RUNTIMES_POLL_MS = 10000;
const PAGE = 50;

const api = createRegistryClient(location.origin);

// ---- small DOM helpers ----

type Child = Node | string | undefined | false | null;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === undefined || c === false || c === null) continue;
    el.append(c);
  }
  return el;
}

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`console: #${id} is missing from index.html`);
  return el as T;
}

/** What a failure says to a person: the problem's title and detail, never a raw body. */
function describe(e: unknown): string {
  if (e instanceof ProblemError) {
    if (e.problem !== undefined) return `${e.problem.title}: ${e.problem.detail}`;
    return `Unexpected answer from the server (HTTP ${e.status}).`;
  }
  if (e instanceof TypeError) return "The server could not be reached.";
  return "Something went wrong in the console.";
}

function showProblem(el: HTMLElement, e: unknown | undefined): void {
  el.textContent = e === undefined ? "" : describe(e);
  el.classList.toggle("shown", e !== undefined);
}

function badge(text: string, kind: string, title?: string): HTMLElement {
  return h("span", { class: `badge ${kind}`, title }, text);
}

function words(s: string): string {
  return s.replaceAll("_", " ");
}

// ---- state ----

let runtimes: RuntimeSummary[] = [];
let runtimesEtag: string | undefined;
let runtimeListDiagnostics: Diagnostic[] = [];
const workerListDiagnostics = new Map<string, Diagnostic[]>();
const workers: WorkerState = new Map();
/** How each runtime's workers are kept current. */
const liveness = new Map<string, "connecting" | "live" | "reconnecting" | "polling" | "unavailable">();
const streams = new Map<string, EventStream>();
const pollers = new Map<string, number>();

interface Detail {
  runtimeId: string;
  workerId: string;
  window: TranscriptWindow;
  stream: EventStream | undefined;
  poller: number | undefined;
  loaded: boolean;
}
let detail: Detail | undefined;

const createKeys = new IdempotencyKeys(() => randomKey((a) => crypto.getRandomValues(a)));

// ---- elements ----

const el = {
  banner: byId<HTMLParagraphElement>("banner"),
  runtimeList: byId<HTMLUListElement>("runtime-list"),
  workerRows: byId<HTMLTableSectionElement>("worker-rows"),
  workersEmpty: byId<HTMLParagraphElement>("workers-empty"),
  diagnostics: byId<HTMLUListElement>("diagnostic-list"),
  createForm: byId<HTMLFormElement>("create-form"),
  createRuntime: byId<HTMLSelectElement>("create-runtime"),
  createProfile: byId<HTMLSelectElement>("create-profile"),
  createKind: byId<HTMLSelectElement>("create-kind"),
  createText: byId<HTMLInputElement>("create-text"),
  createTextLabel: byId<HTMLLabelElement>("create-text-label"),
  createName: byId<HTMLInputElement>("create-name"),
  createSubmit: byId<HTMLButtonElement>("create-submit"),
  createProblem: byId<HTMLParagraphElement>("create-problem"),
  workerView: byId<HTMLElement>("worker-view"),
  workerTitle: byId<HTMLHeadingElement>("worker-title"),
  workerFacts: byId<HTMLDListElement>("worker-facts"),
  workerClose: byId<HTMLButtonElement>("worker-close"),
  older: byId<HTMLButtonElement>("transcript-older"),
  transcript: byId<HTMLOListElement>("transcript"),
  transcriptNote: byId<HTMLParagraphElement>("transcript-note"),
  inputForm: byId<HTMLFormElement>("input-form"),
  inputKind: byId<HTMLSelectElement>("input-kind"),
  inputText: byId<HTMLTextAreaElement>("input-text"),
  inputSend: byId<HTMLButtonElement>("input-send"),
  stop: byId<HTMLButtonElement>("stop"),
  forceStop: byId<HTMLButtonElement>("force-stop"),
  workerProblem: byId<HTMLParagraphElement>("worker-problem"),
};

// ---- runtimes ----

const capabilityNames: [keyof RuntimeSummary["capabilities"], string][] = [
  ["can_list_workers", "list"],
  ["can_get_worker", "read"],
  ["can_spawn_worker", "create"],
  ["can_accept_input", "input"],
  ["can_stop_worker", "stop"],
  ["can_stream_events", "live events"],
  ["can_read_bounded_transcript", "transcript"],
  ["has_workspace_fs", "workspace files"],
  ["has_shell", "shell"],
  ["has_git", "git"],
];

function renderRuntimes(): void {
  const items = runtimes.map((r) => {
    const caps = capabilityNames.map(([k, name]) =>
      r.capabilities[k] === true ? badge(name, "cap yes", `Can: ${name}`) : badge(name, "cap no", `Cannot: ${name}`),
    );
    const live = liveness.get(r.runtime_id);
    return h(
      "li",
      { class: `card runtime status-${r.status}`, "data-runtime": r.runtime_id },
      h(
        "div",
        { class: "card-head" },
        h("strong", {}, r.label),
        badge(r.status, `status ${r.status}`, `Runtime status: ${r.status}`),
      ),
      h("p", { class: "meta" }, `${r.kind} · ${words(r.source.kind)}`, live !== undefined ? ` · ${live}` : ""),
      h("p", { class: "caps", "aria-label": "capabilities" }, ...caps),
    );
  });
  el.runtimeList.replaceChildren(...items);
  if (runtimes.length === 0) el.runtimeList.append(h("li", { class: "empty" }, "No runtime is registered."));
  renderCreateRuntimes();
}

async function loadRuntimes(): Promise<void> {
  const res = await api.GET("/api/runtimes", {
    params: { header: runtimesEtag === undefined ? {} : { "If-None-Match": runtimesEtag } },
  });
  if (res.response.status === 304) return;
  const list = await ok(Promise.resolve(res));
  runtimesEtag = res.response.headers.get("ETag") ?? undefined;
  runtimes = list.items;
  runtimeListDiagnostics = list.diagnostics;
  const ids = new Set(runtimes.map((r) => r.runtime_id));
  for (const id of [...workers.keys()]) {
    if (!ids.has(id)) {
      dropRuntime(workers, id);
      stopFollowing(id);
    }
  }
  for (const r of runtimes) follow(r);
  renderRuntimes();
  renderWorkers();
  renderDiagnostics();
}

/** Keeps one runtime's workers current: a stream if it can, else polling. */
function follow(r: RuntimeSummary): void {
  const id = r.runtime_id;
  if (r.status === "unavailable" || !r.capabilities.can_list_workers) {
    stopFollowing(id);
    dropRuntime(workers, id);
    liveness.set(id, "unavailable");
    return;
  }
  if (streams.has(id) || pollers.has(id)) return;
  if (r.capabilities.can_stream_events) {
    liveness.set(id, "connecting");
    // The list is read once the stream is open, so nothing between the two is missed.
    const stream = openRuntimeEvents(location.origin, id, {
      onOpen() {
        liveness.set(id, "live");
        renderRuntimes();
        void loadWorkers(id);
      },
      onEvent(e) {
        onRuntimeEvent(id, e);
      },
      onError(closed) {
        if (!closed) {
          liveness.set(id, "reconnecting");
          renderRuntimes();
          return;
        }
        // The server refused the stream (e.g. too many streams): poll instead.
        streams.delete(id);
        startPolling(id);
      },
    });
    streams.set(id, stream);
  } else {
    startPolling(id);
  }
}

function startPolling(id: string): void {
  liveness.set(id, "polling");
  renderRuntimes();
  void loadWorkers(id);
  pollers.set(
    id,
    window.setInterval(() => void loadWorkers(id, true), POLL_MS),
  );
}

function stopFollowing(id: string): void {
  streams.get(id)?.close();
  streams.delete(id);
  const p = pollers.get(id);
  if (p !== undefined) window.clearInterval(p);
  pollers.delete(id);
  liveness.delete(id);
}

function onRuntimeEvent(runtimeId: string, e: RegistryEvent): void {
  const effect = applyEvent(workers, runtimeId, e);
  if (effect === "resync") {
    void resync();
    return;
  }
  if (effect === "workers_changed") {
    renderWorkers();
    if (detail?.runtimeId === runtimeId) renderDetailHead();
  }
  if (e.kind === "transcript_appended" && detail !== undefined) {
    if (detail.runtimeId === e.data.runtime_id && detail.workerId === e.data.worker_id) appendTranscript([e.data]);
  }
}

/** A resync: re-read the runtimes and every runtime's workers (and the open worker). */
async function resync(): Promise<void> {
  try {
    runtimesEtag = undefined;
    await loadRuntimes();
    await Promise.all(runtimes.filter((r) => workers.has(r.runtime_id)).map((r) => loadWorkers(r.runtime_id)));
    if (detail !== undefined) await loadLatestTranscript(detail);
    showProblem(el.banner, undefined);
  } catch (e) {
    showProblem(el.banner, e);
  }
}

// ---- workers ----

/**
 * Reads every page of one runtime's workers and merges it; `conditional`
 * sends the last ETag and stops at a 304.
 */
async function loadWorkers(runtimeId: string, conditional = false): Promise<void> {
  const known = workers.get(runtimeId);
  const etag = conditional ? known?.etag : undefined;
  beginLoad(workers, runtimeId);
  try {
    const items: WorkerSummary[] = [];
    let diagnostics: Diagnostic[] = [];
    let cursor: string | undefined;
    let firstEtag: string | undefined;
    let first = true;
    do {
      const res = await api.GET("/api/runtimes/{runtime_id}/workers", {
        params: {
          path: { runtime_id: runtimeId },
          query: cursor === undefined ? { limit: 200 } : { limit: 200, cursor },
          header: first && etag !== undefined ? { "If-None-Match": etag } : {},
        },
      });
      if (first && res.response.status === 304) {
        abortLoad(workers, runtimeId);
        const r = workers.get(runtimeId);
        if (r !== undefined) r.etag = etag;
        return;
      }
      const page = await ok(Promise.resolve(res));
      if (first) firstEtag = res.response.headers.get("ETag") ?? undefined;
      first = false;
      items.push(...page.items);
      diagnostics = diagnostics.concat(page.diagnostics);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
    const changed = finishLoad(workers, runtimeId, items, firstEtag);
    workerListDiagnostics.set(runtimeId, diagnostics);
    showProblem(el.banner, undefined);
    if (changed || !conditional) renderWorkers();
    renderDiagnostics();
    if (detail?.runtimeId === runtimeId) renderDetailHead();
  } catch (e) {
    abortLoad(workers, runtimeId);
    showProblem(el.banner, e);
  }
}

function runtimeLabel(id: string): string {
  return runtimes.find((r) => r.runtime_id === id)?.label ?? id;
}

function renderWorkers(): void {
  const focusedKey = document.activeElement instanceof HTMLElement ? document.activeElement.dataset["key"] : undefined;
  const list = mergedWorkers(
    workers,
    runtimes.map((r) => r.runtime_id),
  );
  const rows = list.map((w) => {
    const key = workerKey(w.runtime_id, w.worker_id);
    const selected = detail !== undefined && detail.runtimeId === w.runtime_id && detail.workerId === w.worker_id;
    const open = h(
      "button",
      { type: "button", class: "link", "data-key": key, "aria-current": selected ? "true" : undefined },
      w.label,
    );
    open.addEventListener("click", () => selectWorker(w.runtime_id, w.worker_id));
    return h(
      "tr",
      { class: selected ? "selected" : undefined, "data-worker": w.worker_id, "data-state": w.state },
      h("td", {}, open),
      h("td", {}, runtimeLabel(w.runtime_id)),
      h("td", {}, badge(w.state, `state ${w.state}`), h("span", { class: "status-text" }, w.status)),
      h("td", {}, w.role ?? "—"),
      h("td", {}, w.profile ?? "—"),
      h(
        "td",
        {},
        w.diagnostics.length > 0
          ? badge(`${w.diagnostics.length} note${w.diagnostics.length > 1 ? "s" : ""}`, "diag", w.diagnostics.map((d) => d.message).join("\n"))
          : "",
      ),
    );
  });
  el.workerRows.replaceChildren(...rows);
  el.workersEmpty.hidden = rows.length > 0;
  if (focusedKey !== undefined) {
    const again = el.workerRows.querySelector<HTMLElement>(`[data-key="${CSS.escape(focusedKey)}"]`);
    again?.focus();
  }
}

function renderDiagnostics(): void {
  const all: { where: string; d: Diagnostic }[] = [];
  for (const d of runtimeListDiagnostics) all.push({ where: "Runtimes", d });
  for (const r of runtimes) for (const d of r.diagnostics) all.push({ where: r.label, d });
  for (const [id, ds] of workerListDiagnostics) for (const d of ds) all.push({ where: `${runtimeLabel(id)} workers`, d });
  for (const w of mergedWorkers(workers, [])) for (const d of w.diagnostics) all.push({ where: w.label, d });
  const items = all.map(({ where, d }) =>
    h("li", { class: `diag ${d.severity}` }, badge(d.severity, `sev ${d.severity}`), h("strong", {}, where), ` ${d.message}`, h("code", {}, d.code)),
  );
  el.diagnostics.replaceChildren(...items);
  if (items.length === 0) el.diagnostics.append(h("li", { class: "empty" }, "Nothing to report."));
}

// ---- one worker ----

function selectWorker(runtimeId: string, workerId: string, fromHash = false): void {
  if (detail !== undefined && detail.runtimeId === runtimeId && detail.workerId === workerId) return;
  closeDetail();
  detail = { runtimeId, workerId, window: emptyWindow(), stream: undefined, poller: undefined, loaded: false };
  if (!fromHash) history.replaceState(null, "", `#worker=${encodeURIComponent(runtimeId)}/${encodeURIComponent(workerId)}`);
  el.workerView.hidden = false;
  el.transcript.replaceChildren();
  showProblem(el.workerProblem, undefined);
  renderDetailHead();
  renderWorkers();
  void openDetail(detail);
}

function closeDetail(): void {
  if (detail === undefined) return;
  detail.stream?.close();
  if (detail.poller !== undefined) window.clearInterval(detail.poller);
  detail = undefined;
  el.workerView.hidden = true;
}

async function openDetail(d: Detail): Promise<void> {
  let w = findWorker(workers, d.runtimeId, d.workerId);
  if (w === undefined) {
    try {
      w = await ok(api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}", { params: { path: { runtime_id: d.runtimeId, worker_id: d.workerId } } }));
      offerWorker(workers, d.runtimeId, w);
      renderWorkers();
    } catch (e) {
      if (detail === d) showProblem(el.workerProblem, e);
      return;
    }
  }
  if (detail !== d) return;
  renderDetailHead();
  if (!w.capabilities.can_read_bounded_transcript) {
    el.transcriptNote.textContent = "This runtime keeps no transcript for this worker.";
    return;
  }
  if (w.capabilities.can_stream_events) {
    d.stream = openWorkerEvents(location.origin, d.runtimeId, d.workerId, {
      onOpen() {
        // Read the transcript once the stream is open: entries after this come as events.
        void loadLatestTranscript(d);
      },
      onEvent(e) {
        if (detail !== d) return;
        if (e.kind === "transcript_appended") appendTranscript([e.data]);
        else if (e.kind === "resync") void resync();
        else onRuntimeEvent(d.runtimeId, e);
      },
    });
  } else {
    await loadLatestTranscript(d);
    d.poller = window.setInterval(() => void loadNewerTranscript(d), POLL_MS);
  }
}

async function readTranscript(d: Detail, q: TranscriptQuery) {
  return ok(
    api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}/transcript", {
      params: { path: { runtime_id: d.runtimeId, worker_id: d.workerId }, query: { after: q.after, limit: q.limit } },
    }),
  );
}

async function loadLatestTranscript(d: Detail): Promise<void> {
  try {
    const probe = await readTranscript(d, { after: 0, limit: 1 });
    const page = await readTranscript(d, latestQuery(probe.first_sequence, probe.last_sequence, PAGE));
    if (detail !== d) return;
    d.window.firstSequence = page.first_sequence;
    d.loaded = true;
    appendTranscript(page.items);
    renderTranscriptNote();
  } catch (e) {
    if (detail === d) showProblem(el.workerProblem, e);
  }
}

async function loadNewerTranscript(d: Detail): Promise<void> {
  try {
    const page = await readTranscript(d, newerQuery(d.window, PAGE));
    if (detail !== d) return;
    d.window.firstSequence = page.first_sequence;
    appendTranscript(page.items);
    const w = await ok(api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}", { params: { path: { runtime_id: d.runtimeId, worker_id: d.workerId } } }));
    if (detail !== d) return;
    if (offerWorker(workers, d.runtimeId, w)) {
      renderWorkers();
      renderDetailHead();
    }
  } catch (e) {
    if (detail === d) showProblem(el.workerProblem, e);
  }
}

async function loadOlderTranscript(): Promise<void> {
  const d = detail;
  if (d === undefined) return;
  const q = olderQuery(d.window, PAGE);
  if (q === undefined) return;
  el.older.disabled = true;
  try {
    const items: TranscriptItemLike[] = [];
    let after = q.after;
    const end = q.after + q.limit;
    // A page may be cut short (1 MiB of content): follow next_after to the end of the gap.
    while (after < end) {
      const page = await readTranscript(d, { after, limit: end - after });
      items.push(...page.items.filter((i) => i.sequence <= end));
      d.window.firstSequence = page.first_sequence;
      if (page.next_after === undefined || page.items.length === 0) break;
      after = page.next_after;
    }
    if (detail !== d) return;
    const box = el.transcript;
    const fromBottom = box.scrollHeight - box.scrollTop;
    mergeTranscript(d.window, items);
    renderTranscript();
    box.scrollTop = box.scrollHeight - fromBottom; // keep the reader's place
  } catch (e) {
    showProblem(el.workerProblem, e);
  } finally {
    renderTranscriptNote();
  }
}

function appendTranscript(items: readonly TranscriptItemLike[]): void {
  const d = detail;
  if (d === undefined) return;
  const box = el.transcript;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  if (!mergeTranscript(d.window, items)) return;
  renderTranscript();
  if (atBottom) box.scrollTop = box.scrollHeight;
  renderTranscriptNote();
}

function renderTranscript(): void {
  const d = detail;
  if (d === undefined) return;
  el.transcript.replaceChildren(
    ...d.window.items.map((i) =>
      h(
        "li",
        { class: `entry role-${i.role}`, "data-sequence": String(i.sequence) },
        h("span", { class: "role" }, i.role),
        h("time", { datetime: i.at, title: i.at }, new Date(i.at).toLocaleTimeString()),
        h("pre", {}, i.content),
      ),
    ),
  );
}

function renderTranscriptNote(): void {
  const d = detail;
  if (d === undefined) return;
  el.older.disabled = !hasOlder(d.window);
  el.transcriptNote.textContent = !d.loaded ? "Loading the transcript…" : d.window.items.length === 0 ? "No entries yet." : "";
}

function renderDetailHead(): void {
  const d = detail;
  if (d === undefined) return;
  const w = findWorker(workers, d.runtimeId, d.workerId);
  el.workerTitle.textContent = w?.label ?? d.workerId;
  const fact = (k: string, v: Child) => [h("dt", {}, k), h("dd", {}, v)];
  el.workerFacts.replaceChildren(
    ...fact("Runtime", runtimeLabel(d.runtimeId)),
    ...fact("State", w === undefined ? "—" : h("span", {}, badge(w.state, `state ${w.state}`), h("span", { class: "status-text" }, w.status))),
    ...fact("Role", w?.role ?? "—"),
    ...fact("Profile", w?.profile ?? "—"),
    ...fact("Last seen", w?.last_seen_at ?? "—"),
    ...fact("Worker id", h("code", {}, d.workerId)),
  );
  const caps = w?.capabilities;
  const canInput = caps?.can_accept_input === true && w?.state === "active";
  el.inputKind.disabled = !canInput;
  el.inputText.disabled = !canInput;
  el.inputSend.disabled = !canInput;
  el.inputText.placeholder =
    w !== undefined && w.state !== "active"
      ? `The worker is ${words(w.state)}.`
      : caps?.can_accept_input !== true
        ? "This worker takes no input."
        : "Write to the worker… (Ctrl+Enter sends)";
  const canStop = caps?.can_stop_worker === true && w !== undefined && w.state !== "stopped" && w.state !== "metadata_only";
  el.stop.disabled = !canStop || w?.state === "stopping";
  el.forceStop.disabled = !canStop;
}

async function sendInput(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  const d = detail;
  const content = el.inputText.value;
  if (d === undefined || content.trim() === "") return;
  const kind = el.inputKind.value === "system" ? "system" : "user";
  el.inputSend.disabled = true;
  try {
    await ok(
      api.POST("/api/runtimes/{runtime_id}/workers/{worker_id}/input", {
        params: { path: { runtime_id: d.runtimeId, worker_id: d.workerId } },
        body: { kind, content },
      }),
    );
    el.inputText.value = "";
    showProblem(el.workerProblem, undefined);
    if (d.poller !== undefined) void loadNewerTranscript(d);
  } catch (e) {
    showProblem(el.workerProblem, e);
  } finally {
    renderDetailHead();
    el.inputText.focus();
  }
}

async function stopWorker(mode: "graceful" | "force"): Promise<void> {
  const d = detail;
  if (d === undefined) return;
  el.stop.disabled = true;
  el.forceStop.disabled = true;
  try {
    await ok(
      api.POST("/api/runtimes/{runtime_id}/workers/{worker_id}/stop", {
        params: { path: { runtime_id: d.runtimeId, worker_id: d.workerId } },
        body: { mode },
      }),
    );
    showProblem(el.workerProblem, undefined);
    const w = await ok(api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}", { params: { path: { runtime_id: d.runtimeId, worker_id: d.workerId } } }));
    if (offerWorker(workers, d.runtimeId, w)) renderWorkers();
  } catch (e) {
    showProblem(el.workerProblem, e);
  } finally {
    renderDetailHead();
  }
}

// ---- create ----

function renderCreateRuntimes(): void {
  const can = runtimes.filter((r) => r.capabilities.can_spawn_worker && r.status !== "unavailable");
  const current = el.createRuntime.value;
  el.createRuntime.replaceChildren(...can.map((r) => h("option", { value: r.runtime_id, selected: r.runtime_id === current }, r.label)));
  const none = can.length === 0;
  el.createForm.classList.toggle("disabled", none);
  for (const c of [el.createRuntime, el.createProfile, el.createKind, el.createText, el.createName, el.createSubmit]) c.disabled = none;
  if (none) {
    el.createProfile.replaceChildren();
    showProblem(el.createProblem, undefined);
    el.createProblem.textContent = "No runtime here can create workers.";
    return;
  }
  if (el.createRuntime.value !== current || el.createProfile.options.length === 0) void loadProfiles();
}

let profilesFor: string | undefined;

async function loadProfiles(): Promise<void> {
  const runtimeId = el.createRuntime.value;
  if (runtimeId === "" || runtimeId === profilesFor) return;
  profilesFor = runtimeId;
  try {
    const list = await ok(api.GET("/api/runtimes/{runtime_id}/profiles", { params: { path: { runtime_id: runtimeId } } }));
    if (el.createRuntime.value !== runtimeId) return;
    el.createProfile.replaceChildren(
      ...list.items.map((p, i) => h("option", { value: p.name, title: p.description, selected: i === 0 }, i === 0 ? `${p.label} (default)` : p.label)),
    );
    showProblem(el.createProblem, undefined);
  } catch (e) {
    profilesFor = undefined;
    el.createProfile.replaceChildren();
    showProblem(el.createProblem, e);
  }
}

function renderIntentLabel(): void {
  const kind = el.createKind.value as IntentKind;
  el.createTextLabel.textContent = { assistant: "Purpose", task: "Objective", role: "Role" }[kind] ?? "Text";
  el.createText.maxLength = kind === "role" ? 80 : 2000;
}

function createBody(): CreateWorkerRequest {
  const kind = el.createKind.value as IntentKind;
  const text = el.createText.value.trim();
  const body: CreateWorkerRequest = { intent: { kind } };
  if (text !== "") body.intent[INTENT_FIELDS[kind]] = text;
  if (el.createProfile.value !== "") body.profile = el.createProfile.value;
  const name = el.createName.value.trim();
  if (name !== "") body.worker_name = name;
  return body;
}

let creating = false;

async function submitCreate(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  if (creating) return; // a second click while the first is in flight
  const runtimeId = el.createRuntime.value;
  if (runtimeId === "") return;
  const body = createBody();
  const key = createKeys.keyFor({ runtimeId, body });
  creating = true;
  el.createSubmit.disabled = true;
  try {
    const res = await ok(
      api.POST("/api/runtimes/{runtime_id}/workers", {
        params: { path: { runtime_id: runtimeId }, header: { "Idempotency-Key": key } },
        body,
      }),
    );
    createKeys.done();
    showProblem(el.createProblem, undefined);
    el.createText.value = "";
    el.createName.value = "";
    if (offerWorker(workers, res.runtime_id, res.worker)) renderWorkers();
    selectWorker(res.runtime_id, res.worker_id);
    el.inputText.focus();
  } catch (e) {
    showProblem(el.createProblem, e);
  } finally {
    creating = false;
    el.createSubmit.disabled = false;
  }
}

// ---- start ----

function selectFromHash(): void {
  const m = /^#worker=([^/]+)\/(.+)$/.exec(location.hash);
  if (m === null || m[1] === undefined || m[2] === undefined) {
    closeDetail();
    renderWorkers();
    return;
  }
  selectWorker(decodeURIComponent(m[1]), decodeURIComponent(m[2]), true);
}

function wire(): void {
  el.createForm.addEventListener("submit", (ev) => void submitCreate(ev));
  el.createRuntime.addEventListener("change", () => void loadProfiles());
  el.createKind.addEventListener("change", renderIntentLabel);
  el.inputForm.addEventListener("submit", (ev) => void sendInput(ev));
  el.inputText.addEventListener("keydown", (ev) => {
    // Ctrl/Cmd+Enter sends; Enter alone writes a new line.
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) el.inputForm.requestSubmit();
  });
  el.stop.addEventListener("click", () => void stopWorker("graceful"));
  el.forceStop.addEventListener("click", () => void stopWorker("force"));
  el.older.addEventListener("click", () => void loadOlderTranscript());
  el.workerClose.addEventListener("click", () => {
    history.replaceState(null, "", location.pathname);
    closeDetail();
    renderWorkers();
  });
  window.addEventListener("hashchange", selectFromHash);
  renderIntentLabel();
}

async function start(): Promise<void> {
  wire();
  try {
    await loadRuntimes();
  } catch (e) {
    showProblem(el.banner, e);
  }
  selectFromHash();
  window.setInterval(() => {
    loadRuntimes().then(
      () => undefined,
      (e: unknown) => showProblem(el.banner, e),
    );
  }, RUNTIMES_POLL_MS);
  document.body.dataset["ready"] = "true";
}

void start();
