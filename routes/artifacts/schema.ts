/** @module Schemas of the artifact routes: every field's validation lives here. */
import { z } from "@hono/zod-openapi";
import type { Artifact } from "../../lib/artifacts/artifact_store.ts";
import { CONTENT_RANGE_PATTERN } from "../../lib/artifacts/content_range.ts";
import { ProblemSchema } from "../../lib/http/openapi.ts";

/** Largest artifact accepted: a generous bound for one bundle, far below any volume. */
export const MAX_ARTIFACT_BYTES = 16 * 1024 ** 3;

/** A plain file name (it is shown and logged, never used as a path) ending in `.flatpak`. */
const ArtifactName = z.string().max(200).regex(
  /^[A-Za-z0-9][A-Za-z0-9._+-]*\.flatpak$/,
  "must be a file name of letters, digits, '.', '_', '+' or '-' ending in .flatpak",
).openapi({ example: "org.example.Hello.flatpak" });

const Sha256 = z.string().regex(
  /^[0-9a-f]{64}$/,
  "must be 64 lowercase hexadecimal digits",
).openapi({
  example: "9e616ef2be9453c4490fdba16fb35b91ef1a8d02e9bf57ad888d8f0278ca2e58",
});

const digits = (name: string, example: string) =>
  z.string().regex(/^\d{1,9}$/, "must be a number").openapi({
    param: { name, in: "path" },
    example,
  });

export const BuildParam = z.object({ id: digits("id", "42") });
export const ArtifactParam = z.object({
  id: digits("id", "42"),
  aid: digits("aid", "7"),
});

export const CreateArtifactSchema = z.object({
  name: ArtifactName,
  size: z.number().int().min(1).max(MAX_ARTIFACT_BYTES).openapi({
    description: `Size in bytes, at most ${MAX_ARTIFACT_BYTES}`,
    example: 881160,
  }),
  sha256: Sha256.openapi({
    description: "Checksum of the whole file, checked after the last chunk",
  }),
  kind: z.enum(["bundle", "source"]).default("bundle").openapi({
    description:
      "`bundle`: a flatpak bundle, imported into the build; `source`: a source archive for a server-side build",
  }),
}).strict().openapi("CreateArtifact");

export const ChunkHeaders = z.object({
  "content-range": z.string().regex(
    new RegExp(CONTENT_RANGE_PATTERN),
    "must be bytes START-END/TOTAL",
  ).openapi({
    description:
      "The chunk's place in the file, both ends inclusive; START must be the bytes received so far and TOTAL the declared size",
    example: "bytes 0-8388607/881160000",
  }),
});

const statuses = ["uploading", "complete", "failed"] as const;

export const ArtifactSchema = z.object({
  id: z.number().int(),
  buildId: z.number().int(),
  kind: z.enum(["bundle", "source"]),
  name: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  received: z.number().int().openapi({
    description:
      "Bytes stored durably: an interrupted upload resumes with the chunk starting here",
  }),
  status: z.enum(statuses),
  error: z.string().nullable().openapi({ description: "Why it failed" }),
  ref: z.string().nullable().openapi({
    description: "The ref the bundle carries, once complete",
    example: "app/org.example.Hello/x86_64/master",
  }),
  commit: z.string().nullable().openapi({
    description: "The commit the bundle carries, once complete",
  }),
  importJobId: z.number().int().nullable().openapi({
    description: "The latest import job; poll it at `…/import`",
  }),
  uploader: z.string().openapi({ example: "token:ci#4f1c" }),
  createdAt: z.string(),
  completedAt: z.string().nullable(),
  uploadUrl: z.string().openapi({
    description: "Where to PUT chunks and GET the record",
    example: "https://flatyard.example/api/v1/build/42/artifacts/7",
  }),
}).openapi("Artifact");

/** A problem about an upload's position: where to resume. */
export const UploadProblemSchema = ProblemSchema.extend({
  received: z.number().int().optional().openapi({
    description: "Bytes stored: send the chunk that starts here",
  }),
  size: z.number().int().optional(),
  artifactStatus: z.enum(statuses).optional(),
}).openapi("UploadProblem");

/** The JSON of an artifact; `uploadUrl` is absolute. */
export function toArtifactJson(
  a: Artifact,
  uploadUrl: string,
): z.infer<typeof ArtifactSchema> {
  return {
    id: a.id,
    buildId: a.buildId,
    kind: a.kind,
    name: a.name,
    size: a.size,
    sha256: a.sha256,
    received: a.received,
    status: a.status,
    error: a.error,
    ref: a.ref,
    commit: a.commit,
    importJobId: a.importJobId,
    uploader: a.uploader,
    createdAt: a.createdAt.toISOString(),
    completedAt: a.completedAt?.toISOString() ?? null,
    uploadUrl,
  };
}
