/** The §4.4 poll loop: log lines and offsets, the sleep schedule, tolerated errors, outcomes. */
import assert from "node:assert/strict";
import { FlatManagerClient } from "./flat_manager_client.ts";
import { FlatManagerApiError } from "./flat_manager_errors.ts";
import {
  ConnectionError,
  type HttpRequest,
  type HttpResponse,
} from "./http_transport.ts";
import { FailedJobError, pollDelayMs, waitForJob } from "./wait_for_job.ts";

const URL_ = "http://fm.test/api/v1/build/7/commit";
const enc = new TextEncoder();

type Step = Record<string, unknown> | number | Error;

/** Polls answered from `steps` in turn (a number is an error status); records offsets and sleeps. */
async function poll(steps: Step[], now = 0, held = false) {
  const offsets: unknown[] = [];
  const prefers: (string | undefined)[] = [];
  const sleeps: number[] = [];
  const lines: string[] = [];
  let i = 0;
  const transport = (req: HttpRequest): Promise<HttpResponse> => {
    offsets.push(
      JSON.parse(
        new TextDecoder().decode(req.body as Uint8Array),
      )["log-offset"],
    );
    prefers.push(req.headers?.["Prefer"]);
    const s = steps[Math.min(i++, steps.length - 1)]!;
    if (s instanceof Error) return Promise.reject(s);
    const status = typeof s === "number" ? s : 200;
    const body = typeof s === "number"
      ? "Internal Server Error"
      : JSON.stringify({
        id: 10,
        kind: 0,
        contents: "{}",
        log: "",
        ...s,
      });
    return Promise.resolve({
      status,
      headers: new Headers(held ? { "Preference-Applied": "wait=10" } : {}),
      body: enc.encode(body),
    });
  };
  using client = new FlatManagerClient({ token: "t", transport });
  const result = await waitForJob(client, URL_, {
    ...(held ? { wait: 10 } : {}),
    log: (l) => lines.push(l),
    now: () => now,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  }).then((job) => ({ job }), (error) => ({ error }));
  return { ...result, offsets, sleeps, lines, polls: i, prefers };
}

Deno.test("the sleep between polls follows the clients' schedule", () => {
  const table: [number, number][] = [
    [0, 1000],
    [1, 1000],
    [2, 3000],
    [4, 3000],
    [5, 5000],
    [
      14,
      5000,
    ],
    [15, 10000],
    [29, 10000],
    [30, 60000],
    [100, 60000],
  ];
  for (const [n, ms] of table) assert.equal(pollDelayMs(n), ms, `${n} polls`);
});

Deno.test("a job's log is printed as | lines with byte offsets, then success", async () => {
  const r = await poll([
    {
      status: 0,
      start_after: { secs_since_epoch: 1_000_130, nanos_since_epoch: 0 },
    },
    { status: 1, log: "héllo\nwörld\n" },
    ...Array.from({ length: 35 }, () => ({ status: 1 })),
    { status: 1, log: "last\n" },
    { status: 2 },
  ], 1_000_000_000);
  assert.ok("job" in r);
  assert.equal(r.job.status, 2);
  assert.deepEqual(r.lines, [
    "Waiting 130 seconds before starting job",
    "/ Job was started",
    "| héllo",
    "| wörld",
    "| last",
    "\\ Job completed successfully",
  ]);
  const first = enc.encode("héllo\nwörld\n").length;
  assert.equal(first, 14);
  assert.deepEqual(r.offsets.slice(0, 3), [0, 0, first]);
  assert.equal(r.offsets.at(-1), first + 5);
  // 1 s after a poll with new log (or the first empty one), then 3, 5, 10 and 60 s.
  assert.deepEqual(r.sleeps.slice(0, 3), [1000, 1000, 1000]);
  assert.deepEqual(r.sleeps.slice(3, 6), [3000, 3000, 3000]);
  assert.deepEqual(r.sleeps.slice(6, 16), Array(10).fill(5000));
  assert.deepEqual(r.sleeps.slice(16, 31), Array(15).fill(10000));
  assert.deepEqual(r.sleeps.slice(31, 37), Array(6).fill(60000));
  assert.equal(r.sleeps.at(-1), 1000, "the log grew again");
});

Deno.test("status 3 ends the wait with a FailedJobError", async () => {
  const r = await poll([{ status: 1, log: "step\n" }, {
    status: 3,
    log: "error: broken\n",
  }]);
  assert.ok("error" in r && r.error instanceof FailedJobError);
  assert.equal(r.error.job.status, 3);
  assert.deepEqual(r.lines.slice(-2), ["| error: broken", "\\ Job failed"]);
});

Deno.test("five errors in a row are ignored, the sixth is thrown", async (t) => {
  await t.step("errors then success", async () => {
    const r = await poll([500, 502, new ConnectionError("reset"), 503, 500, {
      status: 2,
    }]);
    assert.ok("job" in r);
    assert.equal(r.lines.filter((l) => l.includes("ignoring")).length, 5);
    assert.ok(
      r.lines.includes("Unexpected response 502 getting job log, ignoring"),
    );
    // An error makes the next sleep 3 s: the counter jumps to 4.
    assert.deepEqual(r.sleeps, [3000, 3000, 3000, 3000, 3000]);
  });
  await t.step("six errors", async () => {
    const r = await poll([500]);
    assert.ok("error" in r && r.error instanceof FlatManagerApiError);
    assert.equal(r.polls, 6);
  });
  await t.step("a success resets the count", async () => {
    const r = await poll([
      500,
      500,
      500,
      500,
      500,
      { status: 1 },
      500,
      500,
      500,
      { status: 2 },
    ]);
    assert.ok("job" in r);
  });
});

Deno.test("a server that holds polls (Prefer: wait) is polled again without a sleep", async () => {
  const held = await poll(
    [{ status: 1 }, { status: 1, log: "a\n" }, {
      status: 2,
    }],
    0,
    true,
  );
  assert.ok("job" in held);
  assert.deepEqual(held.sleeps, []);
  assert.deepEqual(held.prefers, ["wait=10", "wait=10", "wait=10"]);
  // The same answers without Preference-Applied: the usual schedule, and no header sent.
  const plain = await poll([{ status: 1 }, { status: 1, log: "a\n" }, {
    status: 2,
  }]);
  assert.deepEqual(plain.sleeps, [pollDelayMs(1), pollDelayMs(0)]);
  assert.deepEqual(plain.prefers, [undefined, undefined, undefined]);
});
