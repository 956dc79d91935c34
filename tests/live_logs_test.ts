/**
 * Live job logs over SSE and WebSocket, on a real server: lines appended with the queue's log API
 * while viewers watch, resuming mid-stream without losing or repeating a byte, several viewers,
 * two API replicas sharing PostgreSQL and Redis, and who may watch.
 */
import assert from "node:assert/strict";
import { OpenAPIHono } from "@hono/zod-openapi";
// @ts-types="@types/ws"
import WebSocket from "ws";
import type { Bus } from "../lib/bus/bus.ts";
import { createMemoryBus } from "../lib/bus/memory_bus.ts";
import { createRedisBus } from "../lib/bus/redis_bus.ts";
import { serveApp } from "../lib/http/node_server.ts";
import { JobQueue } from "../lib/queue/queue.ts";
import { createLiveLogRoutes } from "../routes/live_logs.ts";
import { followJobLog, type LiveLogEvent } from "../lib/queue/log_follower.ts";
import { dbTest, requireAll } from "./support/db.ts";
import { type TestApp, testApp } from "./support/app.ts";

const redisUrl = Deno.env.get("FLATYARD_TEST_REDIS_URL");
/** The bound on every wait: generous, since only a hang should ever reach it. */
const WAIT_MS = 10_000;
const encoder = new TextEncoder();
const bytes = (s: string) => encoder.encode(s).length;

function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      timer = setTimeout(
        () => reject(new Error(`Timed out after ${ms} ms: ${what}`)),
        ms,
      )
    ),
  ]).finally(() => clearTimeout(timer));
}

/** A running job of a kind no worker handles, so the test is the only one writing its log. */
async function runningJob(queue: JobQueue): Promise<number> {
  const job = await queue.enqueue("test.live", {});
  const claimed = await queue.claim("test-worker", ["test.live"], 600);
  assert.equal(claimed?.id, job.id);
  return job.id;
}

const line = (i: number) => `line ${i} ✓ ${"·".repeat(i % 7)}\n`;

// --- SSE client ------------------------------------------------------------------------------

interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** Reads a text/event-stream body event by event; comments are counted, not returned. */
class SseReader {
  comments: string[] = [];
  #buffer = "";
  #reader: ReadableStreamDefaultReader<string>;

  constructor(res: Response) {
    this.#reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event, or undefined when the stream ends. */
  next(): Promise<SseEvent | undefined> {
    return within(
      (async () => {
        for (;;) {
          const block = await this.#block();
          if (block !== "comment") return block;
        }
      })(),
      "waiting for an SSE event",
    );
  }

  /** Reads until the comment `text` arrives, skipping events. */
  comment(text: string): Promise<void> {
    return within(
      (async () => {
        while (!this.comments.includes(text)) {
          if (await this.#block() === undefined) {
            throw new Error(`The stream ended without the comment "${text}"`);
          }
        }
      })(),
      `waiting for the comment "${text}"`,
    );
  }

  /** The next block: an event, "comment" for comments alone, undefined at the end. */
  async #block(): Promise<SseEvent | "comment" | undefined> {
    for (;;) {
      const cut = this.#buffer.indexOf("\n\n");
      if (cut >= 0) {
        const block = this.#buffer.slice(0, cut);
        this.#buffer = this.#buffer.slice(cut + 2);
        const event: SseEvent = { event: "message", data: "" };
        const data: string[] = [];
        for (const l of block.split("\n")) {
          if (l.startsWith(":")) this.comments.push(l);
          else if (l.startsWith("event: ")) event.event = l.slice(7);
          else if (l.startsWith("id: ")) event.id = l.slice(4);
          else if (l.startsWith("data: ")) data.push(l.slice(6));
        }
        if (data.length === 0) return "comment";
        event.data = data.join("\n");
        return event;
      }
      const { done, value } = await this.#reader.read();
      if (done) return undefined;
      this.#buffer += value;
    }
  }

  /** The next log event, checked: its SSE id is its offset. */
  async log(): Promise<Extract<LiveLogEvent, { type: "log" }>> {
    const e = await this.next();
    assert.equal(e?.event, "log", `expected a log event, got ${e?.event}`);
    const body = JSON.parse(e!.data) as LiveLogEvent;
    assert.equal(body.type, "log");
    if (body.type !== "log") throw new Error("unreachable");
    assert.equal(e!.id, String(body.offset));
    return body;
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/** Reads log events until `offset` is reached; returns the text (each chunk must continue the last). */
async function readUntil(
  sse: SseReader,
  from: number,
  offset: number,
): Promise<string> {
  let text = "";
  let at = from;
  while (at < offset) {
    const e = await sse.log();
    assert.equal(
      e.offset - bytes(e.text),
      at,
      "chunk does not continue the last",
    );
    at = e.offset;
    text += e.text;
  }
  assert.equal(at, offset);
  return text;
}

// --- WebSocket client ------------------------------------------------------------------------

/** A real WebSocket client whose messages are read in order. */
class WsViewer {
  messages: LiveLogEvent[] = [];
  closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  #read = 0;
  #waiters: (() => void)[] = [];
  #ws: WebSocket;

  constructor(url: string, headers: Record<string, string>) {
    this.#ws = new WebSocket(url, { headers });
    this.#ws.on("message", (data) => {
      this.messages.push(JSON.parse(String(data)));
      this.#notify();
    });
    this.opened = new Promise((resolve, reject) => {
      this.#ws.once("open", () => resolve());
      this.#ws.once("error", reject);
    });
    this.closed = new Promise((resolve) =>
      this.#ws.once("close", (code, reason) => {
        resolve({ code, reason: String(reason) });
        this.#notify();
      })
    );
  }

  #notify() {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The next message, or undefined once the socket has closed and every message was read. */
  next(): Promise<LiveLogEvent | undefined> {
    return within(
      (async () => {
        while (this.#read >= this.messages.length) {
          if (this.#ws.readyState === WebSocket.CLOSED) return undefined;
          await new Promise<void>((r) => this.#waiters.push(r));
        }
        return this.messages[this.#read++];
      })(),
      "waiting for a WebSocket message",
    );
  }

  close(): Promise<{ code: number; reason: string }> {
    this.#ws.close(1000);
    return within(this.closed, "closing the WebSocket");
  }
}

/** What an upgrade refused with plain HTTP answered. */
function refusedUpgrade(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Uint8Array) => body += new TextDecoder().decode(c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body });
          ws.terminate();
        });
      });
      ws.once("error", () => {/* the refusal itself; reported above */});
      ws.once("open", () => reject(new Error("The upgrade was accepted")));
    }),
    "waiting for the refused upgrade",
  );
}

// --- fixtures --------------------------------------------------------------------------------

interface Served {
  a: TestApp;
  base: string;
  ws: string;
  /** `Authorization` of a maintainer's session. */
  auth: Record<string, string>;
  shutdown(): Promise<void>;
}

async function served(a: TestApp): Promise<Served> {
  const server = await serveApp(a.app, { hostname: "127.0.0.1", port: 0 });
  await a.user("mia", "maintainer");
  const session = await a.login("mia");
  return {
    a,
    base: `http://127.0.0.1:${server.port}`,
    ws: `ws://127.0.0.1:${server.port}`,
    auth: { Authorization: `Bearer ${session}` },
    shutdown: () => server.shutdown(),
  };
}

async function withServer(
  db: Parameters<typeof testApp>[0],
  fn: (s: Served) => Promise<void>,
): Promise<void> {
  const a = await testApp(db);
  const s = await served(a);
  try {
    await fn(s);
  } finally {
    await s.shutdown();
    await a.close();
  }
}

async function openSse(
  s: Served,
  path: string,
  headers: Record<string, string> = {},
): Promise<SseReader> {
  const res = await fetch(`${s.base}${path}`, {
    headers: { ...s.auth, ...headers },
  });
  assert.equal(res.status, 200, await (res.ok ? "" : res.text()));
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  return new SseReader(res);
}

// --- tests -----------------------------------------------------------------------------------

dbTest(
  "GET /api/v1/jobs/{id}/log/stream sends the backlog, each line as it is written, then the end",
  async (db) => {
    await withServer(db, async (s) => {
      const q = s.a.deps.queue;
      const id = await runningJob(q);
      await q.appendLog(id, line(0));
      await q.appendLog(id, line(1));
      const sse = await openSse(s, `/api/v1/jobs/${id}/log/stream`);
      let text = await readUntil(sse, 0, bytes(line(0) + line(1)));
      // Each line is appended only once the one before has arrived: they come live.
      for (let i = 2; i < 8; i++) {
        const at = await q.appendLog(id, line(i));
        text += await readUntil(sse, at, at + bytes(line(i)));
      }
      assert.ok(await q.complete(id, "test-worker", null));
      const end = await sse.next();
      assert.equal(end?.event, "end");
      assert.deepEqual(JSON.parse(end!.data), {
        type: "end",
        status: "succeeded",
      });
      assert.equal(await sse.next(), undefined, "the stream closes after end");
      assert.equal(text, (await q.readLog(id)).text);
      assert.equal(text, Array.from({ length: 8 }, (_, i) => line(i)).join(""));
    });
  },
);

dbTest(
  "GET /api/v1/jobs/{id}/log/stream resumes after Last-Event-ID, ahead of ?offset",
  async (db) => {
    await withServer(db, async (s) => {
      const q = s.a.deps.queue;
      const id = await runningJob(q);
      for (let i = 0; i < 3; i++) await q.appendLog(id, line(i));
      const first = await openSse(s, `/api/v1/jobs/${id}/log/stream`);
      let text = await readUntil(first, 0, bytes(line(0) + line(1) + line(2)));
      const at = await q.appendLog(id, line(3));
      text += await readUntil(first, at, at + bytes(line(3)));
      const lastId = at + bytes(line(3));
      await first.cancel();
      // Written while no one watches.
      for (let i = 4; i < 7; i++) await q.appendLog(id, line(i));
      // An EventSource reconnects to the same URL (here ?offset=0) and adds Last-Event-ID.
      const again = await openSse(s, `/api/v1/jobs/${id}/log/stream?offset=0`, {
        "Last-Event-ID": String(lastId),
      });
      const done = (await q.get(id))!.logBytes;
      text += await readUntil(again, lastId, done);
      const more = await q.appendLog(id, line(7));
      text += await readUntil(again, more, more + bytes(line(7)));
      assert.ok(await q.fail(id, "test-worker", "boom", { permanent: true }));
      const end = await again.next();
      assert.deepEqual(JSON.parse(end!.data), {
        type: "end",
        status: "failed",
      });
      assert.equal(text, Array.from({ length: 8 }, (_, i) => line(i)).join(""));

      // An ended job's stream from an offset: the rest of the log, the end, and the close.
      const from = bytes(line(0));
      const late = await openSse(
        s,
        `/api/v1/jobs/${id}/log/stream?offset=${from}`,
      );
      assert.equal(
        await readUntil(late, from, bytes(text)),
        text.slice(line(0).length),
      );
      assert.equal((await late.next())?.event, "end");
      assert.equal(await late.next(), undefined);
    });
  },
);

dbTest(
  "GET /api/v1/jobs/{id}/log/ws: a client that drops mid-stream resumes from its offset with nothing lost or repeated",
  async (db) => {
    await withServer(db, async (s) => {
      const q = s.a.deps.queue;
      const id = await runningJob(q);
      for (let i = 0; i < 5; i++) await q.appendLog(id, line(i));
      const total = 60;
      let firstGone!: () => void;
      const gone = new Promise<void>((r) => firstGone = r);
      let secondBack!: () => void;
      const back = new Promise<void>((r) => secondBack = r);
      // Lines keep coming throughout: some while the first viewer watches, some while nobody
      // does, some after the second viewer is in.
      const appender = (async () => {
        for (let i = 5; i < total; i++) {
          if (i === 20) await within(gone, "the first viewer to leave");
          if (i === 40) await within(back, "the second viewer to arrive");
          await q.appendLog(id, line(i));
          await new Promise((r) => setTimeout(r, 1));
        }
        assert.ok(await q.complete(id, "test-worker", { ok: true }));
      })();

      const first = new WsViewer(`${s.ws}/api/v1/jobs/${id}/log/ws`, s.auth);
      await within(first.opened, "the first viewer to connect");
      let text = "";
      let offset = 0;
      while (bytes(text) < bytes(line(0)) * 8) {
        const m = await first.next();
        assert.equal(m?.type, "log");
        if (m?.type !== "log") break;
        assert.equal(m.offset - bytes(m.text), offset);
        text += m.text;
        offset = m.offset;
      }
      // Whatever arrives after this point is not kept: the resume must send it again.
      await first.close();
      firstGone();

      const second = new WsViewer(
        `${s.ws}/api/v1/jobs/${id}/log/ws?offset=${offset}`,
        s.auth,
      );
      await within(second.opened, "the second viewer to connect");
      let end: LiveLogEvent | undefined;
      for (;;) {
        const m = await second.next();
        secondBack();
        assert.ok(m, "the socket closed before the end message");
        if (m.type === "end") {
          end = m;
          break;
        }
        assert.equal(m.offset - bytes(m.text), offset);
        text += m.text;
        offset = m.offset;
      }
      await appender;
      assert.deepEqual(end, { type: "end", status: "succeeded" });
      assert.equal(
        (await within(second.closed, "the server's close")).code,
        1000,
      );
      const full = Array.from({ length: total }, (_, i) => line(i)).join("");
      assert.equal(text, full);
      assert.equal((await q.readLog(id)).text, full);
    });
  },
);

dbTest(
  "two viewers of one job, one per protocol, each see every line once",
  async (db) => {
    await withServer(db, async (s) => {
      const q = s.a.deps.queue;
      const id = await runningJob(q);
      await q.appendLog(id, line(0));
      const sse = await openSse(s, `/api/v1/jobs/${id}/log/stream`);
      const ws = new WsViewer(`${s.ws}/api/v1/jobs/${id}/log/ws`, s.auth);
      const texts = ["", ""];
      const readWs = async (until: number) => {
        let at = bytes(texts[1]!);
        while (at < until) {
          const m = await ws.next();
          assert.equal(m?.type, "log");
          if (m?.type !== "log") return;
          assert.equal(m.offset - bytes(m.text), at);
          texts[1] += m.text;
          at = m.offset;
        }
      };
      texts[0] += await readUntil(sse, 0, bytes(line(0)));
      await readWs(bytes(line(0)));
      for (let i = 1; i < 6; i++) {
        const at = await q.appendLog(id, line(i));
        texts[0] += await readUntil(sse, at, at + bytes(line(i)));
        await readWs(at + bytes(line(i)));
      }
      await q.cancel(id);
      assert.ok(await q.markCancelled(id, "test-worker"));
      assert.deepEqual(JSON.parse((await sse.next())!.data), {
        type: "end",
        status: "cancelled",
      });
      assert.deepEqual(await ws.next(), { type: "end", status: "cancelled" });
      const full = Array.from({ length: 6 }, (_, i) => line(i)).join("");
      assert.deepEqual(texts, [full, full]);
      await within(ws.closed, "the server's close");
    });
  },
);

if (redisUrl || requireAll) {
  dbTest(
    "a viewer on one API replica sees lines written through another, over Redis",
    async (db) => {
      if (!redisUrl) throw new Error("FLATYARD_TEST_REDIS_URL is not set");
      // Two replicas: one database, one Redis, a connection each; a unique prefix per test.
      const prefix = `test:${crypto.randomUUID()}:`;
      const buses: Bus[] = [
        await createRedisBus(redisUrl, prefix),
        await createRedisBus(redisUrl, prefix),
      ];
      const writer = await testApp(db, { bus: buses[0]! });
      const reader = await testApp(db, { bus: buses[1]! });
      const s = await served(reader);
      try {
        const q = writer.deps.queue;
        const id = await runningJob(q);
        await q.appendLog(id, line(0));
        const sse = await openSse(s, `/api/v1/jobs/${id}/log/stream`);
        const ws = new WsViewer(`${s.ws}/api/v1/jobs/${id}/log/ws`, s.auth);
        let text = await readUntil(sse, 0, bytes(line(0)));
        let wsText = "";
        const readWs = async (until: number) => {
          while (bytes(wsText) < until) {
            const m = await ws.next();
            if (m?.type !== "log") throw new Error(`got ${JSON.stringify(m)}`);
            wsText += m.text;
          }
        };
        await readWs(bytes(line(0)));
        // Appended on the writer after the viewers are in: within WAIT_MS, shorter than the
        // 15 s database re-read, only the Redis fan-out can bring them.
        for (let i = 1; i < 5; i++) {
          const at = await q.appendLog(id, line(i));
          text += await readUntil(sse, at, at + bytes(line(i)));
          await readWs(at + bytes(line(i)));
        }
        assert.ok(await q.complete(id, "test-worker", null));
        assert.equal((await sse.next())?.event, "end");
        assert.deepEqual(await ws.next(), { type: "end", status: "succeeded" });
        const full = Array.from({ length: 5 }, (_, i) => line(i)).join("");
        assert.equal(text, full);
        assert.equal(wsText, full);
      } finally {
        await s.shutdown();
        await reader.close();
        await writer.close();
        for (const b of buses) await b.close();
      }
    },
  );
}

dbTest(
  "live log streams refuse anonymous viewers, viewers without the maintainer role and unknown jobs",
  async (db) => {
    await withServer(db, async (s) => {
      const q = s.a.deps.queue;
      const id = await runningJob(q);
      await s.a.user("vic", "viewer");
      const viewer = { Authorization: `Bearer ${await s.a.login("vic")}` };
      const admin = {
        Authorization: `Bearer ${await s.a.token({ scope: ["admin"] })}`,
      };
      const stream = `/api/v1/jobs/${id}/log/stream`;
      const wsPath = `/api/v1/jobs/${id}/log/ws`;
      const cases: [string, string, Record<string, string>, number][] = [
        ["SSE without credentials", stream, {}, 401],
        ["SSE with a bad token", stream, { Authorization: "Bearer nope" }, 401],
        ["SSE as a viewer", stream, viewer, 403],
        [
          "SSE of an unknown job",
          "/api/v1/jobs/999999/log/stream",
          s.auth,
          404,
        ],
        ["SSE with a bad Last-Event-ID", stream, {
          ...s.auth,
          "Last-Event-ID": "soon",
        }, 422],
        ["WebSocket without credentials", wsPath, {}, 401],
        ["WebSocket as a viewer", wsPath, viewer, 403],
        [
          "WebSocket of an unknown job",
          "/api/v1/jobs/999999/log/ws",
          s.auth,
          404,
        ],
        ["WebSocket with a bad offset", `${wsPath}?offset=-1`, s.auth, 422],
      ];
      for (const [name, path, headers, status] of cases) {
        if (path.endsWith("/ws") || path.includes("/ws?")) {
          const res = await refusedUpgrade(`${s.ws}${path}`, headers);
          assert.equal(res.status, status, `${name}: ${res.body}`);
          assert.equal(JSON.parse(res.body).status, status, name);
        } else {
          const res = await fetch(`${s.base}${path}`, { headers });
          assert.equal(res.status, status, `${name}: ${await res.text()}`);
        }
      }

      // An admin-scoped token may watch; a session cookie may too, from our own origin only.
      const tokenViewer = new WsViewer(`${s.ws}${wsPath}`, admin);
      await within(tokenViewer.opened, "the admin token's upgrade");
      await tokenViewer.close();
      const session = s.auth.Authorization!.slice(7);
      const cookie = { Cookie: `flatyard_session=${session}` };
      const own = new WsViewer(`${s.ws}${wsPath}`, {
        ...cookie,
        Origin: s.base,
      });
      await within(own.opened, "the same-origin cookie upgrade");
      await own.close();
      const evil = await refusedUpgrade(`${s.ws}${wsPath}`, {
        ...cookie,
        Origin: "https://evil.example",
      });
      assert.equal(evil.status, 403, evil.body);

      // A plain GET of the WebSocket path is told to upgrade.
      const plain = await fetch(`${s.base}${wsPath}`, { headers: s.auth });
      assert.equal(plain.status, 426);
      assert.equal((await plain.json()).status, 426);
    });
  },
);

dbTest(
  "a quiet SSE stream gets heartbeats, and lines whose bus message was lost still arrive",
  async (db) => {
    const a = await testApp(db);
    try {
      // A bus that delivers nothing: only the periodic database re-read can bring lines.
      const deaf: Bus = {
        kind: "memory",
        publish: () => Promise.resolve(),
        subscribe: () => Promise.resolve(() => Promise.resolve()),
        close: () => Promise.resolve(),
      };
      const app = new OpenAPIHono();
      app.route(
        "/",
        createLiveLogRoutes({ ...a.deps, bus: deaf }, {
          heartbeatMs: 20,
          resyncMs: 50,
        }),
      );
      const id = await runningJob(a.deps.queue);
      const token = await a.token({ scope: ["admin"] });
      const res = await app.request(`/api/v1/jobs/${id}/log/stream`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 200);
      const sse = new SseReader(res);
      const at = await a.deps.queue.appendLog(id, line(1));
      assert.equal(await readUntil(sse, at, at + bytes(line(1))), line(1));
      await sse.comment(": keep-alive");
      assert.ok(await a.deps.queue.complete(id, "test-worker", null));
      // Drain to the end: heartbeats may come before it.
      let e = await sse.next();
      while (e?.event === "log") e = await sse.next();
      assert.equal(e?.event, "end");
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "server shutdown ends live streams: SSE closes, WebSockets close with 1001",
  async (db) => {
    const a = await testApp(db);
    const s = await served(a);
    let down = false;
    try {
      const id = await runningJob(a.deps.queue);
      await a.deps.queue.appendLog(id, line(0));
      const sse = await openSse(s, `/api/v1/jobs/${id}/log/stream`);
      await readUntil(sse, 0, bytes(line(0)));
      const ws = new WsViewer(`${s.ws}/api/v1/jobs/${id}/log/ws`, s.auth);
      assert.equal((await ws.next())?.type, "log");
      await within(s.shutdown(), "the server to shut down");
      down = true;
      assert.equal(await sse.next(), undefined);
      assert.equal(
        (await within(ws.closed, "the WebSocket to close")).code,
        1001,
      );
    } finally {
      if (!down) await s.shutdown();
      await a.close();
    }
  },
);

dbTest(
  "followJobLog drops a line seen both in the backlog and live, and fills a gap from the database",
  async (db) => {
    const bus = createMemoryBus();
    const queue = new JobQueue(db, bus);
    // Appends through this queue reach the database but no subscriber: a lost bus message.
    const unseen = new JobQueue(db, createMemoryBus());
    const id = await runningJob(queue);
    await queue.appendLog(id, line(0));
    // A line written after the follower subscribed but before it read the backlog arrives
    // twice: in the backlog and as a live message.
    let raced = false;
    const racing: Bus = {
      ...bus,
      async subscribe(channel, handler) {
        const off = await bus.subscribe(channel, handler);
        if (channel.endsWith(".status") && !raced) {
          raced = true;
          await queue.appendLog(id, line(1));
        }
        return off;
      },
    };
    const stop = new AbortController();
    const events = followJobLog(queue, racing, id, 0, stop.signal, 60_000);
    try {
      const got: LiveLogEvent[] = [];
      const take = async () => {
        const r = await within(events.next(), "the next live event");
        assert.ok(!r.done);
        got.push(r.value);
        return r.value;
      };
      assert.deepEqual(await take(), {
        type: "log",
        offset: bytes(line(0) + line(1)),
        text: line(0) + line(1),
      });
      // The live copy of line 1 is dropped: the next event is line 2 ...
      await queue.appendLog(id, line(2));
      assert.deepEqual(await take(), {
        type: "log",
        offset: bytes(line(0) + line(1) + line(2)),
        text: line(2),
      });
      // ... and when line 3's message is lost, line 4's offset shows the gap: both come.
      await unseen.appendLog(id, line(3));
      await queue.appendLog(id, line(4));
      const full = Array.from({ length: 5 }, (_, i) => line(i)).join("");
      assert.deepEqual(await take(), {
        type: "log",
        offset: bytes(full),
        text: line(3) + line(4),
      });
      await queue.complete(id, "test-worker", null);
      assert.deepEqual(await take(), { type: "end", status: "succeeded" });
      assert.equal((await events.next()).done, true);
    } finally {
      stop.abort();
      await events.return();
      await bus.close();
    }
  },
);
