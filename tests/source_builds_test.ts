/**
 * Server-side build submission and scheduling, with a scripted in-process runner (the real
 * runner is in source_builds_e2e_test.ts): invalid submissions are 422s naming each field and
 * queue nothing; a concurrency limit of 1 runs queued tasks by priority; a failed dependency
 * cancels its dependents; infrastructure failures are retried, build failures are not; who may
 * submit; a task's token is revoked when its run ends.
 */
import assert from "node:assert/strict";
import { dbTest } from "./support/db.ts";
import { startPipeline } from "./support/pipeline.ts";
import type { Runner, RunRequest, RunResult } from "../lib/runners/runner.ts";
import { BUILDS_LIMIT_KEY } from "../lib/source_builds/source_builds.ts";

/** A runner whose tasks end when the test says, recording the order they started in. */
function scriptedRunner() {
  const started: string[] = [];
  /** The tokens each task was given, one per attempt, by `<app id>/<arch>`. */
  const tokens = new Map<string, string[]>();
  const pending = new Map<string, (r: RunResult) => void>();
  const outcomes = new Map<string, RunResult[]>();
  const runner: Runner = {
    name: "local",
    run(req: RunRequest): Promise<RunResult> {
      const key = `${
        (req.spec.manifest as { id?: string })["id"] ??
          (req.spec.manifest as { "app-id": string })["app-id"]
      }/${req.spec.arch}`;
      started.push(key);
      tokens.set(key, [...tokens.get(key) ?? [], req.uploadToken]);
      void req.log(`scripted run of ${key}`);
      const scripted = outcomes.get(key)?.shift();
      if (scripted) return Promise.resolve(scripted);
      return new Promise((resolve) => {
        pending.set(key, resolve);
        req.signal.addEventListener(
          "abort",
          () => resolve({ outcome: "cancelled", message: "Cancelled" }),
        );
      });
    },
  };
  return {
    runner,
    started,
    tokens,
    /** Ends the running task `key` with `result`. */
    finish(key: string, result: RunResult) {
      const r = pending.get(key);
      assert.ok(r, `${key} is not running (running: ${[...pending.keys()]})`);
      pending.delete(key);
      r(result);
    },
    /** Scripts the next runs of `key` to end at once with these results. */
    script(key: string, ...results: RunResult[]) {
      outcomes.set(key, results);
    },
    async until(what: string, ok: () => boolean) {
      const deadline = Date.now() + 20_000;
      while (!ok()) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

const manifest = (id: string) => ({
  id,
  runtime: "org.example.BusyBoxPlatform",
  "runtime-version": "1",
  sdk: "org.example.BusyBoxSdk",
  command: "hello",
  modules: [{
    name: "hello",
    buildsystem: "simple",
    "build-commands": ["true"],
  }],
});

const ok: RunResult = { outcome: "succeeded", message: "ok" };

dbTest(
  "invalid submissions are refused field by field and queue nothing",
  async (db, t) => {
    const s = scriptedRunner();
    const p = await startPipeline(db, "stable", { runner: s.runner });
    try {
      const jobsBefore = (await p.a.deps.queue.list({ limit: 500 })).length;
      const cases: [string, unknown, string][] = [
        [
          "no arches",
          { manifest: manifest("org.example.A"), arches: [] },
          "arches",
        ],
        [
          "an unknown arch",
          { manifest: manifest("org.example.A"), arches: ["mips"] },
          "arches.0",
        ],
        [
          "a repeated arch",
          { manifest: manifest("org.example.A"), arches: ["x86_64", "x86_64"] },
          "arches",
        ],
        [
          "a manifest without modules",
          {
            manifest: { ...manifest("org.example.A"), modules: [] },
            arches: ["x86_64"],
          },
          "manifest.modules",
        ],
        [
          "a module source that escapes",
          {
            manifest: {
              ...manifest("org.example.A"),
              modules: [{
                name: "m",
                sources: [{ type: "file", path: "../x" }],
              }],
            },
            arches: ["x86_64"],
          },
          "manifest.modules[0].sources[0].path",
        ],
        [
          "YAML that does not parse",
          { manifest: "id: [unclosed", arches: ["x86_64"] },
          "manifest",
        ],
        [
          "a short commit id",
          {
            manifest: manifest("org.example.A"),
            arches: ["x86_64"],
            source: {
              git: { url: "https://example.org/a.git", commit: "abc" },
            },
          },
          "source.git.commit",
        ],
        [
          "an unknown dependency",
          {
            manifest: manifest("org.example.A"),
            arches: ["x86_64"],
            dependsOn: [999],
          },
          "dependsOn",
        ],
        [
          "a bad memory quantity",
          {
            manifest: manifest("org.example.A"),
            arches: ["x86_64"],
            resources: { memory: "lots" },
          },
          "resources.memory",
        ],
        [
          "an unknown field",
          {
            manifest: manifest("org.example.A"),
            arches: ["x86_64"],
            colour: 1,
          },
          "colour",
        ],
      ];
      for (const [what, body, path] of cases) {
        await t.step(what, async () => {
          const r = await p.api("POST", "/api/v1/repos/stable/builds", body);
          assert.equal(r.status, 422, JSON.stringify(r.json));
          assert.ok(
            r.json.errors.some((e: { path: string }) => e.path === path),
            `no error at ${path}: ${JSON.stringify(r.json.errors)}`,
          );
        });
      }
      assert.equal(
        (await p.a.deps.queue.list({ limit: 500 })).length,
        jobsBefore,
        "nothing was queued",
      );
      await t.step("an unknown repository is a 404", async () => {
        const r = await p.api("POST", "/api/v1/repos/nope/builds", {
          manifest: manifest("org.example.A"),
          arches: ["x86_64"],
        });
        assert.equal(r.status, 404);
      });
      await t.step("a token for other app ids may not submit", async () => {
        const token = await p.a.token({ prefixes: ["org.other"] });
        const res = await fetch(`${p.base}/api/v1/repos/stable/builds`, {
          method: "POST",
          headers: {
            Authorization: `Bearer ${token}`,
            "Content-Type": "application/json",
          },
          body: JSON.stringify({
            manifest: manifest("org.example.A"),
            arches: ["x86_64"],
          }),
        });
        assert.equal(res.status, 403);
        await res.body?.cancel();
      });
    } finally {
      await p.close();
    }
  },
);

dbTest(
  "under a limit of one, queued tasks run by priority; failures, retries and dependencies",
  async (db, t) => {
    const s = scriptedRunner();
    const p = await startPipeline(db, "stable", {
      runner: s.runner,
      concurrency: 4,
    });
    try {
      await p.a.deps.queue.setLimit(BUILDS_LIMIT_KEY, 1);
      const submit = async (
        id: string,
        extra: Record<string, unknown> = {},
      ) => {
        const r = await p.api("POST", "/api/v1/repos/stable/builds", {
          manifest: manifest(id),
          arches: ["x86_64"],
          publish: "manual",
          ...extra,
        });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        return r.json.id as number;
      };
      const build = async (id: number) =>
        (await p.api("GET", `/api/v1/repos/stable/builds/${id}`)).json;

      await t.step(
        "priority order under a concurrency limit of 1",
        async () => {
          await submit("org.example.First");
          await s.until("First to start", () => s.started.length === 1);
          const [firstToken] = s.tokens.get("org.example.First/x86_64")!;
          const claims = await p.a.deps.tokens.verify(firstToken!);
          assert.deepEqual(claims.scope, ["upload", "download"]);
          await submit("org.example.Low", { priority: 0 });
          await submit("org.example.High", { priority: 50 });
          await submit("org.example.Mid", { priority: 10 });
          // Only one runs at a time.
          await new Promise((r) => setTimeout(r, 300));
          assert.deepEqual(s.started, ["org.example.First/x86_64"]);
          for (const next of ["First", "High", "Mid", "Low"]) {
            await s.until(
              `${next} to start`,
              () => s.started.at(-1) === `org.example.${next}/x86_64`,
            );
            s.finish(`org.example.${next}/x86_64`, ok);
          }
          assert.deepEqual(s.started, [
            "org.example.First/x86_64",
            "org.example.High/x86_64",
            "org.example.Mid/x86_64",
            "org.example.Low/x86_64",
          ]);
          // Ended tasks' tokens no longer open anything (a runner keeps its last one in the URL
          // of its flatpak remote), and their rows go when they expire.
          await assert.rejects(
            p.a.deps.tokens.verify(firstToken!),
            /Token has been revoked/,
          );
          const [row] = await db.query<{ expires: Date | null }>(
            "SELECT expires FROM tokens WHERE jti = $1",
            [claims.jti],
          );
          assert.ok(row?.expires, "the revoked token's row has its expiry");
          assert.equal(row.expires.getTime(), claims.exp * 1000);
        },
      );

      await t.step(
        "a compile failure is not retried; infrastructure is",
        async () => {
          s.script("org.example.Broken/x86_64", {
            outcome: "failed",
            message: "flatpak-builder failed",
          });
          const broken = await submit("org.example.Broken");
          s.script(
            "org.example.Flaky/x86_64",
            { outcome: "infrastructure", message: "node went away" },
            ok,
          );
          const flaky = await submit("org.example.Flaky");
          await s.until(
            "both to end",
            () => s.started.filter((k) => k.includes("Flaky")).length === 2,
          );
          let b = await build(broken);
          for (let i = 0; i < 100 && b.state !== "failed"; i++) {
            await new Promise((r) => setTimeout(r, 50));
            b = await build(broken);
          }
          assert.equal(b.state, "failed");
          assert.equal(b.tasks[0].attempts, 1);
          assert.match(b.reason, /flatpak-builder failed/);
          const f = await build(flaky);
          assert.equal(f.tasks[0].attempts, 2);
          assert.equal(f.tasks[0].status, "succeeded");
          // Revoked whatever the outcome: failed, infrastructure (retried), succeeded.
          const ended = [
            ...s.tokens.get("org.example.Broken/x86_64")!,
            ...s.tokens.get("org.example.Flaky/x86_64")!,
          ];
          assert.equal(ended.length, 3);
          for (const token of ended) {
            await assert.rejects(
              p.a.deps.tokens.verify(token),
              /Token has been revoked/,
            );
          }
        },
      );

      await t.step("a failed dependency cancels its dependents", async () => {
        const base = await submit("org.example.Base");
        const dependent = await submit("org.example.Dependent", {
          dependsOn: [base],
        });
        await s.until(
          "Base to start",
          () => s.started.at(-1) === "org.example.Base/x86_64",
        );
        s.finish("org.example.Base/x86_64", {
          outcome: "failed",
          message: "does not compile",
        });
        let d = await build(dependent);
        for (let i = 0; i < 100 && d.state !== "cancelled"; i++) {
          await new Promise((r) => setTimeout(r, 50));
          d = await build(dependent);
        }
        assert.equal(d.state, "cancelled");
        assert.match(d.reason, /Dependency job \d+ did not succeed/);
        assert.ok(!s.started.includes("org.example.Dependent/x86_64"));
      });

      await t.step(
        "cancelling one architecture of a running build",
        async () => {
          const id = await p.api("POST", "/api/v1/repos/stable/builds", {
            manifest: manifest("org.example.Two"),
            arches: ["x86_64", "aarch64"],
            publish: "manual",
          });
          await p.a.deps.queue.setLimit(BUILDS_LIMIT_KEY, 2);
          await s.until(
            "both arches to start",
            () =>
              s.started.includes("org.example.Two/x86_64") &&
              s.started.includes("org.example.Two/aarch64"),
          );
          const c = await p.api(
            "POST",
            `/api/v1/repos/stable/builds/${id.json.id}/tasks/aarch64/cancel`,
          );
          assert.equal(c.status, 200);
          s.finish("org.example.Two/x86_64", ok);
          // The build reads cancelled as soon as one task is; the finished one lands after.
          const settled = (x: { state: string; tasks: { status: string }[] }) =>
            x.state === "cancelled" &&
            x.tasks.every((t) => !["queued", "running"].includes(t.status));
          let b = await build(id.json.id);
          for (let i = 0; i < 100 && !settled(b); i++) {
            await new Promise((r) => setTimeout(r, 50));
            b = await build(id.json.id);
          }
          assert.equal(b.state, "cancelled");
          const byArch = Object.fromEntries(
            b.tasks.map((
              x: { arch: string; status: string },
            ) => [x.arch, x.status]),
          );
          assert.deepEqual(byArch, {
            x86_64: "succeeded",
            aarch64: "cancelled",
          });
          const commit = await p.a.deps.queue.get(b.commitJobId);
          assert.equal(commit!.status, "cancelled");
        },
      );
    } finally {
      await p.close();
    }
  },
);
