/**
 * @module `cdn-purge`: after an update-repo job made a publish visible, asks each of the
 * repository's CDN purge hooks to drop the files that changed (lib/repos/cdn_purge.ts). Each
 * request is retried with capped exponential backoff and every attempt is logged; requests
 * that still fail fail this job, never the publish, which is already visible at the origin.
 */
import { z } from "zod";
import type { Db } from "../lib/db/db.ts";
import {
  hookHost,
  hostAllowed,
  purgeUrl,
  recordCdnPurge,
} from "../lib/repos/cdn_purge.ts";
import { type CdnPurgeHook, repoStore } from "../lib/repos/repo_store.ts";
import { CDN_SECRET_PREFIX } from "../lib/config.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";

export const CDN_PURGE_KIND = "cdn-purge";

export const CdnPurgeInput = z.object({
  repo: z.string(),
  paths: z.array(z.string()).max(100_000),
  /** Recorded as purged when every request succeeded (lib/repos/cdn_purge.ts). */
  digests: z.record(z.string(), z.string()).default({}),
});

/** How hard to try each request. */
export interface CdnPurgeRetry {
  /** Tries per request, counting the first. */
  attempts: number;
  /** Wait before the first retry; doubles each time, up to {@link MAX_BACKOFF_MS}. */
  retryMs: number;
}

const MAX_BACKOFF_MS = 60_000;
const REQUEST_TIMEOUT_MS = 15_000;
/** Requests in flight at once, over all hooks. */
const CONCURRENCY = 4;

/** What the job needs. */
export interface CdnPurgeDeps {
  db: Db;
  baseUrl: string;
  retry: CdnPurgeRetry;
  /** `FLATYARD_CDN_SECRET_<NAME>` values by NAME (lib/config.ts). */
  secrets: Readonly<Record<string, string>>;
  /** `FLATYARD_CDN_HOSTS`: the hosts hooks may call; undefined: any. */
  hosts?: readonly string[] | undefined;
}

/** A hook's headers with each `{secret:NAME}` filled in; throws for a secret not set. */
function hookHeaders(
  hook: CdnPurgeHook,
  secrets: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, template] of Object.entries(hook.headers ?? {})) {
    out[name] = template.replace(
      /\{secret:([A-Z0-9_]+)\}/g,
      (_m, key: string) => {
        const value = secrets[key];
        if (value === undefined) {
          throw new PermanentJobError(
            `CDN purge header "${name}" of ${hook.method} ${hook.url} uses {secret:${key}}, ` +
              `but ${CDN_SECRET_PREFIX}${key} is not set on the server`,
          );
        }
        return value;
      },
    );
  }
  return out;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Purges `input.paths` of repository `input.repo` through its configured hooks. */
export async function runCdnPurge(
  deps: CdnPurgeDeps,
  input: z.infer<typeof CdnPurgeInput>,
  { log, signal }: Pick<JobContext, "log" | "signal">,
): Promise<{ requests: number }> {
  const repo = await repoStore.get(deps.db, input.repo);
  if (!repo) {
    throw new PermanentJobError(`Cannot find repository "${input.repo}"`);
  }
  // The hooks as configured now: one removed since the publish is not called.
  const requests = new Map<
    string,
    { method: string; url: string; headers: Record<string, string> }
  >();
  for (const hook of repo.cdnPurge) {
    // Before any request: a host the operator does not allow (a hook saved before the list
    // was set) or a secret missing on this server fails the job at once, clearly.
    const host = hookHost(hook);
    if (!hostAllowed(host, deps.hosts)) {
      throw new PermanentJobError(
        `CDN purge hook ${hook.method} ${hook.url} calls host "${host}", which FLATYARD_CDN_HOSTS does not allow`,
      );
    }
    const headers = hookHeaders(hook, deps.secrets);
    for (const path of input.paths) {
      const url = purgeUrl(hook, repo, deps.baseUrl, path);
      // Header values (secrets) stay out of the key, which is never logged anyway.
      requests.set(
        `${hook.method} ${url} ${JSON.stringify(hook.headers ?? {})}`,
        { method: hook.method, url, headers },
      );
    }
  }
  if (requests.size === 0) {
    await log(`Repository "${repo.name}" has no CDN purge hooks`);
    await recordCdnPurge(deps.db, repo, input.digests);
    return { requests: 0 };
  }
  await log(
    `Purging ${input.paths.length} path(s) through ${repo.cdnPurge.length} hook(s): ${requests.size} request(s)`,
  );
  const { attempts, retryMs } = deps.retry;
  const failures: string[] = [];

  async function purge(
    r: { method: string; url: string; headers: Record<string, string> },
  ): Promise<void> {
    for (let attempt = 1;; attempt++) {
      let outcome: string;
      try {
        const res = await fetch(r.url, {
          method: r.method,
          headers: r.headers,
          redirect: "manual",
          signal: AbortSignal.any([
            signal,
            AbortSignal.timeout(REQUEST_TIMEOUT_MS),
          ]),
        });
        await res.body?.cancel();
        if (res.status >= 200 && res.status < 300) {
          await log(
            `${r.method} ${r.url}: HTTP ${res.status} (attempt ${attempt}/${attempts})`,
          );
          return;
        }
        outcome = `HTTP ${res.status}`;
      } catch (err) {
        if (signal.aborted) throw err;
        outcome = err instanceof Error ? err.message : String(err);
      }
      if (attempt >= attempts) {
        await log(
          `${r.method} ${r.url}: ${outcome} (attempt ${attempt}/${attempts}), giving up`,
        );
        failures.push(`${r.method} ${r.url}: ${outcome}`);
        return;
      }
      const wait = Math.min(MAX_BACKOFF_MS, retryMs * 2 ** (attempt - 1));
      await log(
        `${r.method} ${r.url}: ${outcome} (attempt ${attempt}/${attempts}), retrying in ${wait} ms`,
      );
      await sleep(wait, signal);
    }
  }

  const queue = [...requests.values()];
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
      for (let r = queue.shift(); r; r = queue.shift()) await purge(r);
    }),
  );
  if (failures.length > 0) {
    throw new PermanentJobError(
      `CDN purge failed for ${failures.length} of ${requests.size} request(s) after ${attempts} attempt(s) each: ${
        failures.slice(0, 3).join("; ")
      }${failures.length > 3 ? "; …" : ""}`,
    );
  }
  await recordCdnPurge(deps.db, repo, input.digests);
  return { requests: requests.size };
}
