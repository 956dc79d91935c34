/**
 * @module flat-manager's status pages (specs/flat-manager-api.md §4.7): `/status` lists the active
 * jobs and `/status/<id>` shows one job's contents, log and results, both without
 * authentication, as flat-manager's. Every value is HTML-escaped by `hono/html`, and payload
 * keys that name credentials are masked, whatever a job kind puts in its payload.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { html } from "hono/html";
import manifest from "../deno.json" with { type: "json" };
import { fmJobKinds } from "../lib/builds/fm_json.ts";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { fm, nativeValidationHook } from "../lib/http/errors.ts";
import { FlatManagerErrorSchema } from "../lib/http/openapi.ts";
import type { Job, JobStatus } from "../lib/queue/job.ts";

// flat-manager's JobKind and JobStatus names, by its integers (§0.6).
const KIND_NAMES = [
  "Commit",
  "Publish",
  "UpdateRepo",
  "Republish",
  "Check",
  "Prune",
];
const STATUS_NAMES: Record<JobStatus, string> = {
  queued: "New",
  running: "Started",
  succeeded: "Ended",
  failed: "Broken",
  cancelled: "Broken",
};
// deno fmt lays out `html` templates as HTML; only whitespace outside <pre> changes, which
// browsers ignore.
const ENDED: readonly JobStatus[] = ["succeeded", "failed", "cancelled"];
// How many active jobs the list shows; a queue longer than this has bigger problems.
const ACTIVE_LIMIT = 500;

/** flat-manager's name of a job kind; Flatyard's own kinds keep theirs. */
function kindName(kind: string): string {
  const n = fmJobKinds[kind];
  return n === undefined ? kind : KIND_NAMES[n] ?? kind;
}

const SECRET_KEY = /token|secret|passphrase|password|credential/i;

/**
 * A copy of `value` with every value under a credential-like key replaced. Numbers, booleans
 * and null stay: they hold no credential, and flat-manager's commit payload has an integer
 * `token_type`.
 */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        SECRET_KEY.test(k) && !isPlainScalar(v)
          ? "[redacted]"
          : redactSecrets(v),
      ]),
    );
  }
  return value;
}

function isPlainScalar(v: unknown): boolean {
  return v === null || typeof v === "number" || typeof v === "boolean";
}

const Html = {
  content: { "text/html": { schema: z.string() } },
};

const statusRoute = createRoute({
  method: "get",
  path: "/status",
  tags: ["flat-manager"],
  summary: "Active jobs (HTML, §4.7)",
  description: "No authentication, as flat-manager's. Refreshes every 5 s.",
  responses: { 200: { description: "The status page", ...Html } },
});

const jobRoute = createRoute({
  method: "get",
  path: "/status/{id}",
  tags: ["flat-manager"],
  summary: "One job's contents, log and results (HTML, §4.7)",
  description:
    "No authentication, as flat-manager's. Refreshes every 5 s until the job has ended.",
  request: {
    params: z.object({
      id: z.string().openapi({ description: "Job id", example: "42" }),
    }),
  },
  responses: {
    200: { description: "The job page", ...Html },
    404: {
      description: "No such job",
      content: { "application/json": { schema: FlatManagerErrorSchema } },
    },
  },
});

/** `/status` and `/status/{id}`. */
export function createStatusRoutes(
  deps: Pick<Deps, "queue">,
): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  app.openapi(statusRoute, async (c) => {
    const [queued, running] = await Promise.all(
      (["queued", "running"] as const).map((status) =>
        deps.queue.list({ status, limit: ACTIVE_LIMIT })
      ),
    );
    const jobs = [...queued!, ...running!].sort((a, b) => a.id - b.id);
    const rows = jobs.map((j) =>
      html`
        <tr>
          <td><a href="/status/${j.id}">${j.id}</a></td>
          <td>${kindName(j.kind)}</td>
          <td>${STATUS_NAMES[j.status]}</td>
        </tr>
      `
    );
    const page = await html`
      <!DOCTYPE html>
      <html>
        <head>
          <meta charset="utf-8">
          <meta http-equiv="refresh" content="5">
          <title>Flatyard status</title>
        </head>
        <body>
          Flatyard version: ${manifest.version} (flat-manager compatible)<br>
          <h3>Active jobs</h3>
          <table>
            <tr><th>Job</th><th>Kind</th><th>Status</th></tr>
            ${rows}
          </table>
        </body>
      </html>
    `;
    return c.html(page, 200, { "Cache-Control": "no-store" });
  });

  app.openapi(jobRoute, async (c) => {
    c.set("errorStyle", "flat-manager");
    const raw = c.req.valid("param").id;
    const job = /^\d{1,9}$/.test(raw)
      ? await deps.queue.get(Number(raw))
      : undefined;
    if (!job) throw fm.notFound();
    const { text: log } = await deps.queue.readLog(job.id, 0);
    const ended = ENDED.includes(job.status);
    const heading = `Job ${job.id} - ${kindName(job.kind)}: ${
      STATUS_NAMES[job.status]
    }`;
    // flat-manager stops refreshing once the job has ended.
    const refresh = ended ? "" : html`<meta http-equiv="refresh" content="5">`;
    const page = await html`
      <!DOCTYPE html>
      <html>
        <head>
          <meta charset="utf-8">
          ${refresh}
          <title>Job ${job.id}</title>
        </head>
        <body>
          <h1>${heading}</h1>
          <pre>${JSON.stringify(redactSecrets(job.payload))}</pre>
          Output:
          <pre>${log}</pre>
          Results:
          <pre>${ended ? results(job) : ""}</pre>
        </body>
      </html>
    `;
    return c.html(page, 200, { "Cache-Control": "no-store" });
  });

  return app;
}

/** The job's results as flat-manager stores them (§4.2): the result, or the error message. */
function results(job: Job): string {
  return JSON.stringify(
    job.status === "succeeded"
      ? redactSecrets(job.result ?? {})
      : { "error-message": job.error ?? "Job failed" },
  );
}
