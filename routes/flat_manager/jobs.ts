/**
 * @module flat-manager's job polling (specs/flat-manager-api.md §3.2, §4.4): `GET /api/v1/job/{id}`
 * and the per-build `GET /api/v1/build/{id}/commit|publish`, each with an optional
 * `{"log-offset": N}` body (bytes, rounded down to a character boundary, §5.6); a build's check
 * jobs (`GET /api/v1/build/{id}/check/{check_name}/job`) and the review of a check
 * (`POST /api/v1/job/{id}/check/review`, §3.2, §4.5).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Deps } from "../../lib/deps.ts";
import { jobJson } from "../../lib/builds/fm_json.ts";
import { CheckStatus, checkStore } from "../../lib/builds/checks.ts";
import { flatManagerAuth } from "../../lib/http/auth.ts";
import {
  holdSignal,
  PREFER_HEADER,
  PREFERENCE_APPLIED_HEADER,
  preferredWait,
  waitForChange,
} from "../../lib/http/prefer_wait.ts";
import { channels } from "../../lib/queue/queue.ts";
import { type Job, terminalStatuses } from "../../lib/queue/job.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { flatManagerValidationHook, fm } from "../../lib/http/errors.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import {
  authorizedBuild,
  buildIdParam,
  claimsOf,
  fmBody,
  requireSubScope,
} from "./common.ts";

// Proxies strip GET bodies: a missing body is `{}` (§0.3).
const LogOffset = z.object({ "log-offset": z.number().int().min(0).nullish() });

const route = (
  path: string,
  summary: string,
  auth: ReturnType<typeof flatManagerAuth>,
) =>
  createRoute({
    method: "get",
    path,
    tags: ["flat-manager"],
    summary,
    description:
      'GET with an optional JSON body `{"log-offset": N}` (bytes). Native extension: with ' +
      "`Prefer: wait=N` (RFC 7240, N ≤ 10) a poll that finds nothing new is held until the job " +
      "logs or changes status, at most N seconds, and answered with `Preference-Applied`.",
    security: flatManagerSecurity,
    middleware: [auth] as const,
    responses: {
      200: {
        description: "The Job (§1.5)",
        content: {
          "application/json": { schema: z.record(z.string(), z.unknown()) },
        },
      },
      ...flatManagerErrorResponses,
      404: { description: "No such job" },
    },
  });

/** The job polling routes. */
export function createFlatManagerJobRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = flatManagerAuth(deps.tokens);
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: flatManagerValidationHook,
  });

  async function respond(c: Context<AppEnv>, jobId: number | null) {
    const body = await fmBody(c, LogOffset, { emptyIsObject: true });
    const offset = body["log-offset"] ?? 0;
    const read = async (id: number) => {
      const job = await deps.queue.get(id);
      if (!job) throw fm.notFound();
      return { job, text: (await deps.queue.readLog(id, offset)).text };
    };
    if (jobId === null) throw fm.notFound();
    let state = await read(jobId);
    // Something new for the poller: log past its offset, or another status (started, ended).
    const first = state.job.status;
    const settled = (s: { job: Job; text: string }) =>
      s.text.length > 0 || s.job.status !== first ||
      terminalStatuses.includes(s.job.status);
    const wait = preferredWait(c.req.header(PREFER_HEADER));
    if (wait !== undefined) {
      // Held until the job logs or changes status (lib/http/prefer_wait.ts).
      if (!settled(state)) {
        state = await waitForChange(
          deps.bus,
          [channels.log(jobId), channels.status(jobId)],
          wait,
          () => read(jobId),
          settled,
          holdSignal(c),
        );
      }
      c.header(PREFERENCE_APPLIED_HEADER, `wait=${wait}`);
    }
    return c.json(jobJson(state.job, state.text), 200);
  }

  app.openapi(
    route("/api/v1/job/{id}", "Poll a job (§3.2)", auth),
    async (c) => {
      requireSubScope(claimsOf(c), "build", ["jobs"]);
      return await respond(c, buildIdParam(c.req.param("id")));
    },
  );

  app.openapi(
    route("/api/v1/build/{id}/commit", "Poll a build's commit job", auth),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      return await respond(c, build.commitJobId);
    },
  );

  app.openapi(
    route("/api/v1/build/{id}/publish", "Poll a build's publish job", auth),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      return await respond(c, build.publishJobId);
    },
  );

  app.openapi(
    route(
      "/api/v1/build/{id}/check/{check_name}/job",
      "Poll one of a build's check jobs",
      auth,
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      const check = await checkStore.get(
        deps.db,
        build.id,
        c.req.param("check_name") ?? "",
      );
      return await respond(c, check?.job_id ?? null);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/job/{id}/check/review",
      tags: ["flat-manager"],
      summary: "Review a check (§3.2, §4.5)",
      description:
        'Body: `{"new-status": {"status": "Passed"|"PassedWithWarnings"|"Failed"|"ReviewRequired"|"Pending", "reason"?}, "new-results"?}`; a reason is required for every status but Passed and Pending. Needs sub `build` and the `reviewcheck` scope.',
      security: flatManagerSecurity,
      middleware: [auth] as const,
      responses: {
        204: { description: "The check was updated" },
        ...flatManagerErrorResponses,
        404: { description: "No check has this job id" },
      },
    }),
    async (c) => {
      requireSubScope(claimsOf(c), "build", ["reviewcheck"]);
      const jobId = buildIdParam(c.req.param("id"));
      const body = await fmBody(c, ReviewBody);
      const s = body["new-status"];
      const updated = jobId === null ? undefined : await checkStore.update(
        deps.db,
        jobId,
        CheckStatus[s.status],
        "reason" in s ? s.reason : null,
        body["new-results"] ?? undefined,
      );
      if (!updated) throw fm.notFound();
      return c.body(null, 204);
    },
  );

  return app;
}

// §1.7: adjacently tagged; unit variants carry no reason, the others require one.
const unit = (status: "Pending" | "Passed") =>
  z.object({ status: z.literal(status) });
const withReason = (
  status: "PassedWithWarnings" | "Failed" | "ReviewRequired",
) => z.object({ status: z.literal(status), reason: z.string() });
const ReviewBody = z.object({
  "new-status": z.discriminatedUnion("status", [
    unit("Pending"),
    unit("Passed"),
    withReason("PassedWithWarnings"),
    withReason("Failed"),
    withReason("ReviewRequired"),
  ]),
  "new-results": z.string().nullish(),
});
