/**
 * `push` of the flatpak fixture repo (plus a ref with many files and big objects) against an
 * in-process fake flat-manager: the §5.4 request sequence and bodies, batching, progress,
 * retries, and the outcomes of commit, checks and publish.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cachedFixtureRepo,
  hostArch,
} from "../../tests/support/flatpak_fixtures.ts";
import { exec } from "../../tests/support/fixture_exec.ts";
import {
  FAKE_UPDATE_JOB,
  FakeFlatManager,
  type FakeOptions,
  type RecordedRequest,
} from "../../tests/support/fake_flat_manager.ts";
import { parseUploadName } from "../ostree/object_names.ts";
import { FlatManagerApiError } from "./flat_manager_errors.ts";
import {
  deltaNameEncode,
  fileObjects,
  metadataObjects,
  objectPath,
  resolveRefs,
} from "./local_repo.ts";
import {
  FailedCheckError,
  push,
  type PushOptions,
  type PushProgress,
} from "./push.ts";
import { FailedJobError } from "./wait_for_job.ts";

const MiB = 1024 * 1024;
const BIG_REF = `app/org.example.Big/${hostArch()}/master`;
const ext = (name: string) => name.slice(name.indexOf(".") + 1);
const isMeta = (n: string) => ["commit", "dirtree", "dirmeta"].includes(ext(n));
const random = (n: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(b.subarray(i, i + 65536));
  }
  return b;
};
const quick = { initialDelayMs: 1, maxDelayMs: 4, maxElapsedMs: 5000 };

/** Adds a ref with 2500 small files (more than one `missing_objects` chunk) and big objects. */
async function addBigRef(repo: string, dir: string) {
  const tree = join(dir, "big-tree");
  await Deno.mkdir(join(tree, "many"), { recursive: true });
  for (let i = 0; i < 2500; i++) {
    await Deno.writeTextFile(join(tree, "many", `f${i}`), `file ${i}\n`);
  }
  await Deno.writeFile(join(tree, "huge"), random(5 * MiB)); // alone in its request
  for (let i = 0; i < 3; i++) {
    await Deno.writeFile(join(tree, `mid${i}`), random(1.5 * MiB));
  }
  await exec("ostree", [
    `--repo=${repo}`,
    "commit",
    `--branch=${BIG_REF}`,
    `--tree=dir=${tree}`,
  ]);
}

const label = (r: RecordedRequest) =>
  `${r.method} ${r.path.replace(/^\/api\/v1\/build\/1/, "")}`;

/** Consecutive equal labels collapsed into `label ×n`. */
function runs(requests: RecordedRequest[]): string[] {
  const out: [string, number][] = [];
  for (const r of requests) {
    const l = r.parts
      ? `${label(r)} ${uploadKind(r)}`
      : r.path.endsWith("/missing_objects")
      ? `${label(r)} ${queryKind(r)}`
      : label(r);
    const last = out.at(-1);
    if (last && last[0] === l) last[1]++;
    else out.push([l, 1]);
  }
  return out.map(([l, n]) => n === 1 ? l : `${l} ×${n}`);
}

function queryKind(r: RecordedRequest): string {
  const names = (r.json as { wanted: string[] }).wanted;
  const kinds = new Set(names.map((n) => isMeta(n) ? "meta" : "files"));
  assert.equal(kinds.size, 1, "metadata and file objects are queried apart");
  return [...kinds][0]!;
}

function uploadKind(r: RecordedRequest): string {
  const kinds = new Set(
    r.parts!.map((p) =>
      p.name.endsWith(".delta") ? "deltas" : isMeta(p.name) ? "meta" : "files"
    ),
  );
  assert.equal(kinds.size, 1, `one kind of object per request: ${[...kinds]}`);
  return [...kinds][0]!;
}

Deno.test("push", async (t) => {
  await using fx = await cachedFixtureRepo({ arches: [hostArch()] });
  await addBigRef(fx.repo, fx.dir);
  const app = fx.refs.find((r) => r.startsWith("app/"))!;
  await exec("ostree", [
    `--repo=${fx.repo}`,
    "static-delta",
    "generate",
    "--empty",
    `--to=${app}`,
  ]);
  const refs = await resolveRefs(fx.repo);
  const metadata = await metadataObjects(fx.repo, refs.values());
  const files = await fileObjects(fx.repo, metadata);
  assert.ok(files.length > 2000);
  // The parent repo already has the platform runtime's objects: those are never uploaded.
  const platform = fx.refs.find((r) => r.includes("Platform"))!;
  const platformMeta = await metadataObjects(fx.repo, [fx.commits[platform]!]);
  const present = new Set([
    ...platformMeta,
    ...await fileObjects(fx.repo, platformMeta),
  ]);

  const run = async (
    fake: FakeFlatManager,
    extra: Partial<PushOptions> = {},
  ) => {
    const lines: string[] = [];
    const sleeps: number[] = [];
    const progress: PushProgress[] = [];
    const result = await push({
      buildUrl: fake.buildUrl,
      token: "secret-token",
      repoPath: fx.repo,
      log: (l) => lines.push(l),
      onProgress: (p) => progress.push(p),
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
      retry: quick,
      ...extra,
    });
    return { result, lines, sleeps, progress };
  };
  const full: Partial<PushOptions> = {
    commit: true,
    publish: true,
    wait: true,
    extraIds: ["Foo"],
    buildLogUrl: "http://log",
  };
  const fakeOpts: FakeOptions = {
    present,
    checks: ["lint"],
    commitJob: [
      { status: 0 },
      { status: 1, append: "Committing é\nstill going\n" },
      { status: 1 },
      { status: 2, append: "done\n" },
    ],
    publishJob: [
      { status: 1, append: "Publishing\n" },
      { status: 2, results: { "update-repo-job": FAKE_UPDATE_JOB } },
    ],
  };

  await t.step(
    "push --commit --publish --wait sends §5.4's requests in order",
    async () => {
      await using fake = await FakeFlatManager.start(fakeOpts);
      const { result, lines, sleeps, progress } = await run(fake, full);
      const reqs = fake.requests;
      assert.deepEqual(runs(reqs), [
        "GET /missing_objects meta",
        "GET /missing_objects files ×2",
        `POST /upload files ×${
          reqs.filter((r) => r.parts && uploadKind(r) === "files").length
        }`,
        `POST /upload meta`,
        "POST /upload deltas",
        `POST /build_ref ×${refs.size}`,
        "POST /add_extra_ids",
        "POST /commit",
        "GET /extended ×2",
        "GET /check/lint/job ×2",
        "GET /extended",
        "GET /commit ×4",
        "POST /publish",
        "GET /publish ×2",
        `GET /api/v1/job/${FAKE_UPDATE_JOB}`,
        "GET ",
      ]);
      for (const r of reqs) {
        assert.equal(
          r.headers.authorization,
          "Bearer secret-token",
        );
      }

      // missing_objects: gzip JSON bodies of ≤ 2000 names; metadata first, then all file objects.
      const queries = reqs.filter((r) => r.path.endsWith("/missing_objects"));
      for (const q of queries) {
        assert.equal(q.headers["content-encoding"], "gzip");
        assert.equal(q.headers["content-type"], "application/json");
        assert.ok((q.json as { wanted: string[] }).wanted.length <= 2000);
      }
      const wanted = queries.map((q) =>
        (q.json as { wanted: string[] }).wanted
      );
      assert.deepEqual(wanted[0], metadata);
      assert.deepEqual(wanted.slice(1).map((w) => w.length), [
        2000,
        files.length - 2000,
      ]);
      assert.deepEqual(wanted.slice(1).flat(), files);

      // Uploads: exactly what the server lacked, files before metadata, ≤ 4 MiB per request
      // unless one object alone is bigger, bytes equal to the local objects.
      const uploads = reqs.filter((r) => r.parts);
      const uploaded = uploads.flatMap((u) => u.parts!.map((p) => p.name));
      assert.equal(new Set(uploaded).size, uploaded.length, "each object once");
      const lacking = [...files, ...metadata].filter((n) => !present.has(n));
      assert.deepEqual(
        new Set(uploaded.filter((n) => !n.endsWith(".delta"))),
        new Set(lacking),
      );
      let sawBig = false;
      for (const u of uploads) {
        assert.match(
          u.headers["content-type"]!,
          /^multipart\/mixed; boundary=[0-9a-f]{32}$/,
        );
        // A Content-Length computed up front, not a chunked body.
        assert.equal(Number(u.headers["content-length"]), u.raw.length);
        assert.equal(u.headers["transfer-encoding"], undefined);
        const size = u.parts!.reduce((n, p) => n + p.data.length, 0);
        if (size > 4 * MiB) {
          assert.equal(u.parts!.length, 1, "an object over 4 MiB goes alone");
          sawBig = true;
        }
        for (const p of u.parts!) {
          assert.ok(
            parseUploadName(p.name),
            `${p.name} is a valid upload name (§5.3)`,
          );
          assert.equal(p.headers["content-type"], "application/octet-stream");
          assert.equal(
            p.headers["content-disposition"],
            `attachment; filename="${p.name}"`,
          );
          assert.equal(Number(p.headers["content-length"]), p.data.length);
          if (!p.name.endsWith(".delta")) {
            assert.deepEqual(
              p.data,
              await Deno.readFile(objectPath(fx.repo, p.name)),
            );
          }
        }
      }
      assert.ok(sawBig);
      assert.ok(
        uploads.filter((u) => uploadKind(u) === "files").length >= 3,
        "several batches",
      );
      const name = deltaNameEncode(fx.commits[app]!);
      assert.deepEqual(uploads.at(-1)!.parts!.map((p) => p.name), [
        `${name}.superblock.delta`,
        `${name}.0.delta`,
      ]);

      // Refs, extra ids and commit bodies.
      assert.deepEqual(
        reqs.filter((r) => r.path.endsWith("/build_ref")).map((r) => r.json),
        [...refs].map(([ref, commit]) => ({
          ref,
          commit,
          "build-log-url": "http://log",
        })),
      );
      assert.deepEqual(
        reqs.find((r) => r.path.endsWith("/add_extra_ids"))!.json,
        { ids: ["Foo"] },
      );
      const commit = reqs.find((r) =>
        r.method === "POST" && r.path.endsWith("/commit")
      )!;
      assert.deepEqual(commit.json, {
        endoflife: null,
        endoflife_rebase: null,
      });
      assert.deepEqual(reqs.find((r) => r.path.endsWith("/publish"))!.json, {});

      // Polls carry the byte offset of the log printed so far.
      const offsets = reqs.filter((r) =>
        r.method === "GET" && r.path.endsWith("/commit")
      )
        .map((r) => r.json);
      const first =
        new TextEncoder().encode("Committing é\nstill going\n").length;
      assert.deepEqual(
        offsets,
        [0, 0, first, first].map((n) => ({ "log-offset": n })),
      );
      assert.deepEqual(
        reqs.find((r) => r.path === `/api/v1/job/${FAKE_UPDATE_JOB}`)!.json,
        {},
      );
      for (
        const l of [
          "| Committing é",
          "| still going",
          "| done",
          "/ Job was started",
        ]
      ) {
        assert.ok(lines.includes(l), l);
      }
      assert.ok(lines.includes("\\ Job completed successfully"));
      // 2 s while committing; then 1 s after each poll that showed log or followed one that did
      // (check: 1 poll, commit: 3, publish: 1); the longer steps are in wait_for_job_test.ts.
      assert.deepEqual(sleeps, [2000, 1000, 1000, 1000, 1000, 1000]);

      // Progress never goes back and ends at the totals.
      const last = progress.at(-1)!;
      assert.equal(last.phase, "done");
      assert.equal(last.objectsDone, last.objectsTotal);
      assert.equal(last.bytesDone, last.bytesTotal);
      assert.equal(last.objectsTotal, uploaded.length);
      assert.equal(
        last.bytesTotal,
        uploads.reduce(
          (n, u) => n + u.parts!.reduce((m, p) => m + p.data.length, 0),
          0,
        ),
      );
      for (let i = 1; i < progress.length; i++) {
        assert.ok(progress[i]!.objectsDone >= progress[i - 1]!.objectsDone);
        assert.ok(progress[i]!.bytesDone >= progress[i - 1]!.bytesDone);
      }
      assert.deepEqual([...new Set(progress.map((p) => p.phase))], [
        "files",
        "metadata",
        "deltas",
        "done",
      ]);

      assert.equal(result.build.repo_state, 2);
      assert.equal(result.commitJob!.location, `${fake.buildUrl}/commit`);
      assert.deepEqual(result.publishJob!.results, {
        "update-repo-job": FAKE_UPDATE_JOB,
      });
      assert.equal(
        result.updateJob!.location,
        `${fake.url}/api/v1/job/${FAKE_UPDATE_JOB}`,
      );
    },
  );

  await t.step(
    "a second push uploads nothing but registers the refs again",
    async () => {
      await using fake = await FakeFlatManager.start({
        present: [...metadata, ...files],
      });
      await run(fake, { refs: [app], ignoreDelta: ["org.example.*"] });
      assert.deepEqual(runs(fake.requests), [
        "GET /missing_objects meta",
        "GET /missing_objects files",
        "POST /build_ref",
        "GET ",
      ]);
    },
  );

  await t.step(
    "5xx answers and dropped connections are retried, 4xx are not",
    async () => {
      await using fake = await FakeFlatManager.start({
        fault: (r, n) => {
          if (r.path.endsWith("/missing_objects") && n === 1) return "reset";
          if (r.path.endsWith("/upload") && n <= 2) {
            return {
              status: 503,
              body: "Service Unavailable",
              contentType: "text/plain",
            };
          }
          if (r.path.endsWith("/build_ref")) {
            return {
              status: 400,
              body: JSON.stringify({
                status: 400,
                "error-type": "generic-error",
                message: "Invalid ref_name x",
              }),
            };
          }
        },
      });
      const e = await run(fake, { refs: [app] }).then(() => null, (e) => e);
      assert.ok(e instanceof FlatManagerApiError, String(e));
      assert.equal(e.status, 400);
      assert.equal(e.errorType, "generic-error");
      assert.equal(e.body.message, "Invalid ref_name x");
      const seq = runs(fake.requests);
      assert.deepEqual(seq.slice(0, 3), [
        "GET /missing_objects meta ×2",
        "GET /missing_objects files",
        "POST /upload files ×3",
      ]);
      assert.equal(seq.at(-1), "POST /build_ref", "the 400 is not retried");
      const ups = fake.requests.filter((r) => r.parts);
      assert.deepEqual(
        ups[0]!.parts!.map((p) => p.name),
        ups[2]!.parts!.map((p) => p.name),
      );
    },
  );

  await t.step(
    "a server error that lasts gives up with the server's message",
    async () => {
      await using fake = await FakeFlatManager.start({
        fault: () => ({
          status: 500,
          body: "<html>oops</html>",
          contentType: "text/html",
        }),
      });
      const e = await run(fake, { retry: { ...quick, maxElapsedMs: 50 } }).then(
        () => null,
        (e) => e,
      );
      assert.ok(e instanceof FlatManagerApiError);
      assert.equal(e.errorType, "no-error");
      assert.equal(
        e.body.message,
        "Non-json error from server: <html>oops</html>",
      );
      assert.ok(fake.requests.length > 1);
    },
  );

  for (const state of ["published", "publishing", "validating"]) {
    await t.step(
      `publish answering 400 current-state "${state}" counts as success`,
      async () => {
        await using fake = await FakeFlatManager.start({
          present: [...metadata, ...files],
          publishAnswer: {
            status: 400,
            body: JSON.stringify({
              status: 400,
              "error-type": state === "validating"
                ? "wrong-repo-state"
                : "wrong-published-state",
              message: "Build has already been published",
              "current-state": state,
              "expected-state": "unpublished",
            }),
          },
        });
        const { result } = await run(fake, {
          refs: [app],
          publish: true,
          wait: true,
        });
        assert.equal(result.publishJob, undefined);
        assert.deepEqual(runs(fake.requests).slice(-2), [
          "POST /publish",
          "GET ",
        ]);
      },
    );
  }

  await t.step(
    "publish answering 400 current-state failed fails the push",
    async () => {
      await using fake = await FakeFlatManager.start({
        present: [...metadata, ...files],
        publishAnswer: {
          status: 400,
          body: JSON.stringify({
            status: 400,
            "error-type": "wrong-published-state",
            message: "Previous publish failed: x",
            "current-state": "failed",
          }),
        },
      });
      await assert.rejects(
        run(fake, { refs: [app], publish: true }),
        FlatManagerApiError,
      );
    },
  );

  await t.step(
    "a failed commit job or a failed check fails the push",
    async () => {
      {
        await using fake = await FakeFlatManager.start({
          present: [...metadata, ...files],
          commitJob: [{ status: 3, append: "error: no such object\n" }],
        });
        const e = await run(fake, { refs: [app], commit: true }).then(
          () => null,
          (e) => e,
        );
        assert.ok(e instanceof FailedJobError);
        assert.equal(e.job.status, 3);
      }
      {
        await using fake = await FakeFlatManager.start({
          present: [...metadata, ...files],
          checks: ["lint", "size"],
          failingChecks: ["size"],
        });
        await assert.rejects(
          run(fake, { refs: [app], commit: true }),
          FailedCheckError,
        );
      }
    },
  );
});
