/** The job queue and worker on both databases. */
import assert from "node:assert/strict";
import { dbTest } from "../../tests/support/db.ts";
import { createMemoryBus } from "../bus/memory_bus.ts";
import { silentLogger } from "../logger.ts";
import { sliceFromByte } from "./job_log.ts";
import { channels, JobQueue } from "./queue.ts";
import { PermanentJobError, startWorker } from "./worker.ts";
import type { Db } from "../db/db.ts";

function setup(db: Db) {
  const bus = createMemoryBus();
  return { bus, queue: new JobQueue(db, bus) };
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  ms = 10_000,
) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

dbTest("claim takes the highest priority due job, then by id", async (db) => {
  const { queue } = setup(db);
  const low = await queue.enqueue("k", { n: 1 });
  const high = await queue.enqueue("k", { n: 2 }, { priority: 10 });
  await queue.enqueue("k", { n: 3 }, { priority: 99, delaySeconds: 3600 });
  await queue.enqueue("other", {});
  assert.equal((await queue.claim("w", ["k"], 30))?.id, high.id);
  const second = await queue.claim("w", ["k"], 30);
  assert.equal(second?.id, low.id);
  assert.deepEqual(second?.payload, { n: 1 });
  assert.equal(second?.status, "running");
  assert.equal(second?.attempts, 1);
  assert.equal(
    await queue.claim("w", ["k"], 30),
    undefined,
    "delayed job is not due",
  );
});

dbTest(
  "a job waits for its dependencies; policy succeeded cancels it when one fails",
  async (db) => {
    const { queue } = setup(db);
    const a = await queue.enqueue("k", {}, { maxAttempts: 1 });
    const b = await queue.enqueue("k", {}, { dependsOn: [a.id] });
    const c = await queue.enqueue("k", {}, {
      dependsOn: [a.id],
      depPolicy: "succeeded",
    });
    assert.deepEqual(b.dependsOn, [a.id]);
    assert.equal((await queue.claim("w", ["k"], 30))?.id, a.id);
    assert.equal(
      await queue.claim("w", ["k"], 30),
      undefined,
      "dependents wait while a runs",
    );
    assert.equal(await queue.fail(a.id, "w", "broke"), "failed");
    assert.deepEqual(await queue.cancelBlockedDependents(), [c.id]);
    const cancelled = await queue.get(c.id);
    assert.equal(cancelled?.status, "cancelled");
    assert.equal(cancelled?.error, `Dependency job ${a.id} did not succeed`);
    assert.equal(
      (await queue.claim("w", ["k"], 30))?.id,
      b.id,
      "policy finished runs anyway",
    );
  },
);

dbTest("one running job per serialization key, across workers", async (db) => {
  const { queue } = setup(db);
  const r1 = await queue.enqueue("k", {}, { serialKey: "repo:stable" });
  const r2 = await queue.enqueue("k", {}, { serialKey: "repo:stable" });
  const other = await queue.enqueue("k", {}, { serialKey: "repo:beta" });
  assert.equal((await queue.claim("w1", ["k"], 30))?.id, r1.id);
  assert.equal(
    (await queue.claim("w2", ["k"], 30))?.id,
    other.id,
    "r2 is skipped: key busy",
  );
  assert.equal(await queue.claim("w2", ["k"], 30), undefined);
  assert.ok(await queue.complete(r1.id, "w1", { ok: true }));
  assert.equal((await queue.claim("w2", ["k"], 30))?.id, r2.id);
});

dbTest(
  "concurrent claims never hand one job to two workers",
  async (db, _t, kind) => {
    const { queue } = setup(db);
    for (let i = 0; i < 30; i++) {
      await queue.enqueue("k", { i }, i % 3 === 0 ? { serialKey: "s" } : {});
    }
    const claimed: number[] = [];
    await Promise.all(
      Array.from({ length: kind === "postgres" ? 8 : 2 }, async (_, w) => {
        for (;;) {
          const job = await queue.claim(`w${w}`, ["k"], 30);
          if (!job) return;
          claimed.push(job.id);
          // Serialized jobs stay running so the key stays busy; the rest complete.
          if (job.serialKey === null) {
            await queue.complete(job.id, `w${w}`, null);
          }
        }
      }),
    );
    assert.equal(new Set(claimed).size, claimed.length, "no job claimed twice");
    const running = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM jobs WHERE status = 'running' AND serial_key = 's'",
    );
    assert.equal(
      running[0]!.n,
      1,
      "exactly one job of the serialized key is running",
    );
    assert.equal(claimed.length, 21, "20 unkeyed jobs and one keyed job");
  },
);

dbTest(
  "failures retry with exponential backoff, then fail for good",
  async (db) => {
    const { queue } = setup(db);
    const job = await queue.enqueue("k", {}, {
      maxAttempts: 3,
      retryBaseSeconds: 100,
    });
    await queue.claim("w", ["k"], 30);
    const before = Date.now();
    assert.equal(await queue.fail(job.id, "w", "flaky"), "retrying");
    let j = await queue.get(job.id);
    assert.equal(j?.status, "queued");
    assert.equal(j?.error, "flaky");
    const wait1 = j!.runAfter.getTime() - before;
    assert.ok(
      wait1 > 90_000 && wait1 < 110_000,
      `first retry after ~100 s, got ${wait1} ms`,
    );
    await db.query("UPDATE jobs SET run_after = now() WHERE id = $1", [job.id]);
    await queue.claim("w", ["k"], 30);
    await queue.fail(job.id, "w", "flaky");
    j = await queue.get(job.id);
    const wait2 = j!.runAfter.getTime() - Date.now();
    assert.ok(
      wait2 > 190_000 && wait2 < 210_000,
      `second retry after ~200 s, got ${wait2} ms`,
    );
    await db.query("UPDATE jobs SET run_after = now() WHERE id = $1", [job.id]);
    await queue.claim("w", ["k"], 30);
    assert.equal(await queue.fail(job.id, "w", "still flaky"), "failed");
    j = await queue.get(job.id);
    assert.equal(j?.status, "failed");
    assert.equal(j?.attempts, 3);
    assert.ok(j?.finishedAt);
    const perm = await queue.enqueue("k", {}, { maxAttempts: 5 });
    await queue.claim("w", ["k"], 30);
    assert.equal(
      await queue.fail(perm.id, "w", "bad input", { permanent: true }),
      "failed",
    );
    assert.equal(
      await queue.fail(perm.id, "w", "again"),
      "lost",
      "a finished job is not failed twice",
    );
  },
);

dbTest(
  "an expired lease is recovered and the job runs again elsewhere",
  async (db) => {
    const { queue } = setup(db);
    const job = await queue.enqueue("k", {}, { retryBaseSeconds: 0 });
    await queue.claim("dead", ["k"], 1);
    assert.deepEqual(
      await queue.recoverExpiredLeases(),
      [],
      "lease still valid",
    );
    await new Promise((r) => setTimeout(r, 1200));
    assert.deepEqual(await queue.recoverExpiredLeases(), [{
      id: job.id,
      status: "queued",
    }]);
    const j = await queue.get(job.id);
    assert.match(
      j!.error!,
      /Worker dead stopped renewing its lease during attempt 1/,
    );
    assert.equal(
      (await queue.heartbeat(job.id, "dead", 30)).ok,
      false,
      "the dead worker lost it",
    );
    const again = await queue.claim("alive", ["k"], 30);
    assert.equal(again?.id, job.id);
    assert.equal(again?.attempts, 2);
    assert.equal(
      await queue.complete(job.id, "dead", "late"),
      false,
      "late result is dropped",
    );
    assert.ok(await queue.complete(job.id, "alive", "ok"));
    assert.equal((await queue.get(job.id))?.result, "ok");
  },
);

dbTest(
  "cancel stops a queued job at once and asks a running one",
  async (db) => {
    const { queue, bus } = setup(db);
    const queued = await queue.enqueue("k", {}, { delaySeconds: 60 });
    assert.equal((await queue.cancel(queued.id))?.status, "cancelled");
    const run = await queue.enqueue("k", {});
    await queue.claim("w", ["k"], 30);
    const heard: string[] = [];
    const off = await bus.subscribe(channels.cancel, (m) => heard.push(m));
    const c = await queue.cancel(run.id);
    assert.equal(c?.status, "running");
    assert.equal(c?.cancelRequested, true);
    assert.deepEqual(await queue.heartbeat(run.id, "w", 30), {
      ok: true,
      cancelRequested: true,
    });
    await until("cancel message", () => Promise.resolve(heard.length > 0));
    assert.deepEqual(heard, [String(run.id)]);
    assert.equal(
      await queue.cancel(queued.id).then((j) => j?.status),
      "cancelled",
      "idempotent",
    );
    await off();
  },
);

Deno.test("sliceFromByte rounds an offset inside a character down to its start", () => {
  assert.deepEqual(sliceFromByte("aé✓b", 0), { text: "aé✓b", skipped: 0 });
  assert.deepEqual(sliceFromByte("aé✓b", 1), { text: "é✓b", skipped: 1 });
  assert.deepEqual(
    sliceFromByte("aé✓b", 2),
    { text: "é✓b", skipped: 1 },
    "inside é",
  );
  assert.deepEqual(
    sliceFromByte("aé✓b", 4),
    { text: "✓b", skipped: 3 },
    "inside ✓",
  );
  assert.deepEqual(sliceFromByte("aé✓b", 6), { text: "b", skipped: 6 });
  assert.deepEqual(sliceFromByte("aé✓b", 99), { text: "", skipped: 7 });
});

dbTest(
  "job logs append, read from any byte offset, and fan out live",
  async (db) => {
    const { queue, bus } = setup(db);
    const job = await queue.enqueue("k", {});
    const live: string[] = [];
    const off = await bus.subscribe(channels.log(job.id), (m) => live.push(m));
    assert.equal(await queue.appendLog(job.id, "one\n"), 0);
    assert.equal(await queue.appendLog(job.id, "dos ✓\n"), 4);
    assert.equal(await queue.appendLog(job.id, "three\n"), 12);
    assert.deepEqual(await queue.readLog(job.id), {
      text: "one\ndos ✓\nthree\n",
      next: 18,
    });
    assert.deepEqual(await queue.readLog(job.id, 4), {
      text: "dos ✓\nthree\n",
      next: 18,
    });
    assert.deepEqual(await queue.readLog(job.id, 9), {
      text: "✓\nthree\n",
      next: 18,
    }, "mid-char");
    assert.deepEqual(await queue.readLog(job.id, 18), { text: "", next: 18 });
    assert.deepEqual(await queue.readLog(job.id, 500), { text: "", next: 18 });
    await until("live lines", () => Promise.resolve(live.length === 3));
    assert.deepEqual(JSON.parse(live[1]!), { offset: 4, text: "dos ✓\n" });
    await assert.rejects(
      queue.appendLog(999_999, "x"),
      /Cannot find job "999999"/,
    );
    await off();
  },
);

dbTest(
  "the worker runs handlers, records results, retries and fails",
  async (db) => {
    const { queue, bus } = setup(db);
    let flakyCalls = 0;
    const worker = await startWorker({
      queue,
      bus,
      logger: silentLogger,
      concurrency: 2,
      leaseSeconds: 5,
      pollMs: 50,
      handlers: {
        echo: async (payload, { log }) => {
          await log("echoing");
          return payload;
        },
        flaky: () => {
          flakyCalls++;
          if (flakyCalls < 2) throw new Error("transient");
          return Promise.resolve("recovered");
        },
        bad: () => Promise.reject(new PermanentJobError("manifest is invalid")),
      },
    });
    try {
      const echo = await queue.enqueue("echo", { hello: "world" });
      const flaky = await queue.enqueue("flaky", {}, { retryBaseSeconds: 0 });
      const bad = await queue.enqueue("bad", {}, { maxAttempts: 5 });
      const done = (id: number) => async () => {
        const j = await queue.get(id);
        return j && ["succeeded", "failed", "cancelled"].includes(j.status)
          ? j
          : undefined;
      };
      const e = await until("echo", done(echo.id));
      assert.equal(e.status, "succeeded");
      assert.deepEqual(e.result, { hello: "world" });
      assert.equal((await queue.readLog(echo.id)).text, "echoing\n");
      const f = await until("flaky", done(flaky.id));
      assert.equal(f.status, "succeeded");
      assert.equal(f.attempts, 2);
      assert.match(
        (await queue.readLog(flaky.id)).text,
        /Job failed: transient/,
      );
      const b = await until("bad", done(bad.id));
      assert.equal(b.status, "failed");
      assert.equal(b.attempts, 1, "a permanent error is not retried");
      assert.equal(b.error, "manifest is invalid");
    } finally {
      await worker.stop();
      await bus.close();
    }
  },
);

dbTest(
  "the worker aborts a running job on cancel and records it",
  async (db) => {
    const { queue, bus } = setup(db);
    let sawAbort = false;
    const started = Promise.withResolvers<void>();
    const worker = await startWorker({
      queue,
      bus,
      logger: silentLogger,
      concurrency: 1,
      leaseSeconds: 5,
      pollMs: 50,
      handlers: {
        long: (_p, { signal }) =>
          new Promise((_resolve, reject) => {
            started.resolve();
            signal.addEventListener("abort", () => {
              sawAbort = true;
              reject(signal.reason);
            });
          }),
      },
    });
    try {
      const job = await queue.enqueue("long", {});
      await started.promise;
      await queue.cancel(job.id);
      const j = await until("cancelled", async () => {
        const j = await queue.get(job.id);
        return j?.status === "cancelled" ? j : undefined;
      });
      assert.ok(sawAbort);
      assert.equal(j.error, "Cancelled while running");
      assert.match((await queue.readLog(job.id)).text, /Job cancelled/);
    } finally {
      await worker.stop();
      await bus.close();
    }
  },
);

dbTest(
  "stopping a worker hands unfinished jobs back without using an attempt",
  async (db) => {
    const { queue, bus } = setup(db);
    const started = Promise.withResolvers<void>();
    const worker = await startWorker({
      queue,
      bus,
      logger: silentLogger,
      concurrency: 1,
      leaseSeconds: 5,
      pollMs: 50,
      handlers: {
        long: (_p, { signal }) =>
          new Promise((_r, reject) => {
            started.resolve();
            signal.addEventListener("abort", () => reject(signal.reason));
          }),
      },
    });
    const job = await queue.enqueue("long", {});
    await started.promise;
    await worker.stop(100);
    const j = await queue.get(job.id);
    assert.equal(j?.status, "queued");
    assert.equal(j?.attempts, 0);
    assert.equal(j?.leaseOwner, null);
    await bus.close();
  },
);
