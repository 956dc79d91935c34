/**
 * @module The worker: claims jobs for the kinds it has handlers for, runs up to `concurrency` at
 * once, renews each lease by heartbeat, and records success, retry, failure or cancellation.
 * Runs inside `serve` and as the `worker` subcommand; several may share one database.
 */
import type { Bus } from "../bus/bus.ts";
import { errorFields, type Logger } from "../logger.ts";
import { channels, type Job, type JobQueue } from "./queue.ts";

/** What a job handler gets besides its payload. */
export interface JobContext {
  job: Job;
  /** Aborted when the job is cancelled, its lease is lost, or the worker stops hard. */
  signal: AbortSignal;
  /** Appends one line to the job's log (a newline is added). */
  log(line: string): Promise<void>;
}

/** Runs one job; its resolved value is stored as the job's result. */
export type JobHandler = (
  payload: unknown,
  ctx: JobContext,
) => Promise<unknown>;

/**
 * Thrown by a handler that cannot start yet (it waits for an upload, say): the job goes back to
 * the queue for `seconds`, and the attempt does not count.
 */
export class DeferJobError extends Error {
  override name = "DeferJobError";
  constructor(message: string, readonly seconds: number) {
    super(message);
  }
}

/** Thrown by a handler when retrying cannot help (bad input, a build that does not compile). */
export class PermanentJobError extends Error {
  override name = "PermanentJobError";
}

/** Worker settings. */
export interface WorkerOptions {
  queue: JobQueue;
  bus: Bus;
  logger: Logger;
  handlers: Record<string, JobHandler>;
  concurrency: number;
  leaseSeconds: number;
  /** Extra housekeeping run with lease recovery (e.g. reconciling records of dead jobs). */
  onTick?: () => Promise<void>;
  /** Longest wait between looks at the queue when no wake-up arrives. Default 1000 ms. */
  pollMs?: number;
  id?: string;
}

/** A running worker. */
export interface Worker {
  readonly id: string;
  /** Stops claiming; waits up to `graceMs` for running jobs, then aborts them (they are retried). */
  stop(graceMs?: number): Promise<void>;
  /** Resolves when no job is running (tests). */
  idle(): Promise<void>;
}

/** Starts a worker loop. */
export async function startWorker(opts: WorkerOptions): Promise<Worker> {
  const id = opts.id ??
    `${Deno.hostname()}:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`;
  const log = opts.logger.child({ worker: id });
  const kinds = Object.keys(opts.handlers);
  const pollMs = opts.pollMs ?? 1000;
  const running = new Map<
    number,
    { abort: AbortController; done: Promise<void> }
  >();
  let stopping = false;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    wakeUp?.();
    wakeUp = undefined;
  };

  const unsubscribe = [
    await opts.bus.subscribe(channels.wake, wake),
    await opts.bus.subscribe(channels.cancel, (msg) => {
      running.get(Number(msg))?.abort.abort(new CancelReason("cancelled"));
    }),
  ];

  function runJob(job: Job): void {
    const handler = opts.handlers[job.kind]!;
    const abort = new AbortController();
    const jlog = log.child({
      job: job.id,
      kind: job.kind,
      attempt: job.attempts,
    });
    const heartbeat = setInterval(async () => {
      try {
        const beat = await opts.queue.heartbeat(job.id, id, opts.leaseSeconds);
        if (!beat.ok) abort.abort(new CancelReason("lease-lost"));
        else if (beat.cancelRequested) {
          abort.abort(new CancelReason("cancelled"));
        }
      } catch (err) {
        jlog.warn("job heartbeat failed", errorFields(err));
      }
    }, Math.max(250, (opts.leaseSeconds * 1000) / 3));
    const done = (async () => {
      const started = performance.now();
      jlog.info("job started");
      try {
        if (job.cancelRequested) abort.abort(new CancelReason("cancelled"));
        const result = await handler(job.payload, {
          job,
          signal: abort.signal,
          log: async (line) => {
            await opts.queue.appendLog(
              job.id,
              line.endsWith("\n") ? line : line + "\n",
            );
          },
        });
        abort.signal.throwIfAborted();
        await opts.queue.complete(job.id, id, result);
        jlog.info("job succeeded", {
          ms: Math.round(performance.now() - started),
        });
      } catch (err) {
        const reason = abort.signal.reason;
        const ms = Math.round(performance.now() - started);
        if (reason instanceof CancelReason && reason.why === "cancelled") {
          await opts.queue.appendLog(job.id, "Job cancelled\n").catch(() => {});
          await opts.queue.markCancelled(job.id, id);
          jlog.info("job cancelled", { ms });
        } else if (
          reason instanceof CancelReason && reason.why === "lease-lost"
        ) {
          jlog.warn("job abandoned: lease lost", { ms });
        } else if (err instanceof DeferJobError) {
          await opts.queue.release(job.id, id, err.seconds);
          jlog.info("job deferred", { ms, reason: err.message });
        } else {
          const message = err instanceof Error ? err.message : String(err);
          const permanent = err instanceof PermanentJobError;
          await opts.queue.appendLog(job.id, `Job failed: ${message}\n`).catch(
            () => {},
          );
          const outcome = await opts.queue.fail(job.id, id, message, {
            permanent,
          });
          jlog.warn(`job ${outcome}`, { ms, ...errorFields(err, !permanent) });
        }
      } finally {
        clearInterval(heartbeat);
        running.delete(job.id);
        // Jobs that needed this one to succeed are cancelled now, not at the next tick.
        await opts.queue.cancelBlockedDependents().catch(() => {});
        wake();
      }
    })();
    running.set(job.id, { abort, done });
  }

  let lastRecovery = 0;
  const loop = (async () => {
    while (!stopping) {
      try {
        // Recovery is cheap but needs no more than a few runs per lease period.
        if (
          Date.now() - lastRecovery > Math.min(5000, opts.leaseSeconds * 500)
        ) {
          lastRecovery = Date.now();
          const recovered = await opts.queue.recoverExpiredLeases();
          if (recovered.length > 0) {
            log.warn("recovered jobs of dead workers", { jobs: recovered });
          }
          await opts.queue.cancelBlockedDependents();
          await opts.onTick?.();
        }
        if (running.size < opts.concurrency && kinds.length > 0) {
          const job = await opts.queue.claim(id, kinds, opts.leaseSeconds);
          if (job) {
            runJob(job);
            continue;
          }
        }
      } catch (err) {
        log.error("worker loop error", errorFields(err, true));
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();

  log.info("worker started", { kinds, concurrency: opts.concurrency });
  return {
    id,
    async stop(graceMs = 10_000) {
      stopping = true;
      wake();
      await loop;
      const all = Promise.all([...running.values()].map((r) => r.done));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((r) => timer = setTimeout(() => r(true), graceMs)),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        // Hard stop: hand the jobs back at once (not counted as an attempt) for another worker.
        const ids = [...running.keys()];
        for (const r of running.values()) {
          r.abort.abort(new CancelReason("lease-lost"));
        }
        await all;
        for (const jobId of ids) await opts.queue.release(jobId, id);
      }
      for (const off of unsubscribe) await off();
      log.info("worker stopped");
    },
    async idle() {
      while (running.size > 0) {
        await Promise.all([...running.values()].map((r) => r.done));
      }
    },
  };
}

class CancelReason {
  constructor(readonly why: "cancelled" | "lease-lost") {}
}
