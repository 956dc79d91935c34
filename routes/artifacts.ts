/**
 * @module Large artifacts (a Flatyard extension, not flat-manager's): a flatpak bundle uploaded
 * into a build in resumable `Content-Range` chunks, checked against its sha256, then imported
 * into the build by a job. The paths sit in flat-manager's `/api/v1/build/{id}` namespace and
 * are authorized exactly like its per-build endpoints (a token with sub `build/<id>` or `build`,
 * the scope, the build's repo and app prefix: `authorizedBuild`), but as our own endpoints they
 * answer RFC 9457 problems, not flat-manager's error shape (CONVENTIONS.md rule 7).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Deps } from "../lib/deps.ts";
import {
  type Artifact,
  artifactStore,
} from "../lib/artifacts/artifact_store.ts";
import {
  ActiveWriters,
  artifactPaths,
  type ChunkTiming,
  defaultChunkTiming,
  receiveChunk,
} from "../lib/artifacts/chunk_upload.ts";
import { parseContentRange } from "../lib/artifacts/content_range.ts";
import {
  type Build,
  RepoState,
  repoStateNames,
} from "../lib/builds/build_store.ts";
import { nativeAuth } from "../lib/http/auth.ts";
import { actorOf, type AppEnv } from "../lib/http/env.ts";
import {
  FlatManagerError,
  nativeValidationHook,
  Problem,
  problems,
} from "../lib/http/errors.ts";
import {
  errors,
  flatManagerSecurity,
  jsonBody,
  jsonResponse,
} from "../lib/http/openapi.ts";
import type { Claims } from "../lib/tokens/claims.ts";
import { hasTokenPrefix } from "../lib/tokens/matching.ts";
import { ARTIFACT_IMPORT_KIND } from "../jobs/artifact_import.ts";
import { absoluteUrl, authorizedBuild } from "./flat_manager/common.ts";
import { JobSchema, toJobJson } from "./jobs.ts";
import {
  ArtifactParam,
  ArtifactSchema,
  BuildParam,
  ChunkHeaders,
  CreateArtifactSchema,
  toArtifactJson,
  UploadProblemSchema,
} from "./artifacts_schema.ts";

const uploadProblem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: UploadProblemSchema } },
});

/** Options for tests: how long a stalled chunk may hold its artifact. */
export interface ArtifactRouteOptions {
  timing?: ChunkTiming;
}

/** The artifact routes. */
export function createArtifactRoutes(
  deps: Deps,
  opts: ArtifactRouteOptions = {},
): OpenAPIHono<AppEnv> {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
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

  app.openapi(
    createRoute({
      method: "put",
      path: "/api/v1/build/{id}/artifacts/{aid}",
      tags: ["artifacts"],
      summary: "Upload one chunk of an artifact",
      description:
        "The body is bytes START–END of the file, streamed. START must be `received`; after a " +
        "lost connection, GET or HEAD the artifact (or read the 409) and resume from " +
        "`received`, which counts every byte the server stored. The last chunk completes the " +
        "upload: the file must then match the declared sha256 and be a flatpak bundle.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: {
        params: ArtifactParam,
        headers: ChunkHeaders,
        body: {
          content: {
            "application/octet-stream": {
              schema: z.string().openapi({ format: "binary" }),
            },
          },
          required: true,
        },
      },
      responses: {
        200: jsonResponse(
          "Stored; complete after the last chunk",
          ArtifactSchema,
        ),
        ...errors(400, 401, 403, 404),
        408: uploadProblem("The body stalled; the bytes that came are kept"),
        409: uploadProblem(
          "START is not `received` (resume from it: `Range: bytes=0-<received-1>`), another " +
            "request is writing this artifact (`Retry-After`), or the upload has ended",
        ),
        416: uploadProblem("The chunk ends past the declared size"),
        422: uploadProblem(
          "The file does not match its sha256 or is not a bundle: it is deleted and the " +
            "artifact failed",
        ),
      },
    }),
    async (c) => {
      const { build } = await buildFor(c, ["upload"]);
      const a = await artifactOf(build, c.req.valid("param").aid);
      offsetHeaders(c, a);
      if (a.status !== "uploading") {
        throw conflict(`Artifact "${a.name}" is already ${a.status}`, a);
      }
      requireUploading(build);
      const range = parseContentRange(c.req.valid("header")["content-range"]);
      if (!range) {
        throw problems.badRequest("Content-Range must have START ≤ END");
      }
      if (range.total !== a.size) {
        throw problems.badRequest(
          `Content-Range total ${range.total} is not the size ${a.size} declared for "${a.name}"`,
        );
      }
      if (range.end >= a.size) {
        c.header("Content-Range", `bytes */${a.size}`);
        throw new Problem(
          416,
          "Range not satisfiable",
          `Chunk ends at byte ${range.end}, past the end of "${a.name}" (${a.size} bytes)`,
          { received: a.received, size: a.size },
        );
      }
      const length = c.req.header("content-length");
      if (
        length !== undefined && Number(length) !== range.end - range.start + 1
      ) {
        throw problems.badRequest(
          `Content-Length ${length} does not match Content-Range ${range.start}-${range.end}`,
        );
      }
      const out = await receiveChunk(
        chunks,
        a,
        range,
        c.req.raw.body,
        c.req.raw.signal,
      );
      offsetHeaders(c, out.artifact);
      const at = out.artifact;
      switch (out.kind) {
        case "stored":
        case "complete":
          return c.json(json(c, at), 200);
        case "offset":
          throw conflict(
            `Chunk starts at byte ${range.start}, but ${at.received} bytes of "${at.name}" are stored: resume from ${at.received}`,
            at,
          );
        case "busy":
          c.header("Retry-After", "2");
          throw conflict(
            `Another request is writing artifact "${at.name}"; retry shortly`,
            at,
          );
        case "state":
          throw conflict(`Artifact "${at.name}" is already ${at.status}`, at);
        case "interrupted":
          throw new Problem(
            out.reason === "idle" ? 408 : 400,
            out.reason === "idle" ? "Request timeout" : "Bad request",
            `Chunk body ${
              out.reason === "idle" ? "stalled" : "ended early"
            }; ${at.received} bytes of "${at.name}" are stored`,
            { received: at.received, size: at.size },
          );
        case "body":
          throw new Problem(400, "Bad request", out.detail, {
            received: at.received,
            size: at.size,
          });
        case "rejected":
          throw new Problem(422, "Invalid artifact", out.detail, {
            received: at.received,
            size: at.size,
            artifactStatus: at.status,
          });
      }
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/build/{id}/artifacts/{aid}",
      tags: ["artifacts"],
      summary: "Get an artifact, with how many bytes are stored",
      description:
        "HEAD answers the same headers: `Upload-Offset` is `received`, and `Range` " +
        "(`bytes=0-<received-1>`) is there once any byte is stored. Needs the `build` or " +
        "`upload` scope.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: { params: ArtifactParam },
      responses: {
        200: jsonResponse("The artifact", ArtifactSchema),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const { build } = await buildFor(c, ["build", "upload"]);
      const a = await artifactOf(build, c.req.valid("param").aid);
      offsetHeaders(c, a);
      return c.json(json(c, a), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/build/{id}/artifacts/{aid}/content",
      tags: ["artifacts"],
      summary: "Download a complete artifact",
      description:
        "The stored file, byte for byte (server-side builders fetch their source archive " +
        "here with their build token). Needs the `build`, `upload` or `download` scope.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: { params: ArtifactParam },
      responses: {
        200: {
          description: "The file",
          content: {
            "application/octet-stream": {
              schema: z.string().openapi({ format: "binary" }),
            },
          },
        },
        ...errors(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { build } = await buildFor(c, ["build", "upload", "download"]);
      const a = await artifactOf(build, c.req.valid("param").aid);
      if (a.status !== "complete") {
        throw conflict(
          `Artifact "${a.name}" is ${a.status}, not complete`,
          a,
        );
      }
      const file = await Deno.open(
        artifactPaths(deps.config.dataDir, build.id, a.id).bundle,
      );
      return c.body(file.readable, 200, {
        "Content-Type": "application/octet-stream",
        "Content-Length": String(a.size),
        "Cache-Control": "private, no-store",
      }) as never;
    },
  );

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

  return app;
}
