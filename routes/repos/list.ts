/** @module Lists the repositories the caller may read. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { canReadRepo } from "../../lib/repos/access.ts";
import { repoStore } from "../../lib/repos/repo_store.ts";
import { RepoSchema } from "./schema.ts";
import { maybePrincipal, type RepoContext } from "./context.ts";

/** `GET /api/v1/repos`. */
export function addListRepos(
  app: OpenAPIHono<AppEnv>,
  { deps, maybeAuth, json }: RepoContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos",
      tags: ["repos"],
      summary:
        "List the repositories the caller may read (public ones without credentials)",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      responses: {
        200: jsonResponse("Repositories", z.array(RepoSchema)),
        ...errors(401),
      },
    }),
    async (c) => {
      const p = maybePrincipal(c);
      return c.json(
        (await repoStore.list(deps.db)).filter((r) => canReadRepo(p, r)).map(
          json,
        ),
        200,
      );
    },
  );
}
