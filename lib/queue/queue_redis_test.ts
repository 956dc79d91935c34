/**
 * Workers and API replicas in separate processes share only Postgres and Redis: an enqueue on
 * one Redis connection wakes a worker on another, and live log lines cross over too.
 */
import assert from "node:assert/strict";
import { dbTest } from "../../tests/support/db.ts";
import { createRedisBus } from "../bus/redis_bus.ts";
import { silentLogger } from "../logger.ts";
import { channels, JobQueue } from "./queue.ts";
import { startWorker } from "./worker.ts";

const redisUrl = Deno.env.get("FLATYARD_TEST_REDIS_URL");
const requireAll = Deno.env.get("FLATYARD_TEST_REQUIRE_ALL") === "1";

if (redisUrl || requireAll) {
  dbTest(
    "an enqueue on one Redis connection wakes a worker on another, and its log streams back",
    async (db) => {
      if (!redisUrl) throw new Error("FLATYARD_TEST_REDIS_URL is not set");
      const prefix = `test:${crypto.randomUUID()}:`;
      const apiBus = await createRedisBus(redisUrl, prefix);
      const workerBus = await createRedisBus(redisUrl, prefix);
      const api = new JobQueue(db, apiBus);
      // A poll interval far longer than the test: only the wake-up can make the job run in time.
      const worker = await startWorker({
        queue: new JobQueue(db, workerBus),
        bus: workerBus,
        logger: silentLogger,
        concurrency: 1,
        leaseSeconds: 10,
        pollMs: 60_000,
        handlers: {
          greet: async (p, { log }) => {
            await log(`hello ${(p as { to: string }).to}`);
            // Time for the test to subscribe to this job's log channel before the second line.
            await new Promise((r) => setTimeout(r, 500));
            await log("and goodbye");
            return "done";
          },
        },
      });
      try {
        // Let the worker's first (empty) look at the queue pass, so it is idle and waiting.
        await new Promise((r) => setTimeout(r, 300));
        const lines: string[] = [];
        const job = await api.enqueue("greet", { to: "world" }, {
          delaySeconds: 0,
        });
        const off = await apiBus.subscribe(
          channels.log(job.id),
          (m) => lines.push(JSON.parse(m).text),
        );
        const started = Date.now();
        for (;;) {
          const j = await api.get(job.id);
          if (j?.status === "succeeded") break;
          if (Date.now() - started > 10_000) {
            throw new Error(`job still ${j?.status} after 10 s: no wake-up`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(
          (await api.readLog(job.id)).text,
          "hello world\nand goodbye\n",
        );
        await off();
        assert.ok(
          lines.includes("and goodbye\n"),
          `live lines: ${JSON.stringify(lines)}`,
        );
      } finally {
        await worker.stop();
        await apiBus.close();
        await workerBus.close();
      }
    },
  );
}
