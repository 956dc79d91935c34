/** @module The job handlers a worker runs, by kind: each wraps a `run<Kind>` from jobs/. */
import type { Deps } from "../lib/deps.ts";
import type { JobHandler } from "../lib/queue/worker.ts";
import { MAINTENANCE_KIND, runMaintenance } from "./maintenance.ts";

/** Every job kind Flatyard runs. */
export function createJobHandlers(deps: Deps): Record<string, JobHandler> {
  return {
    [MAINTENANCE_KIND]: (input, ctx) => runMaintenance(deps, input, ctx),
  };
}
