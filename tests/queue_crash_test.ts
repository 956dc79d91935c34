/**
 * Crash recovery of the job queue across processes: a worker subprocess
 * (tests/fixtures/crash_worker.ts) is killed with SIGKILL in the middle of a job, and a second
 * worker process recovers the expired lease and runs the job again to the end. On PostgreSQL the
 * test watches the job log in the database; PGlite belongs to one process at a time, so there
 * the test watches the lines the worker prints and opens the directory only between workers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createMemoryBus } from "../lib/bus/memory_bus.ts";
import type { Db } from "../lib/db/db.ts";
import { migrate } from "../lib/db/migrate.ts";
import { openPglite } from "../lib/db/pglite.ts";
import { JobQueue } from "../lib/queue/queue.ts";
import { dbKinds, freshDb } from "./support/db.ts";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const fixture = fileURLToPath(
  new URL("./fixtures/crash_worker.ts", import.meta.url),
);
/** Upper bound on every wait: a hung worker fails the test instead of stalling the suite. */
const WAIT_MS = 60_000;
const STEPS = 20;
const PAYLOAD = { steps: STEPS, stepMs: 100 };

/** A crash_worker.ts process whose stdout lines and stderr are collected as they arrive. */
class WorkerProcess {
  readonly lines: string[] = [];
  exited: Deno.CommandStatus | undefined;
  readonly #child: Deno.ChildProcess;
  readonly #stdoutDone: Promise<void>;
  readonly #stderr: Promise<string>;

  constructor(readonly name: string, env: Record<string, string>) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", fixture],
      cwd: repoRoot,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "",
        FIXTURE_WORKER_NAME: name,
        FIXTURE_LEASE_SECONDS: "2",
        ...env,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    child.status.then((s) => this.exited = s);
    this.#stdoutDone = (async () => {
      let buf = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        buf += chunk;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          this.lines.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      }
      if (buf !== "") this.lines.push(buf);
    })();
    this.#stderr = new Response(child.stderr).text();
  }

  /** The job log lines this worker printed (it prints each after appending it). */
  logLines(): string[] {
    return this.lines.filter((l) => l.startsWith("log: ")).map((l) =>
      l.slice(5)
    );
  }

  /** Waits until this worker has printed `line`; fails if it exits first or after {@link WAIT_MS}. */
  async waitForLine(line: string): Promise<void> {
    await until(`${this.name} to print "${line}"`, () => {
      if (this.lines.includes(line)) return Promise.resolve(true);
      if (this.exited) {
        return this.fail(`${this.name} exited (${this.exited.code}) first`);
      }
      return Promise.resolve(false);
    });
  }

  /** Waits for the process to exit on its own, bounded by {@link WAIT_MS}. */
  async waitForExit(): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      this.#child.status,
      new Promise<undefined>((r) =>
        timer = setTimeout(() => r(undefined), WAIT_MS)
      ),
    ]);
    clearTimeout(timer);
    if (!status) return this.fail(`${this.name} did not exit in ${WAIT_MS} ms`);
    return status;
  }

  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Kills the process if it still runs and waits for it and its pipes; returns stderr. */
  async close(): Promise<string> {
    if (!this.exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // It exited between the check and the kill.
      }
    }
    await this.#child.status;
    await this.#stdoutDone;
    return await this.#stderr;
  }

  /** Throws `message` with the process's stderr appended, for a diagnosable failure. */
  async fail(message: string): Promise<never> {
    const stderr = await this.close();
    throw new Error(`${message}\n--- ${this.name} stderr ---\n${stderr}`);
  }
}

async function until(
  what: string,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function logLinesOf(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

function stepLines(attempt: number, from: number, to: number): string[] {
  return Array.from(
    { length: to - from + 1 },
    (_, i) => `attempt ${attempt} step ${from + i}`,
  );
}

/**
 * What a user sees after the crash and the recovery: B finished the job on its second attempt,
 * the log holds attempt 1's steps up to the crash and then every step of attempt 2, once each,
 * and the job holds no lease.
 */
async function assertRecovered(
  db: Db,
  jobId: number,
  a: WorkerProcess,
  b: WorkerProcess,
): Promise<void> {
  const queue = new JobQueue(db, createMemoryBus());
  const job = await queue.get(jobId);
  assert.ok(job, `job ${jobId} exists`);
  assert.equal(job.status, "succeeded", `job error: ${job.error}`);
  assert.equal(job.attempts, 2);
  assert.deepEqual(job.result, { finishedBy: "B", attempt: 2 });
  assert.equal(job.leaseOwner, null);
  assert.equal(job.leaseExpiresAt, null);
  assert.equal(job.error, null);

  const log = logLinesOf((await queue.readLog(jobId)).text);
  const firstAttempt = log.filter((l) => l.startsWith("attempt 1 "));
  const crashedAt = firstAttempt.length;
  assert.ok(crashedAt >= 3, `attempt 1 reached step 3: ${log.join(" | ")}`);
  assert.ok(crashedAt < STEPS, "A was killed before it finished");
  assert.deepEqual(
    log,
    [...stepLines(1, 1, crashedAt), ...stepLines(2, 1, STEPS)],
    "attempt 1 up to the crash, then all of attempt 2, each line once",
  );
  // A prints a line after appending it, so the database has at most one line it did not print.
  const printedByA = a.logLines();
  assert.deepEqual(printedByA, stepLines(1, 1, printedByA.length));
  assert.ok(
    crashedAt - printedByA.length <= 1 && crashedAt >= printedByA.length,
    `A printed ${printedByA.length} lines, the log has ${crashedAt}`,
  );
  assert.deepEqual(
    b.logLines(),
    stepLines(2, 1, STEPS),
    "B ran only attempt 2",
  );

  // Only one job exists, so no other job can have run twice while A was dead.
  const [count] = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM jobs",
  );
  assert.equal(count?.n, 1);
}

for (const kind of dbKinds()) {
  Deno.test(
    `queue crash recovery: a worker subprocess is killed with SIGKILL mid-job and another worker completes the job [${kind}]`,
    async () => {
      const workers: WorkerProcess[] = [];
      const tmp = await Deno.makeTempDir({ prefix: "flatyard_crash_" });
      const pg = kind === "postgres" ? await freshDb("postgres") : undefined;
      try {
        let jobId: number;
        let dbEnv: Record<string, string>;
        const pgliteDir = join(tmp, "db");
        if (pg) {
          jobId = (await new JobQueue(pg.db, createMemoryBus()).enqueue(
            "test.steps",
            PAYLOAD,
            { retryBaseSeconds: 0 },
          )).id;
          dbEnv = { FIXTURE_DATABASE_URL: pg.url! };
        } else {
          // The embedded database: set up here, then closed so a worker process can own it.
          const db = await openPglite({ dataDir: pgliteDir });
          try {
            await migrate(db);
            jobId = (await new JobQueue(db, createMemoryBus()).enqueue(
              "test.steps",
              PAYLOAD,
              { retryBaseSeconds: 0 },
            )).id;
          } finally {
            await db.close();
          }
          dbEnv = { FIXTURE_PGLITE_DIR: pgliteDir };
        }

        const a = new WorkerProcess("A", dbEnv);
        workers.push(a);
        if (pg) {
          const queue = new JobQueue(pg.db, createMemoryBus());
          await until("attempt 1 step 3 in the job log", async () => {
            if (a.exited) await a.fail(`A exited (${a.exited.code}) early`);
            return (await queue.readLog(jobId)).text.includes(
              "attempt 1 step 3\n",
            );
          });
        } else {
          await a.waitForLine("log: attempt 1 step 3");
        }
        a.kill("SIGKILL");
        const aStatus = await a.waitForExit();
        assert.equal(aStatus.signal, "SIGKILL");

        const b = new WorkerProcess("B", {
          ...dbEnv,
          FIXTURE_EXIT_WHEN_DONE: String(jobId),
        });
        workers.push(b);
        const bStatus = await b.waitForExit();
        if (bStatus.code !== 0) {
          await b.fail(`B exited with code ${bStatus.code}`);
        }
        assert.ok(b.lines.includes("done"), "B saw the job end");

        if (pg) {
          await assertRecovered(pg.db, jobId, a, b);
        } else {
          const db = await openPglite({ dataDir: pgliteDir });
          try {
            await assertRecovered(db, jobId, a, b);
          } finally {
            await db.close();
          }
        }
      } finally {
        for (const w of workers) await w.close();
        await pg?.close();
        await Deno.remove(tmp, { recursive: true });
      }
    },
  );
}
