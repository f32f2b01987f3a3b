/**
 * Typed client of the Workspace Backend runtime registry API.
 *
 * `schema.d.ts` is generated from `api/openapi.yaml` by openapi-typescript
 * (`npm run generate`); never edit it by hand. This file is the thin,
 * hand-written layer on top: a client factory on openapi-fetch, and
 * `ProblemError`, the typed error of every non-2xx answer.
 *
 * ```ts
 * import { createRegistryClient, ok, ProblemError } from "@workspace-backend/runtime-registry-client";
 * const api = createRegistryClient("");            // same origin
 * try {
 *   const worker = await ok(api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}", {
 *     params: { path: { runtime_id, worker_id } },
 *   }));
 * } catch (e) {
 *   if (e instanceof ProblemError && e.code === "unknown_worker") { ... }
 * }
 * ```
 */
import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

// The typed event-stream helper (EventSource), beside the request client.
export * from "./events.js";

/** The contract's named schemas. */
export type Schemas = components["schemas"];
/** An RFC 9457 problem document: the body of every error answer. */
export type Problem = Schemas["Problem"];
/** The error codes the contract declares today. */
export type ProblemCode = Schemas["ProblemCode"];
/** Browser-safe summary of one Runtime. */
export type RuntimeSummary = Schemas["RuntimeSummary"];
/** Browser-safe summary of one host. */
export type HostSummary = Schemas["HostSummary"];
/** Browser-safe summary of one Worker. */
export type WorkerSummary = Schemas["WorkerSummary"];
/** List envelope (or one page) of Workers. */
export type WorkerList = Schemas["WorkerList"];

/** The typed openapi-fetch client of this API: `GET`, `POST`, … by path. */
export type RegistryClient = Client<paths>;

/**
 * Creates a client whose requests go to `baseUrl` (e.g. `""` for the page's
 * own origin, or `"http://127.0.0.1:8080"`). Other openapi-fetch options
 * (`fetch`, `headers`, …) pass through.
 */
export function createRegistryClient(
  baseUrl: string,
  options: Omit<ClientOptions, "baseUrl"> = {},
): RegistryClient {
  return createClient<paths>({ ...options, baseUrl });
}

/**
 * A problem code as a client receives it. New codes may appear in a later
 * release of the contract (see CHANGELOG.md): code that meets one it does not
 * know must fall back on `status`, so the type stays open.
 */
export type ReceivedProblemCode = ProblemCode | (string & {});

/** Whether `body` has the shape of a problem document. */
export function isProblem(body: unknown): body is Problem {
  if (typeof body !== "object" || body === null) return false;
  const p = body as Record<string, unknown>;
  return typeof p["code"] === "string" && typeof p["status"] === "number" && typeof p["type"] === "string";
}

/**
 * The error of a non-2xx answer. `code` is the problem's code (branch on it;
 * fall back on `status` for a code you do not know); `runtimeId`, `workerId`,
 * `hostId` and `field` point at what was wrong when the server says so. When
 * the body was not a problem document (e.g. a proxy's error page), `problem` is
 * undefined and `code` is `"unexpected_response"`.
 */
export class ProblemError extends Error {
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The problem's `code`, or `"unexpected_response"` without a problem body. */
  readonly code: ReceivedProblemCode;
  /** The problem document, when the body was one. */
  readonly problem: Problem | undefined;
  /** The Runtime the problem concerns, if any. */
  readonly runtimeId: string | undefined;
  /** The Worker the problem concerns, if any (meaningful with `runtimeId`). */
  readonly workerId: string | undefined;
  /** The host the problem concerns, if any. */
  readonly hostId: string | undefined;
  /** The parameter or body field to blame, if any. */
  readonly field: string | undefined;

  constructor(status: number, body: unknown) {
    const problem = isProblem(body) ? body : undefined;
    super(problem ? `${problem.code} (${status}): ${problem.detail}` : `unexpected response (${status})`);
    this.name = "ProblemError";
    this.status = status;
    this.problem = problem;
    this.code = problem?.code ?? "unexpected_response";
    this.runtimeId = problem?.runtime_id;
    this.workerId = problem?.worker_id;
    this.hostId = problem?.host_id;
    this.field = problem?.field;
  }
}

/** The result of an openapi-fetch call. */
export type Result<D> =
  | { data: D; error?: never; response: Response }
  | { data?: never; error: unknown; response: Response };

/**
 * Awaits an openapi-fetch call and returns its data, or throws a
 * `ProblemError` for an error answer.
 */
export async function ok<D>(pending: Promise<Result<D>>): Promise<Exclude<D, undefined>> {
  const result = await pending;
  if (result.error !== undefined || !result.response.ok) {
    throw new ProblemError(result.response.status, result.error);
  }
  return result.data as Exclude<D, undefined>;
}
