/**
 * Large artifacts end to end: real `flatpak build-bundle` bundles uploaded in Content-Range chunks
 * to a served Flatyard, one of them cut off mid-chunk and resumed from `received`, the other sent
 * by the client through dropped connections and lost responses; the wrong starts, totals and
 * ranges, and a wrong checksum, refused with the right problem; then imported, committed,
 * published, installed with flatpak from the served .flatpakrepo, and run.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { Validator } from "@seriousme/openapi-schema-validator";
import { join } from "node:path";
import { ARTIFACT_IMPORT_KIND } from "../jobs/artifact_import.ts";
import { createJobHandlers } from "../jobs/registry.ts";
import { artifactPaths } from "../lib/artifacts/chunk_upload.ts";
import { reconcileBuilds } from "../lib/builds/build_store.ts";
import {
  type ArtifactRecord,
  type ArtifactTransport,
  sha256File,
  uploadArtifact,
} from "../lib/client/artifact_upload.ts";
import {
  ConnectionError,
  type HttpRequest,
  nodeTransport,
} from "../lib/client/http_transport.ts";
import { serveApp } from "../lib/http/node_server.ts";
import { silentLogger } from "../lib/logger.ts";
import { run } from "../lib/ostree/cli.ts";
import { startWorker } from "../lib/queue/worker.ts";
import { MAX_ARTIFACT_BYTES } from "../routes/artifacts/schema.ts";
import { expectJson, type TestApp, testApp } from "./support/app.ts";
import { addRemote, installFrom } from "./support/flatpak_client.ts";
import { dbTest } from "./support/db.ts";
import {
  cachedFixtureRepo,
  type FixtureRepo,
  helloOutput,
  hostArch,
  isolatedFlatpakEnv,
  PLATFORM_ID,
} from "./support/flatpak_fixtures.ts";
import type { Db } from "../lib/db/db.ts";

/** Mounts the artifact routes unless lib/app.ts already does; before the app's first request. */
const mainTs = new URL("../main.ts", import.meta.url).pathname;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function until(
  what: string,
  ok: () => Promise<boolean>,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await ok()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The app bundle and the runtime it needs, made by `flatpak build-bundle` from a fixture. */
async function makeBundles(fixture: FixtureRepo, dir: string) {
  const app = join(dir, `${fixture.appId}.flatpak`);
  const platform = join(dir, "platform.flatpak");
  await run("flatpak", [
    "build-bundle",
    fixture.repo,
    app,
    fixture.appId,
    fixture.branch,
  ]);
  await run("flatpak", [
    "build-bundle",
    "--runtime",
    fixture.repo,
    platform,
    PLATFORM_ID,
    fixture.runtimeVersion,
  ]);
  return {
    app: {
      path: app,
      ref: `app/${fixture.appId}/${hostArch()}/${fixture.branch}`,
    },
    platform: {
      path: platform,
      ref: `runtime/${PLATFORM_ID}/${hostArch()}/${fixture.runtimeVersion}`,
    },
  };
}

// deno-lint-ignore no-explicit-any -- tests read whatever shape they assert on
type Reply = { status: number; headers: Headers; json: any };

interface Served {
  a: TestApp;
  base: string;
  token: string;
  session: string;
  /** JSON in and out, with the build token unless `token` is given. */
  call(
    method: string,
    path: string,
    opts?: { body?: unknown; token?: string },
  ): Promise<Reply>;
  /** PUTs one chunk. */
  put(
    url: string,
    range: string,
    bytes: Uint8Array<ArrayBuffer>,
  ): Promise<Reply>;
  newBuild(): Promise<number>;
  close(): Promise<void>;
}

/** A served Flatyard with a worker that also runs artifact imports, and a signed repository. */
async function serve(db: Db): Promise<Served> {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const a = await testApp(db, { env: { FLATYARD_BASE_URL: base } });
  const server = await serveApp(a.app, { hostname: "127.0.0.1", port });
  const worker = await startWorker({
    queue: a.deps.queue,
    bus: a.deps.bus,
    logger: silentLogger,
    handlers: createJobHandlers(a.deps),
    concurrency: 2,
    leaseSeconds: 30,
    pollMs: 100,
    onTick: async () => void await reconcileBuilds(a.deps.db),
  });
  await a.user("root", "admin");
  const session = await a.login("root");
  await expectJson(
    await a.req("POST", "/api/v1/repos", {
      token: session,
      body: { name: "stable" },
    }),
    201,
  );
  await expectJson(
    await a.req("POST", "/api/v1/repos/stable/keys", {
      token: session,
      body: { generate: { algorithm: "eddsa-legacy" } },
    }),
    201,
  );
  const token = await a.token();
  const parse = async (res: Response) => {
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      json: text ? JSON.parse(text) : undefined,
    };
  };
  const call: Served["call"] = async (method, path, opts = {}) =>
    parse(
      await fetch(base + path, {
        method,
        headers: {
          Authorization: `Bearer ${opts.token ?? token}`,
          ...(opts.body === undefined
            ? {}
            : { "Content-Type": "application/json" }),
        },
        ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
      }),
    );
  return {
    a,
    base,
    token,
    session,
    call,
    put: async (url, range, bytes) =>
      parse(
        await fetch(url, {
          method: "PUT",
          headers: { Authorization: `Bearer ${token}`, "Content-Range": range },
          body: bytes,
        }),
      ),
    async newBuild() {
      const r = await call("POST", "/api/v1/build", {
        body: { repo: "stable" },
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return r.json.id as number;
    },
    async close() {
      await worker.stop();
      await server.shutdown();
      await a.close();
    },
  };
}

/**
 * Starts a PUT of `chunk` with its full Content-Length, sends the first `sent` bytes, waits
 * until the server has written them, and drops the connection: a client that died mid-chunk.
 */
async function cutPut(
  url: string,
  headers: Record<string, string>,
  chunk: AsyncIterable<Uint8Array> | Uint8Array,
  length: number,
  sent: number,
  stored: () => Promise<boolean>,
): Promise<void> {
  const req = http.request(url, {
    method: "PUT",
    headers: { ...headers, "Content-Length": String(length) },
  });
  const closed = new Promise((r) => req.on("close", r));
  req.on("error", () => {});
  let left = sent;
  for await (const piece of chunk instanceof Uint8Array ? [chunk] : chunk) {
    if (left === 0) break;
    const part = piece.subarray(0, left);
    req.write(part);
    left -= part.length;
  }
  await until("the server to store the bytes sent", stored);
  req.destroy();
  await closed;
}

/**
 * The real transport, with two faults: PUT number `cutAt` loses its connection halfway through
 * its body (after the server stored that half), PUT number `loseAt` reaches the server but its
 * answer is lost.
 */
function faultyTransport(
  partSize: (url: string) => Promise<number>,
  plan: { cutAt: number; loseAt: number },
): { send: ArtifactTransport; faults: string[]; [Symbol.dispose](): void } {
  const real = nodeTransport();
  const faults: string[] = [];
  let puts = 0;
  const send: ArtifactTransport = async (req) => {
    if (req.method !== "PUT") return real.send(req as unknown as HttpRequest);
    puts++;
    const body = req.body as {
      length: number;
      stream: () => AsyncIterable<Uint8Array>;
    };
    if (puts === plan.cutAt) {
      const start = Number(
        /^bytes (\d+)-/.exec(req.headers["Content-Range"]!)![1],
      );
      const half = Math.floor(body.length / 2);
      await cutPut(
        req.url,
        req.headers,
        body.stream(),
        body.length,
        half,
        async () => await partSize(req.url) >= start + half,
      );
      faults.push(`cut PUT ${puts} after ${half} of ${body.length} bytes`);
      throw new ConnectionError("Connection reset (test)", "ECONNRESET");
    }
    const res = await real.send(req as unknown as HttpRequest);
    if (puts === plan.loseAt) {
      faults.push(`lost the ${res.status} answer of PUT ${puts}`);
      throw new ConnectionError("Connection reset (test)", "ECONNRESET");
    }
    return res;
  };
  return { send, faults, [Symbol.dispose]: () => real[Symbol.dispose]() };
}

dbTest(
  "artifacts: chunked bundles survive interruptions, import, commit, publish, install and run",
  async (db, t) => {
    const s = await serve(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-artifacts-" });
    try {
      const bundles = await makeBundles(fixture, work);
      const id = await s.newBuild();
      const platformBytes = await Deno.readFile(bundles.platform.path);
      const size = platformBytes.length;
      const chunk = 128 * 1024;
      assert.ok(size > 3 * chunk, `the runtime bundle is only ${size} bytes`);
      const part = (aid: number) =>
        artifactPaths(s.a.deps.config.dataDir, id, aid).part;
      const partSize = (aid: number) =>
        Deno.stat(part(aid)).then((x) => x.size, () => 0);
      let platform: ArtifactRecord;

      await t.step(
        "POST creates the artifact with where to upload it",
        async () => {
          const r = await s.call("POST", `/api/v1/build/${id}/artifacts`, {
            body: {
              name: "platform.flatpak",
              size,
              sha256: await sha256File(bundles.platform.path),
            },
          });
          assert.equal(r.status, 201, JSON.stringify(r.json));
          assert.equal(r.json.received, 0);
          assert.equal(r.json.status, "uploading");
          assert.equal(r.json.uploader, "token:default");
          assert.equal(
            r.json.uploadUrl,
            `${s.base}/api/v1/build/${id}/artifacts/${r.json.id}`,
          );
          assert.equal(r.headers.get("location"), r.json.uploadUrl);
          platform = r.json;
        },
      );

      await t.step("the first chunk is stored", async () => {
        const r = await s.put(
          platform.uploadUrl,
          `bytes 0-${chunk - 1}/${size}`,
          platformBytes.slice(0, chunk),
        );
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.equal(r.json.received, chunk);
        assert.equal(r.headers.get("upload-offset"), String(chunk));
      });

      const cutAt = chunk + 5000;
      await t.step(
        "a client that dies mid-chunk leaves every byte that arrived",
        async () => {
          await cutPut(
            platform.uploadUrl,
            {
              Authorization: `Bearer ${s.token}`,
              "Content-Range": `bytes ${chunk}-${2 * chunk - 1}/${size}`,
            },
            platformBytes.slice(chunk, 2 * chunk),
            chunk,
            5000,
            async () => await partSize(platform.id) >= cutAt,
          );
          await until(
            "the server to record the cut chunk",
            async () =>
              (await s.call("GET", new URL(platform.uploadUrl).pathname)).json
                .received === cutAt,
          );
          const head = await fetch(platform.uploadUrl, {
            method: "HEAD",
            headers: { Authorization: `Bearer ${s.token}` },
          });
          await head.body?.cancel();
          assert.equal(head.status, 200);
          assert.equal(head.headers.get("upload-offset"), String(cutAt));
          assert.equal(head.headers.get("range"), `bytes=0-${cutAt - 1}`);
        },
      );

      await t.step(
        "a chunk from the wrong start is refused with the offset to resume from",
        async () => {
          for (const start of [chunk, 0, cutAt + 1]) {
            const r = await s.put(
              platform.uploadUrl,
              `bytes ${start}-${start + 99}/${size}`,
              platformBytes.slice(start, start + 100),
            );
            assert.equal(
              r.status,
              409,
              `start ${start}: ${JSON.stringify(r.json)}`,
            );
            assert.equal(
              r.headers.get("content-type"),
              "application/problem+json",
            );
            assert.equal(r.json.received, cutAt);
            assert.equal(r.headers.get("range"), `bytes=0-${cutAt - 1}`);
            assert.match(r.json.detail, new RegExp(`resume from ${cutAt}`));
          }
        },
      );

      await t.step("a wrong total is refused (400)", async () => {
        const r = await s.put(
          platform.uploadUrl,
          `bytes ${cutAt}-${cutAt + 99}/${size + 1}`,
          platformBytes.slice(cutAt, cutAt + 100),
        );
        assert.equal(r.status, 400, JSON.stringify(r.json));
        assert.match(r.json.detail, /total/);
      });

      await t.step("a chunk past the end is refused (416)", async () => {
        const r = await s.put(
          platform.uploadUrl,
          `bytes ${cutAt}-${size}/${size}`,
          platformBytes.slice(cutAt, size + 1),
        );
        assert.equal(r.status, 416, JSON.stringify(r.json));
        assert.equal(r.headers.get("content-range"), `bytes */${size}`);
      });

      await t.step(
        "a malformed Content-Range is refused: 422 for its grammar, 400 for END < START",
        async () => {
          const cases: [string, number][] = [
            ["bytes=0-99", 422],
            [`bytes ${cutAt}-${cutAt + 99}/*`, 422],
            [`bytes ${cutAt + 99}-${cutAt}/${size}`, 400],
          ];
          for (const [range, status] of cases) {
            const r = await s.put(
              platform.uploadUrl,
              range,
              new Uint8Array(100),
            );
            assert.equal(
              r.status,
              status,
              `${range}: ${JSON.stringify(r.json)}`,
            );
          }
          const r = await fetch(platform.uploadUrl, {
            method: "PUT",
            headers: { Authorization: `Bearer ${s.token}` },
            body: "x",
          });
          const problem = await r.json();
          assert.equal(r.status, 422);
          assert.equal(problem.errors[0].path, "content-range");
        },
      );

      await t.step(
        "none of the refused requests moved the offset",
        async () => {
          assert.equal(
            (await s.call("GET", new URL(platform.uploadUrl).pathname)).json
              .received,
            cutAt,
          );
          assert.equal(await partSize(platform.id), cutAt);
        },
      );

      await t.step(
        "the client resumes from received and completes; the ref is read from the bundle",
        async () => {
          const seen: number[] = [];
          platform = await uploadArtifact({
            buildUrl: `${s.base}/api/v1/build/${id}`,
            token: s.token,
            path: bundles.platform.path,
            resumeUrl: platform.uploadUrl,
            chunkSize: chunk,
            onProgress: (n) => seen.push(n),
          });
          assert.equal(
            seen[0],
            cutAt + chunk,
            "the first chunk starts at received",
          );
          assert.equal(platform.status, "complete");
          assert.equal(platform.received, size);
          assert.equal(platform.ref, bundles.platform.ref);
          assert.equal(platform.commit, fixture.commits[bundles.platform.ref]);
          const bundle =
            artifactPaths(s.a.deps.config.dataDir, id, platform.id).bundle;
          assert.deepEqual(await Deno.readFile(bundle), platformBytes);
          await assert.rejects(
            Deno.stat(part(platform.id)),
            Deno.errors.NotFound,
          );
        },
      );

      await t.step("a chunk after completion is refused (409)", async () => {
        const r = await s.put(
          platform.uploadUrl,
          `bytes 0-99/${size}`,
          platformBytes.slice(0, 100),
        );
        assert.equal(r.status, 409);
        assert.equal(r.json.artifactStatus, "complete");
      });

      let app: ArtifactRecord;
      await t.step(
        "the client rides out a dropped connection and a lost answer",
        async () => {
          const log: string[] = [];
          using faulty = faultyTransport(
            async (url) => await partSize(Number(url.split("/").pop())),
            { cutAt: 2, loseAt: 4 },
          );
          app = await uploadArtifact({
            buildUrl: `${s.base}/api/v1/build/${id}`,
            token: s.token,
            path: bundles.app.path,
            chunkSize: 1024,
            transport: faulty.send,
            retry: { initialDelayMs: 10, maxDelayMs: 50 },
            log: (l) => log.push(l),
          });
          assert.equal(faulty.faults.length, 2, faulty.faults.join("; "));
          assert.ok(log.some((l) => /retry/.test(l)), log.join("\n"));
          assert.equal(app.status, "complete");
          assert.equal(app.ref, bundles.app.ref);
          assert.equal(app.commit, fixture.commits[bundles.app.ref]);
        },
      );

      await t.step(
        "both bundles import into the build as build refs",
        async () => {
          for (const artifact of [platform, app]) {
            const path = new URL(artifact.uploadUrl).pathname;
            const r = await s.call("POST", `${path}/import`);
            assert.equal(r.status, 202, JSON.stringify(r.json));
            assert.equal(r.json.kind, ARTIFACT_IMPORT_KIND);
            assert.equal(
              r.headers.get("location"),
              `${artifact.uploadUrl}/import`,
            );
            let job = r.json;
            await until("the import job", async () => {
              job = (await s.call("GET", `${path}/import`)).json;
              return ["succeeded", "failed", "cancelled"].includes(job.status);
            }, 60_000);
            assert.equal(
              job.status,
              "succeeded",
              (await s.a.deps.queue.readLog(job.id)).text,
            );
            assert.deepEqual(job.result, {
              ref: artifact.ref,
              commit: artifact.commit,
            });
            assert.match(
              (await s.a.deps.queue.readLog(job.id)).text,
              /Importing/,
            );
          }
          const refs =
            (await s.call("GET", `/api/v1/build/${id}/extended`)).json
              .build_refs;
          assert.deepEqual(
            Object.fromEntries(
              refs.map((
                r: { ref_name: string; commit: string },
              ) => [r.ref_name, r.commit]),
            ),
            {
              [bundles.app.ref]: app.commit,
              [bundles.platform.ref]: platform.commit,
            },
          );
        },
      );

      await t.step(
        "the build commits and publishes through the flat-manager endpoints",
        async () => {
          const wait = async (jobId: number) => {
            await until(`job ${jobId}`, async () => {
              const j = await s.a.deps.queue.get(jobId);
              return ["succeeded", "failed", "cancelled"].includes(j!.status);
            }, 120_000);
            const j = (await s.a.deps.queue.get(jobId))!;
            assert.equal(
              j.status,
              "succeeded",
              (await s.a.deps.queue.readLog(jobId)).text,
            );
            return j;
          };
          const commit = await s.call("POST", `/api/v1/build/${id}/commit`, {
            body: { endoflife: null, endoflife_rebase: null },
          });
          assert.equal(commit.status, 200, JSON.stringify(commit.json));
          await wait(commit.json.id);
          const publish = await s.call("POST", `/api/v1/build/${id}/publish`, {
            body: {},
          });
          assert.equal(publish.status, 200, JSON.stringify(publish.json));
          const done = await wait(publish.json.id);
          await wait(
            (done.result as { "update-repo-job": number })["update-repo-job"],
          );
        },
      );

      await t.step(
        "flatpak installs the app from the served .flatpakrepo and it runs",
        async () => {
          const env = await isolatedFlatpakEnv(join(work, "client"));
          await addRemote(env, "yard", `${s.base}/repo/stable.flatpakrepo`);
          await installFrom(env, "yard", fixture.appId);
          assert.equal(
            (await run("flatpak", ["--user", "run", fixture.appId], { env }))
              .trim(),
            helloOutput(fixture.appId, hostArch()),
          );
        },
      );

      await t.step(
        "flatyard push-bundle uploads in chunks and imports; a bad bundle fails clearly",
        async () => {
          const cli = async (...args: string[]) => {
            const r = await new Deno.Command(Deno.execPath(), {
              args: ["run", "-A", mainTs, "push-bundle", ...args],
              clearEnv: true,
              env: {
                PATH: Deno.env.get("PATH") ?? "",
                HOME: Deno.env.get("HOME") ?? "",
                REPO_TOKEN: s.token,
              },
              stdout: "piped",
              stderr: "piped",
            }).output();
            return {
              code: r.code,
              out: new TextDecoder().decode(r.stdout),
              err: new TextDecoder().decode(r.stderr),
            };
          };
          const build = await s.newBuild();
          const buildUrl = `${s.base}/api/v1/build/${build}`;
          const ok = await cli(
            "--chunk-size",
            "0.25",
            buildUrl,
            bundles.app.path,
          );
          assert.equal(ok.code, 0, `${ok.out}\n${ok.err}`);
          assert.match(ok.err, /uploaded [\d.]+\/[\d.]+ MiB, [\d.]+ MiB\/s/);
          assert.match(ok.out, new RegExp(`imported ${bundles.app.ref}`));
          const ext = await s.call("GET", `/api/v1/build/${build}/extended`);
          assert.deepEqual(
            ext.json.build_refs.map((r: { ref_name: string }) => r.ref_name),
            [bundles.app.ref],
          );

          const junk = join(work, "junk.flatpak");
          await Deno.writeFile(junk, new Uint8Array(4096).fill(7));
          const bad = await cli(buildUrl, junk);
          assert.equal(bad.code, 1, `${bad.out}\n${bad.err}`);
          assert.match(bad.err, /^push-bundle failed: .*422/m);
        },
      );
    } finally {
      await s.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);

dbTest(
  "artifacts: the OpenAPI document with the artifact routes is valid OpenAPI 3.1",
  async (db) => {
    const a = await testApp(db);
    try {
      const doc = await expectJson(
        await a.req("GET", "/api/v1/openapi.json"),
        200,
      );
      assert.deepEqual(
        Object.keys(doc.paths).filter((p) => p.includes("/artifacts")).sort(),
        [
          "/api/v1/build/{id}/artifacts",
          "/api/v1/build/{id}/artifacts/{aid}",
          "/api/v1/build/{id}/artifacts/{aid}/content",
          "/api/v1/build/{id}/artifacts/{aid}/import",
        ],
      );
      const chunk = doc.paths["/api/v1/build/{id}/artifacts/{aid}"].put;
      assert.ok(chunk.security.length > 0);
      assert.ok(chunk.requestBody.content["application/octet-stream"]);
      assert.deepEqual(Object.keys(chunk.responses).sort(), [
        "200",
        "400",
        "401",
        "403",
        "404",
        "408",
        "409",
        "416",
        "422",
      ]);
      const validator = new Validator();
      const result = await validator.validate(doc);
      assert.ok(result.valid, JSON.stringify(result.errors, null, 2));
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "artifacts: a file that does not match its sha256 is refused (422) and nothing of it is kept",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("root", "admin");
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: await a.login("root"),
          body: { name: "stable" },
        }),
        201,
      );
      const token = await a.token();
      const build = await expectJson(
        await a.req("POST", "/api/v1/build", {
          token,
          body: { repo: "stable" },
        }),
        200,
      );
      const bytes = crypto.getRandomValues(new Uint8Array(3000));
      const created = await expectJson(
        await a.req("POST", `/api/v1/build/${build.id}/artifacts`, {
          token,
          body: {
            name: "app.flatpak",
            size: bytes.length,
            sha256: "0".repeat(64),
          },
        }),
        201,
      );
      const path = `/api/v1/build/${build.id}/artifacts/${created.id}`;
      const put = (start: number, end: number) =>
        a.app.request(path, {
          method: "PUT",
          headers: {
            Authorization: `Bearer ${token}`,
            "Content-Range": `bytes ${start}-${end}/${bytes.length}`,
          },
          body: bytes.slice(start, end + 1),
        });
      await expectJson(await put(0, 1999), 200);
      const last = await put(2000, 2999);
      assert.equal(
        last.headers.get("content-type"),
        "application/problem+json",
      );
      const problem = await expectJson(last, 422);
      assert.match(problem.detail, /sha256/);
      assert.equal(problem.artifactStatus, "failed");
      const record = await expectJson(await a.req("GET", path, { token }), 200);
      assert.equal(record.status, "failed");
      assert.equal(record.received, 0);
      assert.match(record.error, /sha256/);
      const dir =
        artifactPaths(a.deps.config.dataDir, build.id, created.id).dir;
      assert.deepEqual(
        [...Deno.readDirSync(dir)],
        [],
        "the part file is deleted",
      );
      assert.equal(
        (await expectJson(await put(0, 999), 409)).artifactStatus,
        "failed",
      );
      await expectJson(await a.req("POST", `${path}/import`, { token }), 409);
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "artifacts: tokens, builds, names and states are checked like flat-manager's build endpoints",
  async (db, t) => {
    const a = await testApp(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      await a.user("root", "admin");
      const session = await a.login("root");
      for (const name of ["stable", "beta"]) {
        await expectJson(
          await a.req("POST", "/api/v1/repos", {
            token: session,
            body: { name },
          }),
          201,
        );
      }
      const token = await a.token();
      const build = (await expectJson(
        await a.req("POST", "/api/v1/build", {
          token,
          body: { repo: "stable" },
        }),
        200,
      )).id;
      const other = (await expectJson(
        await a.req("POST", "/api/v1/build", {
          token,
          body: { repo: "stable" },
        }),
        200,
      )).id;
      const bundles = await makeBundles(fixture, fixture.dir);
      const bytes = await Deno.readFile(bundles.app.path);
      const create = {
        name: "app.flatpak",
        size: bytes.length,
        sha256: await sha256File(bundles.app.path),
      };
      const created = await expectJson(
        await a.req("POST", `/api/v1/build/${build}/artifacts`, {
          token,
          body: create,
        }),
        201,
      );
      const path = `/api/v1/build/${build}/artifacts/${created.id}`;

      await t.step("security: who may create, read and upload", async () => {
        const cases: [string, string | undefined, string, string, number][] = [
          [
            "no token",
            undefined,
            "POST",
            `/api/v1/build/${build}/artifacts`,
            401,
          ],
          [
            "a login session",
            session,
            "POST",
            `/api/v1/build/${build}/artifacts`,
            403,
          ],
          [
            "an expired token",
            await a.token({ exp: 1000 }),
            "POST",
            `/api/v1/build/${build}/artifacts`,
            401,
          ],
          ["a garbage token", "not.a.jwt", "GET", path, 401],
          [
            "another build's sub",
            await a.token({ sub: `build/${other}` }),
            "POST",
            `/api/v1/build/${build}/artifacts`,
            403,
          ],
          [
            "no upload scope",
            await a.token({ scope: ["build", "download"] }),
            "POST",
            `/api/v1/build/${build}/artifacts`,
            403,
          ],
          [
            "no build or upload scope",
            await a.token({ scope: ["download"] }),
            "GET",
            path,
            403,
          ],
          [
            "another repo",
            await a.token({ repos: ["beta"] }),
            "GET",
            path,
            403,
          ],
          [
            "an unknown build",
            token,
            "POST",
            `/api/v1/build/99999/artifacts`,
            404,
          ],
          [
            "another build's artifact",
            token,
            "GET",
            `/api/v1/build/${other}/artifacts/${created.id}`,
            404,
          ],
          [
            "an unknown artifact",
            token,
            "GET",
            `/api/v1/build/${build}/artifacts/99999`,
            404,
          ],
        ];
        for (const [name, tok, method, url, status] of cases) {
          const res = await a.req(method, url, {
            ...(tok === undefined ? {} : { token: tok }),
            ...(method === "POST" ? { body: create } : {}),
          });
          assert.equal(
            res.status,
            status,
            `${name}: ${await res.clone().text()}`,
          );
          assert.equal(
            res.headers.get("content-type"),
            "application/problem+json",
            name,
          );
          await res.body?.cancel();
        }
        // The build's own sub, read with the build scope only, is fine.
        await expectJson(
          await a.req("GET", path, {
            token: await a.token({ sub: `build/${build}`, scope: ["build"] }),
          }),
          200,
        );
      });

      await t.step("validation: names, sizes and checksums", async () => {
        const bad: Record<string, unknown>[] = [
          { ...create, name: "../app.flatpak" },
          { ...create, name: "app.tar" },
          { ...create, name: ".flatpak" },
          { ...create, size: 0 },
          { ...create, size: MAX_ARTIFACT_BYTES + 1 },
          { ...create, size: 1.5 },
          { ...create, sha256: "A".repeat(64) },
          { ...create, extra: true },
          { name: create.name, size: create.size },
        ];
        for (const body of bad) {
          const problem = await expectJson(
            await a.req("POST", `/api/v1/build/${build}/artifacts`, {
              token,
              body,
            }),
            422,
          );
          assert.ok(problem.errors.length > 0, JSON.stringify(body));
        }
      });

      await t.step(
        "import needs a complete artifact and a token whose prefixes allow its ref",
        async () => {
          const early = await expectJson(
            await a.req("POST", `${path}/import`, { token }),
            409,
          );
          assert.equal(early.artifactStatus, "uploading");
          await expectJson(
            await a.req("GET", `${path}/import`, { token }),
            404,
          );
          const put = await a.app.request(path, {
            method: "PUT",
            headers: {
              Authorization: `Bearer ${token}`,
              "Content-Range": `bytes 0-${bytes.length - 1}/${bytes.length}`,
            },
            body: bytes,
          });
          assert.equal((await expectJson(put, 200)).status, "complete");
          const denied = await expectJson(
            await a.req("POST", `${path}/import`, {
              token: await a.token({ prefixes: ["org.other"] }),
            }),
            403,
          );
          assert.match(denied.detail, /not matching prefix/);
        },
      );

      await t.step(
        "a build that is no longer uploading takes no artifacts",
        async () => {
          await expectJson(
            await a.req("POST", `/api/v1/build/${build}/commit`, {
              token,
              body: { endoflife: null, endoflife_rebase: null },
            }),
            200,
          );
          const problem = await expectJson(
            await a.req("POST", `/api/v1/build/${build}/artifacts`, {
              token,
              body: create,
            }),
            409,
          );
          assert.match(problem.detail, /not uploading/);
          await expectJson(
            await a.req("POST", `${path}/import`, { token }),
            409,
          );
        },
      );
    } finally {
      await a.close();
    }
  },
);
