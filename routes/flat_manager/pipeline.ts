/**
 * @module `POST /api/v1/build/{id}/commit` and `/publish` (specs/flat-manager-api.md §3.2): the
 * state checks with flat-manager's exact wrong-state errors, then the job, queued in the same
 * transaction as the state change. Answers the Job with its `Location`.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import { jobJson } from "../../lib/builds/fm_json.ts";
import {
  buildStore,
  PublishedState,
  publishedStateNames,
  RepoState,
  repoStateNames,
} from "../../lib/builds/build_store.ts";
import { flatManagerAuth } from "../../lib/http/auth.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  FlatManagerError,
  flatManagerValidationHook,
} from "../../lib/http/errors.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import { COMMIT_KIND } from "../../jobs/commit.ts";
import { PUBLISH_KIND } from "../../jobs/publish.ts";
import { PUBLISH_PRIORITY, repoKey } from "../../jobs/update_repo.ts";
import { absoluteUrl, authorizedBuild, fmBody } from "./common.ts";

const CommitBody = z.object({
  endoflife: z.string().nullish(),
  endoflife_rebase: z.string().nullish(),
  token_type: z.number().int().nullish(),
});

function wrongRepoState(
  message: string,
  current: number,
  expected: string,
): FlatManagerError {
  return new FlatManagerError(400, "wrong-repo-state", message, {
    // Validating reports as ready in the commit table (§3.2).
    "current-state": repoStateNames[current],
    "expected-state": expected,
  });
}

/** The commit and publish routes. */
export function createFlatManagerPipelineRoutes(
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
  const route = (path: string, summary: string, description: string) =>
    createRoute({
      method: "post",
      path,
      tags: ["flat-manager"],
      summary,
      description,
      security: flatManagerSecurity,
      middleware: [auth] as const,
      responses: {
        200: {
          description: "The Job (§1.5)",
          content: {
            "application/json": { schema: z.record(z.string(), z.unknown()) },
          },
        },
        ...flatManagerErrorResponses,
      },
    });

  app.openapi(
    route(
      "/api/v1/build/{id}/commit",
      "Commit an uploaded build (§3.2)",
      'Body: `{"endoflife"?, "endoflife_rebase"?, "token_type"?}`.',
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      const body = await fmBody(c, CommitBody);
      const job = await deps.db.transaction(async (tx) => {
        const b = (await buildStore.get(tx, build.id, { forUpdate: true }))!;
        switch (b.repoState) {
          case RepoState.Uploading:
            break;
          case RepoState.Committing:
            throw wrongRepoState(
              "Build is currently being committed",
              b.repoState,
              "uploading",
            );
          case RepoState.Ready:
          case RepoState.Validating:
            throw new FlatManagerError(
              400,
              "wrong-repo-state",
              "Build is already committed",
              {
                "current-state": "ready",
                "expected-state": "uploading",
              },
            );
          case RepoState.Failed:
            throw wrongRepoState(
              `Commit already failed: ${b.repoStateReason ?? ""}`,
              b.repoState,
              "uploading",
            );
          default:
            throw new FlatManagerError(
              400,
              "wrong-repo-state",
              "Build has been purged",
              {
                "current-state": "purged",
                "expected-state": "uploading",
              },
            );
        }
        const job = await deps.queue.enqueue(
          COMMIT_KIND,
          {
            build: b.id,
            endoflife: body.endoflife ?? null,
            endoflife_rebase: body.endoflife_rebase ?? null,
            token_type: body.token_type ?? null,
          },
          { maxAttempts: 1 },
          tx,
        );
        await tx.query(
          "UPDATE builds SET repo_state = 1, commit_job_id = $2 WHERE id = $1",
          [b.id, job.id],
        );
        return job;
      });
      await deps.queue.wake();
      c.header(
        "Location",
        absoluteUrl(c, `/api/v1/build/${build.id}/commit`, urls),
      );
      return c.json(jobJson(job, ""), 200);
    },
  );

  app.openapi(
    route(
      "/api/v1/build/{id}/publish",
      "Publish a committed build (§3.2)",
      "The body is ignored but must be JSON.",
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["publish"]);
      await fmBody(c, z.unknown(), { emptyIsObject: true });
      const job = await deps.db.transaction(async (tx) => {
        const b = (await buildStore.get(tx, build.id, { forUpdate: true }))!;
        if (b.publishedState !== PublishedState.Unpublished) {
          const messages = [
            "",
            "Build is currently being published",
            "Build has already been published",
            `Previous publish failed: ${b.publishedStateReason ?? ""}`,
          ];
          throw new FlatManagerError(
            400,
            "wrong-published-state",
            messages[b.publishedState]!,
            {
              "current-state": publishedStateNames[b.publishedState],
              "expected-state": "unpublished",
            },
          );
        }
        if (b.repoState !== RepoState.Ready) {
          const message = {
            [RepoState.Uploading]: "Build is not committed",
            [RepoState.Committing]: "Build is not committed",
            [RepoState.Validating]: "Build is still validating",
            [RepoState.Failed]: `Build failed: ${b.repoStateReason ?? ""}`,
            [RepoState.Purging]: "Build has been purged",
            [RepoState.Purged]: "Build has been purged",
          }[b.repoState] ?? "Build is not ready";
          const current = b.repoState === RepoState.Purging
            ? "purged"
            : repoStateNames[b.repoState];
          throw new FlatManagerError(400, "wrong-repo-state", message, {
            "current-state": current,
            "expected-state": "ready",
          });
        }
        const job = await deps.queue.enqueue(PUBLISH_KIND, { build: b.id }, {
          serialKey: repoKey(b.repo),
          priority: PUBLISH_PRIORITY,
          maxAttempts: 1,
        }, tx);
        await tx.query(
          "UPDATE builds SET published_state = 1, publish_job_id = $2 WHERE id = $1",
          [b.id, job.id],
        );
        return job;
      });
      await deps.queue.wake();
      c.header(
        "Location",
        absoluteUrl(c, `/api/v1/build/${build.id}/publish`, urls),
      );
      return c.json(jobJson(job, ""), 200);
    },
  );

  return app;
}
