/** @module One `Content-Range` chunk of an artifact, streamed to its file. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { receiveChunk } from "../../lib/artifacts/chunk_upload.ts";
import { parseContentRange } from "../../lib/artifacts/content_range.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { Problem, problems } from "../../lib/http/errors.ts";
import {
  errors,
  flatManagerSecurity,
  jsonResponse,
} from "../../lib/http/openapi.ts";
import { ArtifactParam, ArtifactSchema, ChunkHeaders } from "./schema.ts";
import { type ArtifactContext, uploadProblem } from "./context.ts";

export function addUploadChunk(
  app: OpenAPIHono<AppEnv>,
  {
    auth,
    chunks,
    json,
    buildFor,
    requireUploading,
    artifactOf,
    offsetHeaders,
    conflict,
  }: ArtifactContext,
): void {
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
}
