/** @module Queues the import of a complete artifact into its build. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { artifactStore } from "../../lib/artifacts/artifact_store.ts";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import {
  errors,
  flatManagerSecurity,
  jsonResponse,
} from "../../lib/http/openapi.ts";
import { hasTokenPrefix } from "../../lib/tokens/matching.ts";
import { ARTIFACT_IMPORT_KIND } from "../../jobs/artifact_import.ts";
import { JobSchema, toJobJson } from "../jobs.ts";
import { ArtifactParam } from "./schema.ts";
import type { ArtifactContext } from "./context.ts";

export function addImportArtifact(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, artifactUrl, buildFor, requireUploading, artifactOf, conflict }:
    ArtifactContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/build/{id}/artifacts/{aid}/import",
      tags: ["artifacts"],
      summary: "Import a complete bundle into the build (a job)",
      description:
        "Queues `artifact.import`: `flatpak build-import-bundle` into the build's upload " +
        "repository, then the bundle's ref becomes a build ref, as with `build_ref`. Wait " +
        "for the job before committing the build. Needs the `upload` scope and a token whose " +
        "prefixes allow the bundle's ref.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: { params: ArtifactParam },
      responses: {
        202: jsonResponse("Import queued", JobSchema),
        ...errors(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { build, claims } = await buildFor(c, ["upload"]);
      const a = await artifactOf(build, c.req.valid("param").aid);
      if (a.kind === "source") {
        throw conflict(
          `Artifact "${a.name}" is a source archive: server-side builders read it, it is not imported`,
          a,
        );
      }
      if (a.status !== "complete" || a.ref === null) {
        throw conflict(
          `Cannot import artifact "${a.name}": it is ${a.status}, not complete`,
          a,
        );
      }
      requireUploading(build);
      // The same prefix check as flat-manager's build_ref (§3.2 validate_ref).
      const id = a.ref.split("/")[1]!;
      if (!hasTokenPrefix(claims, id)) {
        throw problems.forbidden(
          `Not enough permissions: Id ${id} not matching prefix in token`,
        );
      }
      const principal = c.get("principal");
      const job = await deps.db.transaction(async (tx) => {
        const job = await deps.queue.enqueue(
          ARTIFACT_IMPORT_KIND,
          { build: build.id, artifact: a.id },
          // One import at a time per build: they write the same upload repository.
          { serialKey: `build-import:${build.id}`, maxAttempts: 1 },
          tx,
        );
        await artifactStore.setImportJob(tx, a.id, job.id);
        await deps.audit.record({
          ...actorOf(principal),
          action: "artifact.import",
          objectType: "artifact",
          objectId: String(a.id),
          details: { build: build.id, ref: a.ref, job: job.id },
          requestId: c.get("requestId"),
        }, tx);
        return job;
      });
      await deps.queue.wake();
      c.header("Location", `${artifactUrl(c, a)}/import`);
      return c.json(toJobJson(job), 202);
    },
  );
}
