/** @module Starts a chunked upload: the artifact record, and its directory. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { artifactStore } from "../../lib/artifacts/artifact_store.ts";
import { artifactPaths } from "../../lib/artifacts/chunk_upload.ts";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  flatManagerSecurity,
  jsonBody,
  jsonResponse,
} from "../../lib/http/openapi.ts";
import { ArtifactSchema, BuildParam, CreateArtifactSchema } from "./schema.ts";
import type { ArtifactContext } from "./context.ts";

export function addCreateArtifact(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, artifactUrl, json, buildFor, requireUploading }:
    ArtifactContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/build/{id}/artifacts",
      tags: ["artifacts"],
      summary: "Start a chunked upload of a flatpak bundle into a build",
      description:
        "Needs a build token with the `upload` scope. Then PUT the file to `uploadUrl` in " +
        "`Content-Range` chunks, in order, and import it with `POST …/import`.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: { params: BuildParam, body: jsonBody(CreateArtifactSchema) },
      responses: {
        201: jsonResponse("Created; upload to `uploadUrl`", ArtifactSchema),
        ...errors(401, 403, 404, 409, 422),
      },
    }),
    async (c) => {
      const { build } = await buildFor(c, ["upload"]);
      requireUploading(build);
      const body = c.req.valid("json");
      const principal = c.get("principal");
      const a = await deps.db.transaction(async (tx) => {
        const a = await artifactStore.create(tx, {
          buildId: build.id,
          ...body,
          uploader: actorOf(principal).actor,
        });
        await deps.audit.record({
          ...actorOf(principal),
          action: "artifact.create",
          objectType: "artifact",
          objectId: String(a.id),
          details: { build: build.id, ...body },
          requestId: c.get("requestId"),
        }, tx);
        return a;
      });
      await Deno.mkdir(
        artifactPaths(deps.config.dataDir, build.id, a.id).dir,
        { recursive: true },
      );
      c.header("Location", artifactUrl(c, a));
      return c.json(json(c, a), 201);
    },
  );
}
