/**
 * @module `POST /api/v1/repo/{repo}/republish` and `POST /api/v1/prune` (specs/flat-manager-api.md
 * §3.2): flat-manager's token checks and error messages, then a job on the repository's serial
 * key, answered as a Job.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import { jobJson } from "../../lib/builds/fm_json.ts";
import { flatManagerAuth } from "../../lib/http/auth.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { flatManagerValidationHook, fm } from "../../lib/http/errors.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import { repoStore } from "../../lib/repos/repo_store.ts";
import {
  hasScope,
  hasTokenPrefix,
  hasTokenRepo,
} from "../../lib/tokens/matching.ts";
import { PRUNE_KIND, PRUNE_PRIORITY } from "../../jobs/prune.ts";
import { REPUBLISH_KIND } from "../../jobs/republish.ts";
import { PUBLISH_PRIORITY, repoKey } from "../../jobs/update_repo.ts";
import { absoluteUrl, claimsOf, fmBody, requireSubScope } from "./common.ts";

const RepublishBody = z.object({
  app: z.string(),
  endoflife: z.string().nullish(),
  endoflife_rebase: z.string().nullish(),
});
const PruneBody = z.object({ repo: z.string() });

const jobResponses = {
  200: {
    description: "The Job (§1.5)",
    content: {
      "application/json": { schema: z.record(z.string(), z.unknown()) },
    },
  },
  ...flatManagerErrorResponses,
  400: {
    description:
      "Malformed body (plain text, as actix answers), or `No such repo` (generic-error JSON)",
  },
} as const;

/** The republish and prune routes. */
export function createFlatManagerRepoJobRoutes(
  deps: Deps,
): OpenAPIHono<AppEnv> {
  const auth = flatManagerAuth(deps.tokens);
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: flatManagerValidationHook,
  });
  const urls = {
    trustProxy: deps.config.trustProxy,
    baseUrl: deps.config.baseUrl,
  };

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repo/{repo}/republish",
      tags: ["flat-manager"],
      summary: "Republish an app's refs, optionally end-of-life (§3.2)",
      description:
        'Body: `{"app", "endoflife"?, "endoflife_rebase"?}`. Needs sub `build` and scope ' +
        "`republish`, the app within the token's prefixes and the repository within its repos. " +
        "Returns the Job with `Location: …/api/v1/job/<id>`.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: {
        params: z.object({
          repo: z.string().openapi({
            description: "Repository name",
            example: "stable",
          }),
        }),
      },
      responses: jobResponses,
    }),
    async (c) => {
      const claims = claimsOf(c);
      // actix parses the body before the handler's checks run (§0.4).
      const body = await fmBody(c, RepublishBody);
      const { repo: name } = c.req.valid("param");
      requireSubScope(claims, "build", ["republish"]);
      if (!hasTokenPrefix(claims, body.app)) {
        throw fm.insufficient(`Id ${body.app} not matching prefix in token`);
      }
      if (!hasTokenRepo(claims, name)) {
        throw fm.insufficient("Not matching repo in token");
      }
      // flat-manager queues a job for an unknown repository that then never runs (§9.2);
      // Flatyard refuses it, with the message create-build uses for the same mistake.
      const repo = await repoStore.get(deps.db, name);
      if (!repo) throw fm.badRequest("No such repo");
      const job = await deps.queue.enqueue(REPUBLISH_KIND, {
        repo: repo.name,
        app: body.app,
        endoflife: body.endoflife ?? null,
        endoflife_rebase: body.endoflife_rebase ?? null,
      }, {
        serialKey: repoKey(repo.name),
        // flat-manager runs republish at publish's priority (§4.2).
        priority: PUBLISH_PRIORITY,
        maxAttempts: 1,
      });
      c.header("Location", absoluteUrl(c, `/api/v1/job/${job.id}`, urls));
      return c.json(jobJson(job, ""), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/prune",
      tags: ["flat-manager"],
      summary: "Prune a repository's unreachable objects (§3.2)",
      description:
        'Body: `{"repo"}`. Needs only the `tokenmanagement` scope (no sub, repo or prefix ' +
        "check). Returns the Job, without `Location`; it runs when nothing else of the " +
        "repository is ready.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      responses: jobResponses,
    }),
    async (c) => {
      const claims = claimsOf(c);
      const body = await fmBody(c, PruneBody);
      // flat-manager's own wording here (src/api/prune.rs), not the usual "Not matching scope".
      if (!hasScope(claims, "tokenmanagement")) {
        throw fm.insufficient("Missing TokenManagement scope");
      }
      // flat-manager does not validate the name and its job never runs (§9.2); refused here.
      const repo = await repoStore.get(deps.db, body.repo);
      if (!repo) throw fm.badRequest("No such repo");
      const job = await deps.queue.enqueue(PRUNE_KIND, { repo: repo.name }, {
        serialKey: repoKey(repo.name),
        priority: PRUNE_PRIORITY,
        maxAttempts: 1,
      });
      return c.json(jobJson(job, ""), 200);
    },
  );

  return app;
}
