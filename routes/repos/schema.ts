/** @module Schemas of the repository routes: every field's validation lives here. */
import { z } from "@hono/zod-openapi";
import {
  CDN_PURGE_METHODS,
  type Repo,
  repoUrl,
} from "../../lib/repos/repo_store.ts";
import { RepoNameSchema } from "../users/schema.ts";

/** A repository name; `.flatpakrepo` is reserved for the file served beside the repository. */
export const RepoName = RepoNameSchema.refine(
  (n) => !n.endsWith(".flatpakrepo"),
  "must not end in .flatpakrepo",
);

/** The `{name}` path parameter of the repository routes. */
export const NameParam = z.object({
  name: RepoName.openapi({
    param: { name: "name", in: "path" },
    example: "stable",
  }),
});

/** OSTree collection IDs are reverse-DNS names of two or more elements (D-Bus name rules). */
export const CollectionId = z.string().max(255).regex(
  /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/,
  "must be a reverse-DNS name such as org.example.Stable",
).openapi({ example: "org.example.Stable" });

/** A flatpak branch name. */
export const Branch = z.string().regex(
  /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/,
  "must be 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-'",
).openapi({ example: "stable" });

const HttpUrl = z.url({
  protocol: /^https?$/,
  error: "must be an http:// or https:// URL",
}).max(2000);

/** `min-free-space-size` in ostree's format (specs/ostree-repos.md §1.2). */
const MinFreeSpace = z.string().regex(
  /^[1-9][0-9]{0,8}(MB|GB|TB)$/,
  'must be a size such as "500MB" or "2GB"',
)
  .openapi({ example: "500MB" });

export const DeltaPolicySchema = z.object({
  rules: z.array(
    z.object({
      match: z.string().min(1).max(255).regex(
        /^[A-Za-z0-9._*-]+$/,
        "must be an app or runtime id glob",
      )
        .openapi({
          description: "Ref id glob; `*` matches one or more characters",
          example: "org.gnome.*",
        }),
      arches: z.array(z.string().regex(/^[A-Za-z0-9_*]+$/)).max(20).optional(),
      depth: z.number().int().min(0).max(20).openapi({
        description: "Deltas from this many previous commits",
      }),
    }).strict(),
  ).max(50),
  fromScratch: z.boolean().openapi({
    description: "Also make from-scratch deltas",
  }),
}).strict().openapi("DeltaPolicy");

/** The placeholders a CDN purge URL template may use (documented on {@link CdnPurgeSchema}). */
export const CDN_PLACEHOLDERS = ["repo", "path", "url"] as const;
/** At most this many purge hooks per repository. */
export const MAX_CDN_HOOKS = 10;

/** A URL template: only known placeholders, and an http(s) URL once they are filled in. */
const UrlTemplate = z.string().min(1).max(2000).superRefine((t, ctx) => {
  const unknown = [...t.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!)
    .filter((p) => !(CDN_PLACEHOLDERS as readonly string[]).includes(p));
  if (unknown.length > 0 || /[{}]/.test(t.replace(/\{[a-z]+\}/g, ""))) {
    ctx.addIssue({
      code: "custom",
      message: `must use only the placeholders ${
        CDN_PLACEHOLDERS.map((p) => `{${p}}`).join(", ")
      }${
        unknown.length
          ? ` (found ${unknown.map((u) => `{${u}}`).join(", ")})`
          : ""
      }`,
    });
    return;
  }
  // The scheme and host must be literal: a placeholder there could send the request anywhere.
  const sample = t.replaceAll("{repo}", "stable").replaceAll(
    "{path}",
    "summary",
  )
    .replaceAll("{url}", "x");
  let url: URL;
  try {
    url = new URL(sample);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: "must be an http:// or https:// URL",
    });
    return;
  }
  if (!/^https?:$/.test(url.protocol) || url.username || url.password) {
    ctx.addIssue({
      code: "custom",
      message: "must be an http:// or https:// URL without credentials",
    });
  } else if (/^[a-z]+:\/\/[^/?#]*\{/i.test(t)) {
    ctx.addIssue({
      code: "custom",
      message: "must not have a placeholder in the scheme or host",
    });
  }
});

/** Headers a purge hook may not set: the request's framing and target are the server's. */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "upgrade",
  "te",
  "trailer",
  "keep-alive",
  "proxy-authorization",
]);
/** At most this many headers per hook. */
export const MAX_CDN_HEADERS = 8;

const HeaderName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/, {
  message: "must be an HTTP header name",
}).refine((n) => !RESERVED_HEADERS.has(n.toLowerCase()), {
  message: "is set by the server",
});
const HeaderValue = z.string().max(1000).refine(
  (v) => !/[\r\n\0]/.test(v),
  { message: "must be one line" },
).refine(
  (v) => /^(?:[^{}]|\{secret:[A-Z0-9_]{1,64}\})*$/.test(v),
  { message: "may use only {secret:NAME} placeholders (NAME: A-Z, 0-9, _)" },
);

export const CdnPurgeSchema = z.array(
  z.object({
    method: z.enum(CDN_PURGE_METHODS).openapi({
      example: "PURGE",
    }),
    url: UrlTemplate.openapi({
      description:
        "URL template. `{repo}`: the repository name; `{path}`: the file's path relative to " +
        "the repository URL (`summary`, `config`, `org.example.App.flatpakref`, " +
        "`appstream/org.example.App.flatpakref`, `refs/heads/appstream2/x86_64`); `{url}`: " +
        "the file's absolute public URL, percent-encoded as one query value.",
      example: "https://cdn.example/repo/{repo}/{path}",
    }),
    headers: z.record(HeaderName, HeaderValue).refine(
      (h) => Object.keys(h).length <= MAX_CDN_HEADERS,
      { message: `at most ${MAX_CDN_HEADERS} headers` },
    ).refine(
      (h) =>
        new Set(Object.keys(h).map((k) => k.toLowerCase())).size ===
          Object.keys(h).length,
      { message: "names a header twice" },
    ).optional().openapi({
      description:
        "Request headers. `{secret:NAME}` in a value is replaced by the server's " +
        "`FLATYARD_CDN_SECRET_<NAME>` environment variable when the request is made, so a CDN " +
        "API token never enters the database or this document; a literal value is shown to " +
        "anyone who may read the repository's settings.",
      example: { Authorization: "Bearer {secret:FASTLY}" },
    }),
  }).strict(),
).max(MAX_CDN_HOOKS).openapi("CdnPurgeHooks", {
  description:
    "Requests made after each publish, once per changed mutable file (the summary files and " +
    "`config` always; `.flatpakref` files and appstream refs when they changed), by a " +
    "`cdn-purge` job with retries. A 2xx answer is success. The server may allow only some " +
    "hosts (`FLATYARD_CDN_HOSTS`); a hook naming another is refused with a 422.",
});

const text = (max: number) => z.string().min(1).max(max);

const fields = {
  title: text(200).openapi({ example: "Example Apps" }),
  description: text(4000).openapi({
    example: "Apps built by the example team",
  }),
  homepage: HttpUrl.openapi({ example: "https://example.org" }),
  iconUrl: HttpUrl.openapi({ example: "https://example.org/icon.svg" }),
  collectionId: CollectionId,
  defaultBranch: Branch,
  public: z.boolean(),
  deltaPolicy: DeltaPolicySchema,
  minFreeSpace: MinFreeSpace,
  baseUrl: HttpUrl.openapi({
    description: "Public URL of the repository; default <server>/repo/<name>",
  }),
  redirectUrl: HttpUrl.openapi({
    description: "Tell clients the repository moved here (xa.redirect-url)",
  }),
  cdnPurge: CdnPurgeSchema,
};

export const CreateRepoSchema = z.object({
  name: RepoName,
  title: fields.title.optional(),
  description: fields.description.optional(),
  homepage: fields.homepage.optional(),
  iconUrl: fields.iconUrl.optional(),
  collectionId: fields.collectionId.optional(),
  defaultBranch: fields.defaultBranch.default("stable"),
  public: fields.public.default(true),
  deltaPolicy: fields.deltaPolicy.optional(),
  minFreeSpace: fields.minFreeSpace.default("500MB"),
  baseUrl: fields.baseUrl.optional(),
  redirectUrl: fields.redirectUrl.optional(),
  cdnPurge: fields.cdnPurge.default([]),
}).strict().openapi("CreateRepoRequest");

/** Every field optional; `null` clears an optional one. The name never changes. */
export const UpdateRepoSchema = z.object({
  title: fields.title.nullable().optional(),
  description: fields.description.nullable().optional(),
  homepage: fields.homepage.nullable().optional(),
  iconUrl: fields.iconUrl.nullable().optional(),
  collectionId: fields.collectionId.optional(),
  defaultBranch: fields.defaultBranch.optional(),
  public: fields.public.optional(),
  deltaPolicy: fields.deltaPolicy.optional(),
  minFreeSpace: fields.minFreeSpace.optional(),
  baseUrl: fields.baseUrl.nullable().optional(),
  redirectUrl: fields.redirectUrl.nullable().optional(),
  cdnPurge: fields.cdnPurge.optional(),
}).strict().refine(
  (b) => Object.keys(b).length > 0,
  "must change at least one field",
)
  .openapi("UpdateRepoRequest");

export const RepoSchema = z.object({
  name: z.string().openapi({ example: "stable" }),
  title: z.string().nullable(),
  description: z.string().nullable(),
  homepage: z.string().nullable(),
  iconUrl: z.string().nullable(),
  collectionId: z.string().nullable(),
  defaultBranch: z.string(),
  public: z.boolean(),
  deltaPolicy: DeltaPolicySchema,
  minFreeSpace: z.string(),
  baseUrl: z.string().nullable(),
  redirectUrl: z.string().nullable(),
  cdnPurge: CdnPurgeSchema,
  url: z.string().openapi({
    description: "Where clients fetch the repository",
    example: "https://flatyard.example/repo/stable",
  }),
  flatpakrepoUrl: z.string().openapi({
    example: "https://flatyard.example/repo/stable.flatpakrepo",
  }),
  createdAt: z.string(),
  updatedAt: z.string(),
}).openapi("Repo");

export { repoUrl } from "../../lib/repos/repo_store.ts";

/** A repository as the API shows it. */
export function toRepoJson(
  r: Repo,
  serverBase: string,
): z.infer<typeof RepoSchema> {
  return {
    name: r.name,
    title: r.title,
    description: r.description,
    homepage: r.homepage,
    iconUrl: r.iconUrl,
    collectionId: r.collectionId,
    defaultBranch: r.defaultBranch,
    public: r.public,
    deltaPolicy: r.deltaPolicy,
    minFreeSpace: r.minFreeSpace,
    baseUrl: r.baseUrl,
    redirectUrl: r.redirectUrl,
    cdnPurge: r.cdnPurge,
    url: repoUrl(r, serverBase),
    flatpakrepoUrl: `${serverBase}/repo/${r.name}.flatpakrepo`,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}
