/** @module Schemas of the repository metadata routes: index, appstream and icons. */
import { z } from "@hono/zod-openapi";
import { RepoName } from "./repos/schema.ts";

/** flatpak's rule for ids (`flatpak:common/flatpak-ref-utils.c`): 3+ elements, 255 at most. */
export const FLATPAK_ID =
  /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*){2,}$/;

export const FlatpakId = z.string().max(255).regex(
  FLATPAK_ID,
  "must be a flatpak id such as org.example.App",
).openapi({ example: "org.example.Hello" });

export const Arch = z.string().max(32).regex(
  /^[A-Za-z0-9_]+$/,
  "must be an architecture such as x86_64",
).openapi({ example: "x86_64" });

export const RepoParam = z.object({
  name: RepoName.openapi({
    param: { name: "name", in: "path" },
    example: "stable",
  }),
});

export const ArchParams = RepoParam.extend({
  arch: Arch.openapi({ param: { name: "arch", in: "path" } }),
});

export const IconParams = ArchParams.extend({
  size: z.enum(["64x64", "128x128"]).openapi({
    param: { name: "size", in: "path" },
    example: "64x64",
  }),
  file: z.string().max(255).regex(
    /^[A-Za-z0-9_][A-Za-z0-9._-]*\.png$/,
    "must be an icon file name such as org.example.Hello.png",
  ).openapi({
    param: { name: "file", in: "path" },
    example: "org.example.Hello.png",
  }),
});

const IndexRefSchema = z.object({
  ref: z.string().openapi({ example: "app/org.example.Hello/x86_64/stable" }),
  arch: z.string(),
  branch: z.string(),
  installedSize: z.number().int().nullable().openapi({
    description: "Bytes once installed (`xa.installed-size`)",
  }),
  downloadSize: z.number().int().nullable().openapi({
    description: "Bytes to download (`xa.download-size`)",
  }),
  endOfLife: z.string().nullable().openapi({
    description: "`ostree.endoflife`",
  }),
  endOfLifeRebase: z.string().nullable().openapi({
    description: "`ostree.endoflife-rebase`: the id that replaces this one",
  }),
  commit: z.object({
    checksum: z.string().openapi({ example: "9e616ef2…" }),
    timestamp: z.string().openapi({ example: "2026-01-01T00:00:00.000Z" }),
    subject: z.string(),
  }).openapi({ description: "The ref's latest published commit" }),
}).openapi("RepoIndexRef");

const IndexEntrySchema = z.object({
  id: z.string().openapi({ example: "org.example.Hello" }),
  kind: z.enum(["app", "runtime"]),
  name: z.string().nullable().openapi({
    description: "From appstream, when it has one",
  }),
  summary: z.string().nullable().openapi({
    description: "From appstream, when it has one",
  }),
  arches: z.array(z.string()),
  branches: z.array(z.string()),
  refs: z.array(IndexRefSchema),
}).openapi("RepoIndexEntry");

export const RepoIndexSchema = z.object({
  repo: z.string(),
  updatedAt: z.string().nullable().openapi({
    description:
      "When the published summary was written; null before the first publish",
  }),
  apps: z.array(IndexEntrySchema),
  runtimes: z.array(IndexEntrySchema),
}).openapi("RepoIndex");
