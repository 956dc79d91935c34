/**
 * @module A running Flatyard for pipeline tests: a test app served over HTTP with a worker, an
 * admin session, a repository with a signing key, a log of the requests the server answered,
 * and a small flat-manager uploader (the protocol's request sequence, without the CLI).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createJobHandlers } from "../../jobs/registry.ts";
import { reconcileBuilds } from "../../lib/builds/build_store.ts";
import { serveApp } from "../../lib/http/node_server.ts";
import { createLogger } from "../../lib/logger.ts";
import { startWorker } from "../../lib/queue/worker.ts";
import type { Db } from "../../lib/db/db.ts";
import type { Deps } from "../../lib/deps.ts";
import type { Runner } from "../../lib/runners/runner.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { expectJson, type TestApp, testApp } from "./app.ts";

export interface Pipeline {
  a: TestApp;
  base: string;
  port: number;
  /** Paths the server answered, in order, with their status. */
  requests: { path: string; status: number }[];
  session: string;
  token: string;
  /** Calls the API with the main token; JSON in and out. */
  api(
    method: string,
    path: string,
    body?: unknown,
    // deno-lint-ignore no-explicit-any -- tests read whatever shape they assert on
  ): Promise<{ status: number; json: any }>;
  /** Uploads every object of `repo` to a new build, registers `refs`, and returns the build id. */
  pushObjects(
    repo: string,
    refs: Record<string, string>,
    appId?: string,
  ): Promise<number>;
  /**
   * `flatyard push --repo <repo> --app-id <appId> --publish --wait-update <base> <repoPath>` as
   * a CI job runs it (a subprocess, the token in REPO_TOKEN).
   */
  pushWithCli(
    repoPath: string,
    appId: string,
  ): Promise<{ code: number; out: string; err: string }>;
  /** Waits until job `id` has ended and returns it. */
  waitJob(
    id: number,
  ): Promise<{ status: string; error: string | null; result: unknown }>;
  close(): Promise<void>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Starts a pipeline with repository `repo` (a key generated unless `sign` is false). */
export async function startPipeline(
  db: Db,
  repo = "stable",
  opts: {
    sign?: boolean;
    collectionId?: string;
    /** A private repository: its files need a download token. */
    private?: boolean;
    /** Sub-apps to serve beside createApp's (routes not yet mounted there). */
    routes?: (deps: Deps) => OpenAPIHono<AppEnv>[];
    /** More configuration (FLATYARD_HOOKS_FILE, …). */
    env?: Record<string, string>;
    /** The build runner (default: the configured one, i.e. the local runner). */
    runner?: Runner;
    /** Jobs the worker runs at once (default 2). */
    concurrency?: number;
  } = {},
): Promise<Pipeline> {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const requests: { path: string; status: number }[] = [];
  const logger = createLogger("info", (r) => {
    if (r.msg === "request") {
      requests.push({ path: String(r.path), status: Number(r.status) });
    }
    // Server errors are always worth seeing in a failing test's output.
    if (r.level === "error") {
      Deno.stderr.writeSync(new TextEncoder().encode(JSON.stringify(r) + "\n"));
    }
  });
  const a = await testApp(db, {
    env: { FLATYARD_BASE_URL: base, ...opts.env },
  });
  // The request log is what the tests read; swap the logger in before serving.
  (a.deps as { logger: typeof logger }).logger = logger;
  const { createApp, createFastPath } = await import("../../lib/app.ts");
  const app = createApp(a.deps);
  for (const r of opts.routes?.(a.deps) ?? []) app.route("/", r);
  const server = await serveApp(app, {
    hostname: "127.0.0.1",
    port,
    fastPath: createFastPath(a.deps),
  });
  const worker = await startWorker({
    queue: a.deps.queue,
    bus: a.deps.bus,
    logger: createLogger("error", () => {}),
    handlers: createJobHandlers(
      a.deps,
      opts.runner ? { runner: opts.runner } : {},
    ),
    concurrency: opts.concurrency ?? 2,
    leaseSeconds: 30,
    pollMs: 100,
    onTick: async () => void await reconcileBuilds(a.deps.db),
  });
  await a.user("root", "admin");
  const session = await a.login("root");
  await expectJson(
    await a.req("POST", "/api/v1/repos", {
      token: session,
      body: {
        name: repo,
        title: "Pipeline",
        ...(opts.collectionId ? { collectionId: opts.collectionId } : {}),
        ...(opts.private ? { public: false } : {}),
      },
    }),
    201,
  );
  if (opts.sign !== false) {
    await expectJson(
      await a.req("POST", `/api/v1/repos/${repo}/keys`, {
        token: session,
        body: { generate: { algorithm: "eddsa-legacy" } },
      }),
      201,
    );
  }
  const token = await a.token();
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  const waitJob = async (id: number) => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const job = await a.deps.queue.get(id);
      if (job && ["succeeded", "failed", "cancelled"].includes(job.status)) {
        return job;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Job ${id} still ${job?.status} after 120 s: ${
            (await a.deps.queue.readLog(id)).text
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const pushObjects = async (
    repoPath: string,
    refs: Record<string, string>,
    appId?: string,
  ) => {
    const created = await api("POST", "/api/v1/build", {
      repo,
      ...(appId ? { "app-id": appId } : {}),
    });
    if (created.status !== 200) {
      throw new Error(`create build: ${JSON.stringify(created.json)}`);
    }
    const id = created.json.id as number;
    const files: { name: string; path: string }[] = [];
    for await (const d of Deno.readDir(join(repoPath, "objects"))) {
      for await (const f of Deno.readDir(join(repoPath, "objects", d.name))) {
        if (/\.(filez|dirtree|dirmeta|commit)$/.test(f.name)) {
          files.push({
            name: d.name + f.name,
            path: join(repoPath, "objects", d.name, f.name),
          });
        }
      }
    }
    // Files first, metadata last (§5.2 step 7), in batches.
    files.sort((x, y) =>
      Number(y.name.endsWith(".filez")) - Number(x.name.endsWith(".filez"))
    );
    for (let i = 0; i < files.length; i += 50) {
      const form = new FormData();
      files.slice(i, i + 50).forEach((f, j) =>
        form.append(`file${j}`, new Blob([Deno.readFileSync(f.path)]), f.name)
      );
      const res = await fetch(`${base}/api/v1/build/${id}/upload`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
        body: form,
      });
      if (res.status !== 200) {
        throw new Error(`upload: ${res.status} ${await res.text()}`);
      }
      await res.body?.cancel();
    }
    for (const [ref, commit] of Object.entries(refs)) {
      const r = await api("POST", `/api/v1/build/${id}/build_ref`, {
        ref,
        commit,
      });
      if (r.status !== 200) {
        throw new Error(`build_ref: ${JSON.stringify(r.json)}`);
      }
    }
    return id;
  };
  const pushWithCli = async (repoPath: string, appId: string) => {
    const cli = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fileURLToPath(new URL("../../main.ts", import.meta.url)),
        "push",
        "--repo",
        repo,
        "--app-id",
        appId,
        "--publish",
        "--wait-update",
        base,
        repoPath,
      ],
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "",
        REPO_TOKEN: token,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: cli.code,
      out: new TextDecoder().decode(cli.stdout),
      err: new TextDecoder().decode(cli.stderr),
    };
  };
  return {
    a,
    base,
    port,
    pushWithCli,
    requests,
    session,
    token,
    api,
    pushObjects,
    waitJob,
    async close() {
      await worker.stop();
      await server.shutdown();
      await a.close();
    },
  };
}
