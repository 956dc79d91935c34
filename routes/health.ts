/** @module Liveness, readiness and Prometheus metrics (no authentication, as flat-manager's). */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook } from "../lib/http/errors.ts";
import { errorFields } from "../lib/logger.ts";

const Status = z.object({ status: z.string().openapi({ example: "ok" }) })
  .openapi("Status");

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "Liveness: the process serves HTTP",
  responses: {
    200: {
      description: "Alive",
      content: { "application/json": { schema: Status } },
    },
  },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  tags: ["operations"],
  summary: "Readiness: the database answers",
  responses: {
    200: {
      description: "Ready",
      content: { "application/json": { schema: Status } },
    },
    503: {
      description: "Not ready",
      content: {
        "application/json": { schema: Status.extend({ reason: z.string() }) },
      },
    },
  },
});

const metrics = createRoute({
  method: "get",
  path: "/metrics",
  tags: ["operations"],
  summary: "Prometheus metrics (text exposition format 0.0.4)",
  responses: {
    200: {
      description: "Metrics",
      content: { "text/plain": { schema: z.string() } },
    },
  },
});

/** `/healthz`, `/readyz`, `/metrics`. */
export function createHealthRoutes(
  deps: Pick<Deps, "db" | "metrics" | "logger">,
): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook })
    .openapi(healthz, (c) => c.json({ status: "ok" }, 200))
    .openapi(readyz, async (c) => {
      try {
        await deps.db.query("SELECT 1");
        return c.json({ status: "ok" }, 200);
      } catch (err) {
        deps.logger.warn("readiness check failed", errorFields(err));
        return c.json({
          status: "unavailable",
          reason: "Database does not answer",
        }, 503);
      }
    })
    .openapi(metrics, async (c) => {
      return c.text(await deps.metrics.render(), 200, {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      });
    });
}
