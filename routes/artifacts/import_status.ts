/** @module The latest import job of an artifact. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import {
  errors,
  flatManagerSecurity,
  jsonResponse,
} from "../../lib/http/openapi.ts";
import { JobSchema, toJobJson } from "../jobs.ts";
import { ArtifactParam } from "./schema.ts";
import type { ArtifactContext } from "./context.ts";

export function addImportStatus(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, buildFor, artifactOf }: ArtifactContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/build/{id}/artifacts/{aid}/import",
      tags: ["artifacts"],
      summary: "The latest import job of an artifact",
      description:
        "How a build token, which cannot read `/api/v1/jobs`, follows its import. Needs the " +
        "`build` or `upload` scope.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: { params: ArtifactParam },
      responses: {
        200: jsonResponse("The import job", JobSchema),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const { build } = await buildFor(c, ["build", "upload"]);
      const a = await artifactOf(build, c.req.valid("param").aid);
      const job = a.importJobId === null
        ? undefined
        : await deps.queue.get(a.importJobId);
      if (!job) {
        throw problems.notFound(
          `Artifact "${a.name}" of build "${build.id}" has not been imported`,
        );
      }
      return c.json(toJobJson(job), 200);
    },
  );
}
