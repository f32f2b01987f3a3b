/**
 * Smoke walk of the typed client against a running server:
 *
 *   node dist/smoke.js http://127.0.0.1:8080
 *
 * It lists the Runtimes, reads one, pages through all of its Workers with
 * limit=2 following `next_cursor` (and compares them with the merged
 * /api/workers list), reads one Worker, reads the typed problem of an unknown
 * Worker and the 501 of an unsupported stop. Any mismatch exits non-zero.
 * `make contract` runs it against the sample workspace.
 */
import { isDeepStrictEqual } from "node:util";
import { createRegistryClient, ok, ProblemError, type WorkerSummary } from "./client.js";

let checks = 0;

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`smoke: mismatch: ${what}`);
  checks++;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function main(baseUrl: string): Promise<void> {
  const api = createRegistryClient(baseUrl);

  const runtimes = await ok(api.GET("/api/runtimes"));
  check(runtimes.source === "worker_runtime_registry", "runtime list source");
  const listed = runtimes.items[0];
  check(listed !== undefined, "no runtime listed");
  const runtime_id = listed.runtime_id;
  console.log(`smoke: ${runtimes.items.length} runtime(s); walking ${runtime_id}`);

  const runtime = await ok(api.GET("/api/runtimes/{runtime_id}", { params: { path: { runtime_id } } }));
  check(isDeepStrictEqual(runtime, listed), "GET /api/runtimes/{id} differs from its list item");

  const paged: WorkerSummary[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await ok(
      api.GET("/api/runtimes/{runtime_id}/workers", {
        params: { path: { runtime_id }, query: cursor === undefined ? { limit: 2 } : { limit: 2, cursor } },
      }),
    );
    pages++;
    check(page.limit === 2, `page ${pages} limit ${page.limit}, want 2`);
    check(page.items.length <= 2, `page ${pages} has ${page.items.length} items`);
    check(page.next_cursor === undefined || page.items.length === 2, `page ${pages} is short but has next_cursor`);
    check(pages <= 1000, "next_cursor never ends");
    paged.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor !== undefined);
  check(pages >= 2, `only ${pages} page(s): paging was not exercised`);
  const ids = paged.map((w) => w.worker_id);
  check(new Set(ids).size === ids.length, `a worker appears on two pages: ${ids.join(", ")}`);
  check(paged.every((w) => w.runtime_id === runtime_id), "a paged worker has another runtime_id");
  console.log(`smoke: ${paged.length} workers in ${pages} pages`);

  const merged = await ok(api.GET("/api/workers"));
  const mine = merged.items.filter((w) => w.runtime_id === runtime_id);
  check(mine.length === paged.length, `paged ${paged.length} workers, the merged list has ${mine.length}`);
  for (const w of mine) {
    const p = paged.find((x) => x.worker_id === w.worker_id);
    check(p !== undefined, `merged worker ${w.worker_id} was not paged`);
    check(isDeepStrictEqual(p, w), `worker ${w.worker_id} differs between the paged and the merged list`);
  }

  const first = paged[0];
  check(first !== undefined, "no worker to read");
  const worker = await ok(
    api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}", {
      params: { path: { runtime_id, worker_id: first.worker_id } },
    }),
  );
  check(isDeepStrictEqual(worker, first), `GET worker ${first.worker_id} differs from its list item`);

  const worker_id = "smoke-no-such-worker";
  const unknown = await api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}", {
    params: { path: { runtime_id, worker_id } },
  });
  check(unknown.data === undefined && unknown.error !== undefined, "an unknown worker was found");
  check(unknown.error.code === "unknown_worker", `unknown worker: error.code ${unknown.error.code}`);
  check(unknown.response.status === 404, `unknown worker: status ${unknown.response.status}`);
  check(
    unknown.response.headers.get("content-type")?.startsWith("application/problem+json"),
    "unknown worker: not application/problem+json",
  );
  check(unknown.error.runtime_id === runtime_id && unknown.error.worker_id === worker_id, "unknown worker: ids");
  const thrown = await failure(
    ok(api.GET("/api/runtimes/{runtime_id}/workers/{worker_id}", { params: { path: { runtime_id, worker_id } } })),
  );
  check(thrown instanceof ProblemError, "ok() did not throw a ProblemError");
  check(thrown.code === "unknown_worker" && thrown.status === 404 && thrown.workerId === worker_id, "ProblemError fields");

  const stop = await failure(
    ok(
      api.POST("/api/runtimes/{runtime_id}/workers/{worker_id}/stop", {
        params: { path: { runtime_id, worker_id: first.worker_id } },
        body: { mode: "graceful" },
      }),
    ),
  );
  check(stop instanceof ProblemError, "stop of a read-only runtime did not fail");
  check(stop.status === 501 && stop.code === "operation_unsupported", `stop: ${stop.status} ${stop.code}`);
  check(stop.runtimeId === runtime_id, "stop problem runtime_id");
}

const baseUrl = process.argv[2];
if (baseUrl === undefined) {
  console.error("usage: node dist/smoke.js <base-url>");
  process.exit(2);
}
try {
  await main(baseUrl);
  console.log(`smoke: ${checks} checks passed`);
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
}
