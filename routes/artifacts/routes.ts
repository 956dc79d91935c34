/**
 * @module Large artifacts (a Flatyard extension, not flat-manager's): a flatpak bundle uploaded
 * into a build in resumable `Content-Range` chunks, checked against its sha256, then imported
 * into the build by a job. The paths sit in flat-manager's `/api/v1/build/{id}` namespace and
 * are authorized exactly like its per-build endpoints (a token with sub `build/<id>` or `build`,
 * the scope, the build's repo and app prefix: `authorizedBuild`), but as our own endpoints they
 * answer RFC 9457 problems, not flat-manager's error shape (CONVENTIONS.md rule 7).
 * One file per operation here; what they share is ./context.ts.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { nativeValidationHook } from "../../lib/http/errors.ts";
import { artifactContext, type ArtifactRouteOptions } from "./context.ts";
import { addCreateArtifact } from "./create.ts";
import { addUploadChunk } from "./chunk.ts";
import { addReadArtifact } from "./read.ts";
import { addArtifactContent } from "./content.ts";
import { addImportArtifact } from "./import.ts";
import { addImportStatus } from "./import_status.ts";

export type { ArtifactRouteOptions };

/** The artifact routes. */
export function createArtifactRoutes(
  deps: Deps,
  opts: ArtifactRouteOptions = {},
): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const ctx = artifactContext(deps, opts);
  addCreateArtifact(app, ctx);
  addUploadChunk(app, ctx);
  addReadArtifact(app, ctx);
  addArtifactContent(app, ctx);
  addImportArtifact(app, ctx);
  addImportStatus(app, ctx);
  return app;
}
