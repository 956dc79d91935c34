/**
 * @module flatpak-builder manifests, parsed and checked before anything runs: JSON or YAML, the
 * fields flatpak-builder reads for an app or runtime (id, runtime, sdk, command, modules with
 * their sources, finish-args), with every error pointing at its field (`modules[1].sources[0].
 * sha256`). Unknown keys are kept: flatpak-builder has many and adds more. A checked manifest
 * also yields what a user cares about on the build: app id, runtime, sdk, the permissions its
 * finish-args grant, and the module count.
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";

/** One problem, at a field path such as `modules[0].sources[1].url`. */
export interface ManifestIssue {
  path: string;
  message: string;
}

// flatpak's application id rules (flatpak_is_valid_name): 2+ dots, elements of [A-Za-z0-9_-]
// not starting with a digit, at most 255 bytes; a '-' may not be in the last element.
const APP_ID =
  /^(?=.{1,255}$)[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*\.[A-Za-z_][A-Za-z0-9_]*$/;
const appId = z.string().regex(APP_ID, "must be a valid application id")
  .refine((s) => s.split(".").length >= 3, "needs at least three elements");
const BRANCH = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** A path inside the sources: relative, no `..`. */
const relPath = z.string().min(1).refine(
  (p) => !p.startsWith("/") && !p.split("/").includes(".."),
  "must be a relative path inside the sources, without '..'",
);
const url = z.string().regex(
  /^(https?|ftp|git|ssh|file):\/\/\S+$|^[\w.-]+@[\w.-]+:\S+$/,
  "must be a URL",
);

const src = <T extends z.ZodRawShape>(type: string, shape: T) =>
  z.looseObject({ type: z.literal(type), ...shape });

/**
 * A string (a file in the sources) or an object, with the object's own errors at their fields:
 * `z.union` would report only "Invalid input" for the whole entry.
 */
function fileOr<T>(object: z.ZodType<T>): z.ZodType<T | string> {
  return z.unknown().transform((v, ctx) => {
    const r = (typeof v === "string" ? relPath : object).safeParse(v);
    if (r.success) return r.data as T | string;
    for (const i of r.error.issues) {
      ctx.addIssue({ code: "custom", message: i.message, path: i.path });
    }
    return z.NEVER;
  }) as unknown as z.ZodType<T | string>;
}

const Source = z.discriminatedUnion("type", [
  src("archive", {
    url: url.optional(),
    path: relPath.optional(),
    sha256: z.string().regex(SHA256, "must be 64 lowercase hex digits")
      .optional(),
  }).refine((s) => (s.url === undefined) !== (s.path === undefined), {
    message: "needs exactly one of url and path",
    path: ["url"],
  }).refine((s) => s.url === undefined || s.sha256 !== undefined, {
    message: "is required for a downloaded archive",
    path: ["sha256"],
  }),
  src("file", {
    url: url.optional(),
    path: relPath.optional(),
    sha256: z.string().regex(SHA256, "must be 64 lowercase hex digits")
      .optional(),
  }).refine((s) => (s.url === undefined) !== (s.path === undefined), {
    message: "needs exactly one of url and path",
    path: ["url"],
  }).refine((s) => s.url === undefined || s.sha256 !== undefined, {
    message: "is required for a downloaded file",
    path: ["sha256"],
  }),
  src("git", {
    url: url.optional(),
    path: relPath.optional(),
    commit: z.string().regex(/^[0-9a-f]{7,64}$/, "must be a commit id")
      .optional(),
    tag: z.string().min(1).optional(),
    branch: z.string().min(1).optional(),
  }).refine((s) => (s.url === undefined) !== (s.path === undefined), {
    message: "needs exactly one of url and path",
    path: ["url"],
  }),
  src("dir", { path: relPath }),
  src("script", {
    commands: z.array(z.string()),
    "dest-filename": z.string().min(1).optional(),
  }),
  src("shell", { commands: z.array(z.string()).min(1) }),
  src("patch", {
    path: relPath.optional(),
    paths: z.array(relPath).optional(),
  }).refine((s) => s.path !== undefined || s.paths !== undefined, {
    message: "needs path or paths",
    path: ["path"],
  }),
  src("extra-data", {
    filename: z.string().min(1),
    url,
    sha256: z.string().regex(SHA256, "must be 64 lowercase hex digits"),
    size: z.number().int().positive(),
  }),
  src("svn", { url, revision: z.string().optional() }),
  src("bzr", { url, revision: z.string().optional() }),
  src("inline", { contents: z.string(), "dest-filename": z.string().min(1) }),
], {
  error: (i) =>
    i.code === "invalid_union" ? "has an unknown source type" : undefined,
});

type ModuleT = {
  name: string;
  buildsystem?: string | undefined;
  "build-commands"?: string[] | undefined;
  "config-opts"?: string[] | undefined;
  sources?: unknown[] | undefined;
  modules?: (ModuleT | string)[] | undefined;
  [k: string]: unknown;
};

const Module: z.ZodType<ModuleT> = z.lazy(() =>
  z.looseObject({
    name: z.string().regex(
      /^[A-Za-z0-9][A-Za-z0-9._+-]*$/,
      "must be a name of letters, digits and . _ + -",
    ),
    buildsystem: z.enum([
      "autotools",
      "cmake",
      "cmake-ninja",
      "meson",
      "simple",
      "qmake",
    ]).optional(),
    "build-commands": z.array(z.string()).optional(),
    "config-opts": z.array(z.string()).optional(),
    sources: z.array(fileOr(Source)).optional(),
    modules: z.array(fileOr(Module)).optional(),
  }).refine(
    (m) => m.buildsystem !== "simple" || (m["build-commands"]?.length ?? 0) > 0,
    {
      message: "is required when buildsystem is simple",
      path: ["build-commands"],
    },
  )
);

const FinishArg = z.string().regex(
  /^--[a-z][a-z-]*(=.*)?$/,
  "must be an option such as --share=network",
);

const ManifestSchema = z.looseObject({
  id: appId.optional(),
  "app-id": appId.optional(),
  runtime: appId,
  "runtime-version": z.string().regex(BRANCH, "must be a branch name")
    .optional(),
  sdk: appId,
  branch: z.string().regex(BRANCH, "must be a branch name").optional(),
  "build-runtime": z.boolean().optional(),
  "build-extension": z.boolean().optional(),
  command: z.string().min(1).refine(
    (c) => !c.includes("\0"),
    "must not contain NUL",
  ).optional(),
  "finish-args": z.array(FinishArg).optional(),
  modules: z.array(fileOr(Module)).min(
    1,
    "must list at least one module",
  ),
}).refine((m) => m.id !== undefined || m["app-id"] !== undefined, {
  message: "is required (or app-id)",
  path: ["id"],
}).refine(
  (m) =>
    m.command !== undefined || m["build-runtime"] === true ||
    m["build-extension"] === true,
  { message: "is required for an application", path: ["command"] },
);

export type Manifest = z.infer<typeof ManifestSchema>;

/** What the build records about its manifest. */
export interface ManifestSummary {
  appId: string;
  runtime: string;
  runtimeVersion: string | null;
  sdk: string;
  command: string | null;
  branch: string | null;
  /** finish-args by option: `{"share": ["network"], "socket": ["x11"], …}`. */
  permissions: Record<string, string[]>;
  moduleCount: number;
}

/** A parsed, checked manifest, or the problems found in it. */
export type ManifestResult =
  | { ok: true; manifest: Manifest; summary: ManifestSummary }
  | { ok: false; issues: ManifestIssue[] };

const MAX_MANIFEST_BYTES = 1024 * 1024;

function fieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  }
  return out || "(manifest)";
}

/**
 * Parses a manifest given as JSON or YAML text (`format` "auto": JSON when it starts with `{`),
 * or as an already decoded object, and checks it.
 */
export function parseManifest(
  input: string | unknown,
  format: "json" | "yaml" | "auto" = "auto",
): ManifestResult {
  let data: unknown = input;
  if (typeof input === "string") {
    if (new TextEncoder().encode(input).length > MAX_MANIFEST_BYTES) {
      return {
        ok: false,
        issues: [{
          path: "(manifest)",
          message: `is larger than ${MAX_MANIFEST_BYTES} bytes`,
        }],
      };
    }
    const json = format === "json" ||
      (format === "auto" && input.trimStart().startsWith("{"));
    try {
      data = json
        ? JSON.parse(input)
        : parseYaml(input, { maxAliasCount: 100, uniqueKeys: true });
    } catch (e) {
      return {
        ok: false,
        issues: [{
          path: "(manifest)",
          message: `is not valid ${json ? "JSON" : "YAML"}: ${
            (e as Error).message.split("\n")[0]
          }`,
        }],
      };
    }
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return {
      ok: false,
      issues: [{ path: "(manifest)", message: "must be an object" }],
    };
  }
  const r = ManifestSchema.safeParse(data);
  if (!r.success) {
    return {
      ok: false,
      issues: r.error.issues.map((i) => ({
        path: fieldPath(i.path),
        message: i.message,
      })),
    };
  }
  const m = r.data;
  return { ok: true, manifest: m, summary: summarize(m) };
}

function countModules(mods: readonly (ModuleT | string)[]): number {
  let n = 0;
  for (const m of mods) {
    n++;
    if (typeof m !== "string" && m.modules) n += countModules(m.modules);
  }
  return n;
}

function summarize(m: Manifest): ManifestSummary {
  const permissions: Record<string, string[]> = {};
  for (const arg of m["finish-args"] ?? []) {
    const [opt, value] = arg.slice(2).split(/=(.*)/s) as [string, string?];
    (permissions[opt] ??= []).push(value ?? "");
  }
  return {
    appId: (m.id ?? m["app-id"])!,
    runtime: m.runtime,
    runtimeVersion: m["runtime-version"] ?? null,
    sdk: m.sdk,
    command: m.command ?? null,
    branch: m.branch ?? null,
    permissions,
    moduleCount: countModules(m.modules),
  };
}
