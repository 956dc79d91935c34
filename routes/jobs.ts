/**
 * @module Native job endpoints: list and inspect jobs, read a log from a byte offset, cancel.
 * Viewing needs the maintainer role (job payloads name repositories and builds); cancelling
 * needs admin.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth } from "../lib/http/auth.ts";
import { actorOf, type AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { requireAdmin, requireGlobal } from "../lib/http/guards.ts";
import { errors, nativeSecurity } from "../lib/http/openapi.ts";
import type { Job } from "../lib/queue/queue.ts";

const statuses = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
] as const;

export const JobSchema = z.object({
  id: z.number().int(),
  kind: z.string().openapi({ example: "publish" }),
  status: z.enum(statuses),
  payload: z.unknown(),
  priority: z.number().int(),
  runAfter: z.string(),
  serialKey: z.string().nullable(),
  dependsOn: z.array(z.number().int()),
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  cancelRequested: z.boolean(),
  result: z.unknown(),
  error: z.string().nullable(),
  logBytes: z.number().int(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
}).openapi("Job");

/** A job as the native API shows it (lease details stay internal). */
export function toJobJson(j: Job): z.infer<typeof JobSchema> {
  return {
    id: j.id,
    kind: j.kind,
    status: j.status,
    payload: j.payload,
    priority: j.priority,
    runAfter: j.runAfter.toISOString(),
    serialKey: j.serialKey,
    dependsOn: j.dependsOn,
    attempts: j.attempts,
    maxAttempts: j.maxAttempts,
    cancelRequested: j.cancelRequested,
    result: j.result,
    error: j.error,
    logBytes: j.logBytes,
    createdAt: j.createdAt.toISOString(),
    startedAt: j.startedAt?.toISOString() ?? null,
    finishedAt: j.finishedAt?.toISOString() ?? null,
  };
}

const IdParam = z.object({
  id: z.coerce.number().int().positive().openapi({
    param: { name: "id", in: "path" },
    example: 7,
  }),
});
const jobResponse = {
  description: "The job",
  content: { "application/json": { schema: JobSchema } },
};

/** The job routes. */
export function createJobRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  const mustGet = async (id: number) => {
    const job = await deps.queue.get(id);
    if (!job) throw problems.notFound(`Cannot find job "${id}"`);
    return job;
  };

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/jobs",
      tags: ["jobs"],
      summary: "List jobs, newest first",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        query: z.object({
          status: z.enum(statuses).optional(),
          kind: z.string().max(100).optional(),
          before: z.coerce.number().int().positive().optional().openapi({
            description: "Page: jobs with a smaller id",
          }),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }).strict(),
      },
      responses: {
        200: {
          description: "Jobs",
          content: { "application/json": { schema: z.array(JobSchema) } },
        },
        ...errors(401, 403, 422),
      },
    }),
    async (c) => {
      requireGlobal(c.get("principal"), "maintainer");
      const q = c.req.valid("query");
      const jobs = await deps.queue.list({
        limit: q.limit,
        ...(q.status ? { status: q.status } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.before ? { beforeId: q.before } : {}),
      });
      return c.json(jobs.map(toJobJson), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/jobs/{id}",
      tags: ["jobs"],
      summary: "Get a job",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: IdParam },
      responses: {
        200: jobResponse,
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      requireGlobal(c.get("principal"), "maintainer");
      return c.json(toJobJson(await mustGet(c.req.valid("param").id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/jobs/{id}/log",
      tags: ["jobs"],
      summary: "Read a job's log from a byte offset",
      description:
        "Returns the text from `offset` and `next`, the offset to ask for next time.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        params: IdParam,
        query: z.object({ offset: z.coerce.number().int().min(0).default(0) })
          .strict(),
      },
      responses: {
        200: {
          description: "Log text",
          content: {
            "application/json": {
              schema: z.object({ text: z.string(), next: z.number().int() })
                .openapi("JobLog"),
            },
          },
        },
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      requireGlobal(c.get("principal"), "maintainer");
      const { id } = c.req.valid("param");
      await mustGet(id);
      return c.json(
        await deps.queue.readLog(id, c.req.valid("query").offset),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/jobs/{id}/cancel",
      tags: ["jobs"],
      summary:
        "Cancel a job: a queued one at once, a running one at its next check",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: IdParam },
      responses: {
        200: jobResponse,
        ...errors(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      requireAdmin(principal);
      const { id } = c.req.valid("param");
      const before = await mustGet(id);
      if (!["queued", "running"].includes(before.status)) {
        throw problems.conflict(
          `Cannot cancel job "${id}": it has already ${before.status}`,
        );
      }
      const job = (await deps.queue.cancel(id))!;
      await deps.audit.record({
        ...actorOf(principal),
        action: "job.cancel",
        objectType: "job",
        objectId: String(id),
        requestId: c.get("requestId"),
      });
      return c.json(toJobJson(job), 200);
    },
  );

  return app;
}
