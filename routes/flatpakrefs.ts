/**
 * @module `GET /repo/<name>/<appId>.flatpakref`: the `.flatpakref` the publish job wrote for each
 * app (`<repo>/appstream/<ID>.flatpakref`, specs/flat-manager-api.md §6.3 step 4, §6.6), by the
 * repository's visibility (a download token for a private one, as for its other files).
 * Mounted before the generic repository file routes, which would refuse this path.
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { join } from "node:path";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { errors } from "../lib/http/openapi.ts";
import { downloadPrincipal } from "../lib/http/download_auth.ts";
import { SHORT_CACHE } from "../lib/http/repo_path.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { repoStore } from "../lib/repos/repo_store.ts";
import { FlatpakId } from "./repo_meta_schema.ts";
import { RepoName } from "./repos/schema.ts";

const Params = z.object({
  name: RepoName.openapi({
    param: { name: "name", in: "path" },
    example: "stable",
  }),
  file: z.string().openapi({
    param: { name: "file", in: "path" },
    description: "`<app id>.flatpakref`",
    example: "org.example.Hello.flatpakref",
  }),
});

/** The `.flatpakref` route. */
export function createFlatpakrefRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  // A plain route with documented path: an OpenAPI route's `{file}` would match every file of
  // the repository and answer 422 for `summary`, instead of leaving it to the file routes.
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/repo/{name}/{file}",
    tags: ["repo files"],
    summary:
      "The .flatpakref of an app (installs it with `flatpak install --from`)",
    description:
      "Only for `<app id>.flatpakref`; other paths are the repository's files. A private " +
      "repository needs a download token (Bearer, or basic auth with the token as password).",
    security: [{ bearer: [] }, {}],
    request: { params: Params },
    responses: {
      200: {
        description: "The .flatpakref (specs/ostree-repos.md §5.2)",
        content: { "application/vnd.flatpak.ref": { schema: z.string() } },
      },
      ...errors(401, 404),
    },
  });

  app.get(
    "/repo/:name{[A-Za-z0-9][A-Za-z0-9._-]{0,63}}/:file{[A-Za-z0-9_][A-Za-z0-9._-]{0,254}\\.flatpakref}",
    async (c) => {
      const name = c.req.param("name");
      const id = c.req.param("file").slice(0, -".flatpakref".length);
      const missing = () =>
        problems.notFound(`Cannot find app "${id}" in repository "${name}"`);
      if (
        !RepoName.safeParse(name).success || !FlatpakId.safeParse(id).success
      ) {
        throw missing();
      }
      const repo = await repoStore.get(deps.db, name);
      if (!repo) throw problems.notFound(`Cannot find repository "${name}"`);
      if (!repo.public) {
        const p = await downloadPrincipal(
          c.req.header("authorization"),
          deps.tokens,
          deps.config.tokenPrefix,
        );
        if (p === "invalid" || !canReadRepo(p, repo)) {
          c.header("WWW-Authenticate", `Basic realm="flatyard ${name}"`);
          throw problems.unauthorized(
            p === "invalid"
              ? "Invalid download token"
              : `Repository "${name}" needs a download token`,
          );
        }
      }
      // The id matched FLATPAK_ID (no "/", no leading "."), so the path stays in appstream/.
      const path = join(
        repoPaths(deps.config.dataDir).repo(repo.name),
        "appstream",
        `${id}.flatpakref`,
      );
      let text: string;
      try {
        if (!(await Deno.lstat(path)).isFile) throw missing();
        text = await Deno.readTextFile(path);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) throw missing();
        throw err;
      }
      return c.body(text, 200, {
        "Content-Type": "application/vnd.flatpak.ref",
        "Cache-Control": repo.public
          ? SHORT_CACHE
          : SHORT_CACHE.replace("public", "private"),
      });
    },
  );
  return app;
}
