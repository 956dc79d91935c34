/**
 * @module flat-manager's build refs (specs/flat-manager-api.md §3.2): registering one, checked by
 * validate_ref, and reading one.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { buildRefJson } from "../../lib/builds/fm_json.ts";
import { type Build, buildStore } from "../../lib/builds/build_store.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { fm } from "../../lib/http/errors.ts";
import { hasTokenPrefix } from "../../lib/tokens/matching.ts";
import { authorizedBuild, buildIdParam, claimsOf, fmBody } from "./common.ts";
import type { BuildContext } from "./build_context.ts";

const BuildRefBody = z.object({
  ref: z.string(),
  commit: z.string(),
  "build-log-url": z.string().nullish(),
});

/** `POST /api/v1/build/{id}/build_ref` and `GET /api/v1/build/{id}/build_ref/{ref_id}`. */
export function addBuildRefs(
  app: OpenAPIHono<AppEnv>,
  { deps, buildUrl, route }: BuildContext,
): void {
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
}
