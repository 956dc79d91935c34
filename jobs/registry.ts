/** @module The job handlers a worker runs, by kind: each wraps a `run<Kind>` from jobs/. */
import type { Deps } from "../lib/deps.ts";
import type { JobHandler } from "../lib/queue/worker.ts";
import { MAINTENANCE_KIND, runMaintenance } from "./maintenance.ts";
import {
  REPO_DELETE_KIND,
  type RepoDeleteInput,
  runRepoDelete,
} from "./repo_delete.ts";
import { REPO_VALIDATE_KIND, runRepoValidate } from "./repo_validate.ts";

/** Every job kind Flatyard runs. */
export function createJobHandlers(deps: Deps): Record<string, JobHandler> {
  return {
    [MAINTENANCE_KIND]: (input, ctx) => runMaintenance(deps, input, ctx),
    [REPO_DELETE_KIND]: (input, ctx) =>
      runRepoDelete(
        { dataDir: deps.config.dataDir },
        input as RepoDeleteInput,
        ctx,
      ),
    [REPO_VALIDATE_KIND]: (input, ctx) =>
      runRepoValidate(
        { db: deps.db, dataDir: deps.config.dataDir },
        input as { repo: string },
        ctx,
      ),
  };
}
