/**
 * @module Repository metadata (native API), by the repository's visibility: a JSON index of its
 * apps and runtimes as published, and its appstream data (`appstream.xml.gz` and icons per arch)
 * read from the published `appstream2/<arch>` (else `appstream/<arch>`) commit, with that commit
 * as the ETag (specs/ostree-repos.md §5.3).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { join } from "node:path";
import type { Deps } from "../lib/deps.ts";
import { optionalNativeAuth } from "../lib/http/auth.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { errors, jsonResponse, nativeSecurity } from "../lib/http/openapi.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { APPSTREAM_GZ, AppstreamTrees } from "../lib/repos/appstream.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { RepoIndexer } from "../lib/repos/repo_index.ts";
import { type Repo, repoStore } from "../lib/repos/repo_store.ts";
import {
  ArchParams,
  IconParams,
  RepoIndexSchema,
  RepoParam,
} from "./repo_meta_schema.ts";
import { maybePrincipal } from "./repos/context.ts";

/** Mutable, like the summary it follows (specs/ostree-repos.md §2.4). */
const MAX_AGE = "max-age=300";

const binary = (description: string, type: string) => ({
  description,
  headers: {
    ETag: {
      schema: { type: "string" as const },
      description: "The appstream commit",
    },
  },
  content: { [type]: { schema: z.string().openapi({ format: "binary" }) } },
});

/** Whether `If-None-Match` already names `etag`. */
function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((t) => {
    const v = t.trim();
    return v === "*" || v.replace(/^W\//, "") === etag;
  });
}

/** The repository metadata routes. */
export function createRepoMetaRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const maybeAuth = optionalNativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const trees = new AppstreamTrees(
    join(deps.config.dataDir, "cache", "appstream"),
  );
  const indexer = new RepoIndexer(trees);
  const dirOf = (repo: Repo) => repoPaths(deps.config.dataDir).repo(repo.name);

  /** A repository the caller may read; a private one it may not read is "not found". */
  async function readable(c: Context<AppEnv>, name: string): Promise<Repo> {
    const repo = await repoStore.get(deps.db, name);
    if (!repo || !canReadRepo(maybePrincipal(c), repo)) {
      throw problems.notFound(`Cannot find repository "${name}"`);
    }
    return repo;
  }

  /** Answers with file `rel` of the published appstream tree of `arch`. */
  async function appstreamFile(
    c: Context<AppEnv>,
    repo: Repo,
    arch: string,
    rel: string,
    contentType: string,
  ): Promise<Response> {
    const missing = () =>
      problems.notFound(
        `Cannot find "${rel}" in the appstream data of repository "${repo.name}" for ${arch}`,
      );
    const commit = await indexer.appstreamCommit(dirOf(repo), arch);
    if (!commit) throw missing();
    const cache = `${repo.public ? "public" : "private"}, ${MAX_AGE}`;
    const etag = `"${commit}"`;
    if (matches(c.req.header("if-none-match"), etag)) {
      return c.body(null, 304, { ETag: etag, "Cache-Control": cache });
    }
    const root = await trees.tree(repo.name, dirOf(repo), commit);
    let real: string;
    try {
      real = await Deno.realPath(join(root, rel));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw missing();
      throw err;
    }
    // The tree is the repository's content: a symlink in it must not reach out of it.
    if (!real.startsWith(await Deno.realPath(root) + "/")) throw missing();
    const file = await Deno.open(real);
    const info = await file.stat();
    if (!info.isFile) {
      file.close();
      throw missing();
    }
    return c.body(file.readable, 200, {
      "Content-Type": contentType,
      "Content-Length": String(info.size),
      "Cache-Control": cache,
      ETag: etag,
    });
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/index",
      tags: ["repos"],
      summary: "The apps and runtimes a repository publishes",
      description:
        "From the published summary: each app and runtime with its appstream name and summary, " +
        "arches, branches, and per ref its sizes, end-of-life and latest commit. Public " +
        "repositories need no credentials.",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: { params: RepoParam },
      responses: {
        200: jsonResponse("The index", RepoIndexSchema),
        ...errors(401, 404, 422),
      },
    }),
    async (c) => {
      const repo = await readable(c, c.req.valid("param").name);
      const index = await indexer.index(repo.name, dirOf(repo));
      c.header(
        "Cache-Control",
        `${repo.public ? "public" : "private"}, max-age=60`,
      );
      return c.json(index, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/appstream/{arch}/appstream.xml.gz",
      tags: ["repos"],
      summary: "The appstream catalog of one architecture, gzipped",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: { params: ArchParams },
      responses: {
        200: binary("The appstream XML, gzipped", "application/gzip"),
        304: { description: "Not modified (If-None-Match)" },
        ...errors(401, 404, 422),
      },
    }),
    async (c) => {
      const { name, arch } = c.req.valid("param");
      const repo = await readable(c, name);
      return appstreamFile(c, repo, arch, APPSTREAM_GZ, "application/gzip");
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/appstream/{arch}/icons/{size}/{file}",
      tags: ["repos"],
      summary: "An icon of the appstream catalog of one architecture",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: { params: IconParams },
      responses: {
        200: binary("The icon", "image/png"),
        304: { description: "Not modified (If-None-Match)" },
        ...errors(401, 404, 422),
      },
    }),
    async (c) => {
      const { name, arch, size, file } = c.req.valid("param");
      const repo = await readable(c, name);
      return appstreamFile(c, repo, arch, `icons/${size}/${file}`, "image/png");
    },
  );

  return app;
}
