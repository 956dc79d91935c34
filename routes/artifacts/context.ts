/**
 * @module What the artifact operations (routes/artifacts/routes.ts) share: authentication,
 * the chunk writers, URLs, and flat-manager's per-build checks answered as problems.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { z } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import {
  type Artifact,
  artifactStore,
} from "../../lib/artifacts/artifact_store.ts";
import {
  ActiveWriters,
  type ChunkDeps,
  type ChunkTiming,
  defaultChunkTiming,
} from "../../lib/artifacts/chunk_upload.ts";
import {
  type Build,
  RepoState,
  repoStateNames,
} from "../../lib/builds/build_store.ts";
import { nativeAuth } from "../../lib/http/auth.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { FlatManagerError, Problem, problems } from "../../lib/http/errors.ts";
import type { Claims } from "../../lib/tokens/claims.ts";
import { absoluteUrl, authorizedBuild } from "../flat_manager/common.ts";
import {
  type ArtifactSchema,
  toArtifactJson,
  UploadProblemSchema,
} from "./schema.ts";

/** A 4xx of a chunk upload, in the OpenAPI document. */
export const uploadProblem = (description: string): {
  description: string;
  content: {
    "application/problem+json": { schema: typeof UploadProblemSchema };
  };
} => ({
  description,
  content: { "application/problem+json": { schema: UploadProblemSchema } },
});

/** Options for tests: how long a stalled chunk may hold its artifact. */
export interface ArtifactRouteOptions {
  timing?: ChunkTiming;
}

/** The helpers of the artifact operations, built once per app. */
export interface ArtifactContext {
  deps: Deps;
  auth: MiddlewareHandler<AppEnv>;
  chunks: ChunkDeps;
  artifactUrl(c: Context, a: Artifact): string;
  /** The artifact as the API shows it. */
  json(c: Context, a: Artifact): z.infer<typeof ArtifactSchema>;
  /** flat-manager's per-build checks (§2.4), with their verdicts as problems. */
  buildFor(
    c: Context<AppEnv>,
    scopes: string[],
  ): Promise<{ build: Build; claims: Claims }>;
  requireUploading(build: Build): void;
  artifactOf(build: Build, aid: string): Promise<Artifact>;
  /** Where the client resumes: `Upload-Offset` (IETF resumable uploads) and `Range`. */
  offsetHeaders(c: Context, a: Artifact): void;
  conflict(detail: string, a: Artifact): Problem;
}

export function artifactContext(
  deps: Deps,
  opts: ArtifactRouteOptions,
): ArtifactContext {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const chunks = {
    db: deps.db,
    dataDir: deps.config.dataDir,
    writers: new ActiveWriters(),
    timing: opts.timing ?? defaultChunkTiming,
  };
  const urls = {
    trustProxy: deps.config.trustProxy,
    baseUrl: deps.config.baseUrl,
  };
  const artifactUrl = (c: Context, a: Artifact) =>
    absoluteUrl(c, `/api/v1/build/${a.buildId}/artifacts/${a.id}`, urls);
  const json = (c: Context, a: Artifact) =>
    toArtifactJson(a, artifactUrl(c, a));

  /** flat-manager's per-build checks (§2.4), with their verdicts as problems. */
  async function buildFor(
    c: Context<AppEnv>,
    scopes: string[],
  ): Promise<{ build: Build; claims: Claims }> {
    if (c.get("principal").kind !== "token") {
      throw problems.forbidden(
        "Artifacts take a build token (a JWT with the upload scope), not a login session",
      );
    }
    try {
      return await authorizedBuild(c, deps.db, scopes);
    } catch (err) {
      if (!(err instanceof FlatManagerError)) throw err;
      if (err.status === 404) {
        throw problems.notFound(`Cannot find build "${c.req.param("id")}"`);
      }
      if (err.status === 401) throw problems.unauthorized(err.message);
      throw problems.forbidden(err.message);
    }
  }

  function requireUploading(build: Build): void {
    if (build.repoState !== RepoState.Uploading) {
      throw problems.conflict(
        `Build "${build.id}" is not uploading: it is ${
          repoStateNames[build.repoState]
        }`,
      );
    }
  }

  async function artifactOf(build: Build, aid: string): Promise<Artifact> {
    const a = await artifactStore.get(deps.db, build.id, Number(aid));
    if (!a) {
      throw problems.notFound(
        `Cannot find artifact "${aid}" of build "${build.id}"`,
      );
    }
    return a;
  }

  /** Where the client resumes: `Upload-Offset` (IETF resumable uploads) and `Range`. */
  function offsetHeaders(c: Context, a: Artifact): void {
    c.header("Upload-Offset", String(a.received));
    if (a.received > 0) c.header("Range", `bytes=0-${a.received - 1}`);
  }

  const conflict = (detail: string, a: Artifact) =>
    new Problem(409, "Conflict", detail, {
      received: a.received,
      size: a.size,
      artifactStatus: a.status,
    });

  return {
    deps,
    auth,
    chunks,
    artifactUrl,
    json,
    buildFor,
    requireUploading,
    artifactOf,
    offsetHeaders,
    conflict,
  };
}
