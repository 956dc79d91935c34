/**
 * @module flat-manager's build endpoints (specs/flat-manager-api.md §3.2), wire-exact: create and
 * list builds, read a build and its refs, register refs, ask which objects are missing, add
 * extra ids, purge. Bodies are parsed by hand because clients put JSON on GET (§0.3).
 */
import { checkStore } from "../../lib/builds/checks.ts";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Deps } from "../../lib/deps.ts";
import {
  buildPaths,
  initBuildRepos,
  missingObjects,
} from "../../lib/builds/build_disk.ts";
import { buildJson, buildRefJson } from "../../lib/builds/fm_json.ts";
import {
  type Build,
  buildStore,
  PublishedState,
  RepoState,
} from "../../lib/builds/build_store.ts";
import { flatManagerAuth } from "../../lib/http/auth.ts";
import {
  holdSignal,
  PREFER_HEADER,
  PREFERENCE_APPLIED_HEADER,
  preferredWait,
  waitForChange,
} from "../../lib/http/prefer_wait.ts";
import { channels } from "../../lib/queue/queue.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { flatManagerValidationHook, fm } from "../../lib/http/errors.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import { parseUploadName } from "../../lib/ostree/object_names.ts";
import { repoPaths } from "../../lib/repos/repo_disk.ts";
import { repoStore } from "../../lib/repos/repo_store.ts";
import { hasTokenPrefix, hasTokenRepo } from "../../lib/tokens/matching.ts";
import {
  absoluteUrl,
  authorizedBuild,
  buildIdParam,
  claimsOf,
  fmBody,
  requireSubScope,
} from "./common.ts";

const json = (description: string) => ({
  description,
  content: {
    "application/json": { schema: z.record(z.string(), z.unknown()) },
  },
});

const CreateBuild = z.object({
  repo: z.string(),
  "app-id": z.string().nullish(),
  "public-download": z.boolean().nullish(),
  "build-log-url": z.string().nullish(),
});
const BuildRefBody = z.object({
  ref: z.string(),
  commit: z.string(),
  "build-log-url": z.string().nullish(),
});
const Wanted = z.object({ wanted: z.array(z.string()) });
const ExtraIds = z.object({ ids: z.array(z.string()) });

/** §3.2 add_extra_ids: dot-separated elements of Unicode letters and digits, `_` and `-` refused. */
const EXTRA_ID = /^[\p{L}\p{N}]+(\.[\p{L}\p{N}]+)*$/u;

/** The build routes. */
export function createFlatManagerBuildRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = flatManagerAuth(deps.tokens);
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: flatManagerValidationHook,
  });
  const urls = {
    trustProxy: deps.config.trustProxy,
    baseUrl: deps.config.baseUrl,
  };
  const buildUrl = (c: Context, id: number, rest = "") =>
    absoluteUrl(c, `/api/v1/build/${id}${rest}`, urls);
  const route = (
    method: "get" | "post",
    path: string,
    summary: string,
    description: string,
  ) =>
    createRoute({
      method,
      path,
      tags: ["flat-manager"],
      summary,
      description,
      security: flatManagerSecurity,
      middleware: [auth] as const,
      responses: {
        200: json("Success"),
        ...flatManagerErrorResponses,
        404: json("No such build"),
      },
    });

  app.openapi(
    route(
      "post",
      "/api/v1/build",
      "Create a build (§3.2)",
      'Body: `{"repo", "app-id"?, "public-download"?, "build-log-url"?}`. Returns a Build with `Location`.',
    ),
    async (c) => {
      const claims = claimsOf(c);
      const body = await fmBody(c, CreateBuild);
      requireSubScope(claims, "build", ["build"]);
      if (!hasTokenRepo(claims, body.repo)) {
        throw fm.insufficient("Not matching repo in token");
      }
      const appId = body["app-id"] ?? null;
      if (appId !== null && !hasTokenPrefix(claims, appId)) {
        throw fm.insufficient(`Id ${appId} not matching prefix in token`);
      }
      const repo = await repoStore.get(deps.db, body.repo);
      if (!repo) throw fm.badRequest("No such repo");
      const build = await deps.db.transaction(async (tx) => {
        const build = await buildStore.create(tx, {
          repo: repo.name,
          appId,
          publicDownload: body["public-download"] ?? appId === null,
          buildLogUrl: body["build-log-url"] ?? null,
          tokenName: claims.name ?? "-",
          tokenType: claims.token_type ?? null,
        });
        // Directories with the row: if they cannot be made, no build exists.
        await initBuildRepos(
          deps.config.dataDir,
          build.id,
          repoPaths(deps.config.dataDir).repo(repo.name),
          repo.collectionId,
        );
        return build;
      });
      c.header("Location", buildUrl(c, build.id));
      return c.json(buildJson(build), 200);
    },
  );

  app.openapi(
    route(
      "get",
      "/api/v1/build",
      "List builds (§3.2)",
      "Query `app-id`: its non-purged builds; without it, the legacy builds that have no app id.",
    ),
    async (c) => {
      const claims = claimsOf(c);
      requireSubScope(claims, "build", ["build", "download"]);
      const appId = c.req.query("app-id");
      if (appId !== undefined && !hasTokenPrefix(claims, appId)) {
        throw fm.insufficient(`Id ${appId} not matching prefix in token`);
      }
      return c.json(
        (await buildStore.list(deps.db, appId)).map(buildJson),
        200,
      );
    },
  );

  app.openapi(
    route("get", "/api/v1/build/{id}", "Get a build (§1.1)", ""),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build", "upload"]);
      return c.json(buildJson(build), 200);
    },
  );

  app.openapi(
    route(
      "get",
      "/api/v1/build/{id}/extended",
      "Get a build with its refs and checks (§1.4)",
      "Native extension: with `Prefer: wait=N` (RFC 7240, N ≤ 10) a build still committing " +
        "is held until its commit job changes status, at most N seconds, and answered with " +
        "`Preference-Applied`.",
    ),
    async (c) => {
      let { build } = await authorizedBuild(c, deps.db, ["build", "upload"]);
      const wait = preferredWait(c.req.header(PREFER_HEADER));
      if (wait !== undefined) {
        // What the clients poll for after a commit (§5.4 step 9): the end of Committing.
        const jobId = build.commitJobId;
        if (build.repoState === RepoState.Committing && jobId !== null) {
          build = await waitForChange(
            deps.bus,
            [channels.status(jobId)],
            wait,
            async () => (await buildStore.get(deps.db, build.id)) ?? build,
            (b) => b.repoState !== RepoState.Committing,
            holdSignal(c),
          );
        }
        c.header(PREFERENCE_APPLIED_HEADER, `wait=${wait}`);
      }
      const refs = await buildStore.refs(deps.db, build.id);
      return c.json({
        build: buildJson(build),
        build_refs: refs.map(buildRefJson),
        checks: await checkStore.list(deps.db, build.id),
      }, 200);
    },
  );

  app.openapi(
    route(
      "post",
      "/api/v1/build/{id}/build_ref",
      "Register a ref of the build (§3.2)",
      'Body: `{"ref", "commit", "build-log-url"?}`.',
    ),
    async (c) => {
      const { build, claims } = await authorizedBuild(c, deps.db, ["upload"]);
      const body = await fmBody(c, BuildRefBody);
      await validateRef(build, body.ref, claims);
      const ref = await buildStore.upsertRef(
        deps.db,
        build.id,
        body.ref,
        body.commit,
        body["build-log-url"] ?? null,
      );
      c.header("Location", buildUrl(c, build.id, `/build_ref/${ref.id}`));
      return c.json(buildRefJson(ref), 200);
    },
  );

  app.openapi(
    route(
      "get",
      "/api/v1/build/{id}/build_ref/{ref_id}",
      "Get a build ref (§1.2)",
      "",
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      const ref = await buildStore.ref(
        deps.db,
        build.id,
        buildIdParam(c.req.param("ref_id")),
      );
      if (!ref) throw fm.notFound();
      return c.json(buildRefJson(ref), 200);
    },
  );

  app.openapi(
    route(
      "get",
      "/api/v1/build/{id}/missing_objects",
      "Which objects still need uploading (§3.2)",
      'GET with a (usually gzip-compressed) JSON body `{"wanted": [names]}`, up to 10 MiB.',
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["upload"]);
      const { wanted } = await fmBody(c, Wanted, { limit: 10 * 1024 * 1024 });
      // flat-manager never validated these (§7.5); names that are not objects cannot exist.
      const names = wanted.filter((n) => parseUploadName(n)?.kind === "object");
      const missing = new Set(
        await missingObjects(deps.config.dataDir, build.id, names),
      );
      return c.json({
        missing: wanted.filter((n) => missing.has(n) || !names.includes(n)),
      }, 200);
    },
  );

  app.openapi(
    route(
      "post",
      "/api/v1/build/{id}/add_extra_ids",
      "Add extra ids to a build (§3.2)",
      'Body: `{"ids": [...]}`.',
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["upload"]);
      const { ids } = await fmBody(c, ExtraIds);
      for (const id of ids) {
        if (!EXTRA_ID.test(id)) throw fm.badRequest(`Invalid extra id ${id}`);
      }
      const updated = await buildStore.addExtraIds(deps.db, build.id, ids);
      c.header("Location", buildUrl(c, build.id));
      return c.json(buildJson(updated), 200);
    },
  );

  app.openapi(
    route(
      "post",
      "/api/v1/build/{id}/purge",
      "Purge a build's files (§3.2)",
      "The body is ignored.",
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      const busy = [
        RepoState.Committing,
        RepoState.Purging,
        RepoState.Validating,
      ] as number[];
      if (
        busy.includes(build.repoState) ||
        build.publishedState === PublishedState.Publishing
      ) {
        // Both clients treat exactly this message as success.
        throw fm.badRequest("Can't prune build while in use");
      }
      await buildStore.setRepoState(deps.db, build.id, RepoState.Purging, null);
      let after: Build;
      try {
        await Deno.remove(buildPaths(deps.config.dataDir, build.id).root, {
          recursive: true,
        });
        after = await buildStore.setRepoState(
          deps.db,
          build.id,
          RepoState.Purged,
          null,
        );
      } catch (err) {
        const reason = `Failed to Purge build: ${
          err instanceof Error ? err.message : String(err)
        }`;
        after = await buildStore.setRepoState(
          deps.db,
          build.id,
          RepoState.Failed,
          reason,
        );
      }
      c.header("Location", buildUrl(c, build.id));
      return c.json(buildJson(after), 200);
    },
  );

  /** §3.2 validate_ref: app/runtime refs of four parts with a prefix check; screenshots refs. */
  async function validateRef(
    build: Build,
    ref: string,
    claims: ReturnType<typeof claimsOf>,
  ): Promise<void> {
    const parts = ref.split("/");
    if (parts[0] === "app" || parts[0] === "runtime") {
      if (parts.length !== 4 || parts.some((p) => p === "")) {
        throw fm.badRequest(`Invalid ref_name ${ref}`);
      }
      if (!hasTokenPrefix(claims, parts[1]!)) {
        throw fm.insufficient(`Id ${parts[1]} not matching prefix in token`);
      }
      return;
    }
    if (parts[0] === "screenshots" && parts.length === 2 && parts[1] !== "") {
      if (build.appId !== null) {
        if (!hasTokenPrefix(claims, build.appId)) {
          throw fm.insufficient(
            `Id ${build.appId} not matching prefix in token`,
          );
        }
        return;
      }
      const ids = new Set(
        (await buildStore.refs(deps.db, build.id))
          .map((r) => r.refName.split("/"))
          .filter((p) => p[0] === "app" && p[2] === parts[1])
          .map((p) => p[1]!),
      );
      const global = claims.prefixes.length === 0 ||
        claims.prefixes.includes("");
      if (ids.size > 1) {
        throw fm.insufficient("Screenshot ref matches multiple app IDs");
      }
      if (ids.size === 1) {
        const [only] = ids;
        if (!hasTokenPrefix(claims, only!)) {
          throw fm.insufficient(`Id ${only} not matching prefix in token`);
        }
        return;
      }
      if (!global) {
        throw fm.insufficient(
          "Screenshot refs require a build app_id or matching app ref for app-scoped tokens",
        );
      }
      return;
    }
    throw fm.badRequest(`Invalid ref_name ${ref}`);
  }

  return app;
}
