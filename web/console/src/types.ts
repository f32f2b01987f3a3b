/**
 * The generated contract types the console uses, re-exported from the typed
 * client (`clients/typescript`): type-only, so the pure modules that import
 * them run under Node without the client's runtime dependencies.
 */
import type { components } from "../../../clients/typescript/src/client.js";

export type { RegistryEvent, EventKind } from "../../../clients/typescript/src/events.js";

type S = components["schemas"];
export type WorkerSummary = S["WorkerSummary"];
export type RuntimeSummary = S["RuntimeSummary"];
export type Diagnostic = S["Diagnostic"];
export type TranscriptItem = S["TranscriptItem"];
export type ProfileSummary = S["ProfileSummary"];
export type CreateWorkerRequest = S["CreateWorkerRequest"];
/** A transcript entry as a page or a transcript_appended event carries it. */
export type TranscriptItemLike = Pick<TranscriptItem, "sequence" | "role" | "content" | "at">;
