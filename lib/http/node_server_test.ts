/**
 * The node:http front: GET bodies reach the app, other bodies stream, cookies and HEAD behave,
 * idle connections close.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { connect } from "node:net";
import { rawRequest } from "../../tests/support/raw_http.ts";
import { serveApp } from "./node_server.ts";
import type { ServerEnv } from "./node_request.ts";

Deno.test("serveApp hands GET bodies to the app and streams the rest", async (t) => {
  const app = new Hono<{ Bindings: ServerEnv }>();
  app.get(
    "/echo",
    (c) =>
      c.json({
        body: c.env.getBody ? new TextDecoder().decode(c.env.getBody) : null,
        ip: c.env.remoteAddr.hostname,
      }),
  );
  app.post("/count", async (c) => {
    let n = 0;
    for await (const chunk of c.req.raw.body!) n += chunk.length;
    return c.json({ n });
  });
  app.get("/cookies", (c) => {
    c.header("Set-Cookie", "a=1", { append: true });
    c.header("Set-Cookie", "b=2", { append: true });
    return c.text("ok");
  });
  const server = await serveApp(app, { hostname: "127.0.0.1", port: 0 });
  try {
    await t.step(
      "a GET body (flat-manager's log-offset) reaches c.env.getBody",
      async () => {
        const res = await rawRequest(server.port, "GET", "/echo", {
          "Content-Type": "application/json",
        }, '{"log-offset": 17}');
        assert.equal(res.status, 200);
        assert.deepEqual(JSON.parse(res.text()), {
          body: '{"log-offset": 17}',
          ip: "127.0.0.1",
        });
      },
    );
    await t.step("a GET without a body has none", async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}/echo`);
      assert.deepEqual((await res.json()).body, null);
    });
    await t.step("a GET body over 10 MiB is refused with 413", async () => {
      const res = await rawRequest(
        server.port,
        "GET",
        "/echo",
        {},
        new Uint8Array(10 * 1024 * 1024 + 1),
      );
      assert.equal(res.status, 413);
    });
    await t.step("a POST body streams through whole", async () => {
      const body = new Uint8Array(5 * 1024 * 1024).fill(7);
      const res = await fetch(`http://127.0.0.1:${server.port}/count`, {
        method: "POST",
        body,
      });
      assert.deepEqual(await res.json(), { n: body.length });
    });
    await t.step("several Set-Cookie headers survive", async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}/cookies`);
      assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
      await res.body?.cancel();
    });
    await t.step("HEAD has headers and no body", async () => {
      const res = await rawRequest(server.port, "HEAD", "/cookies", {});
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 0);
    });
  } finally {
    await server.shutdown();
  }
});

/**
 * A keep-alive connection to `port`; `ask` sends one request and waits for `body` in its
 * answer, then returns everything the connection received.
 */
async function keepAlive(port: number) {
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((r) => socket.once("connect", () => r()));
  let data = "";
  socket.on("data", (b) => data += b.toString());
  let closedAt = 0;
  const closed = new Promise<void>((r) =>
    socket.once("close", () => {
      closedAt = performance.now();
      r();
    })
  );
  const ask = async (path: string, body: string) => {
    const from = data.length;
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    while (!data.slice(from).includes(body)) {
      if (socket.destroyed) throw new Error(`closed before ${body}: ${data}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return data;
  };
  return { socket, ask, closed, closedAt: () => closedAt };
}

Deno.test("shutdown closes idle keep-alive connections at once and lets a busy one finish", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  let started!: () => void;
  const inFlight = new Promise<void>((r) => started = r);
  const app = new Hono<{ Bindings: ServerEnv }>();
  app.get("/quick", (c) => c.text("quick"));
  app.get("/slow", async (c) => {
    started();
    await held;
    return c.text("slow and whole");
  });
  const server = await serveApp(app, { hostname: "127.0.0.1", port: 0 });
  const open = () => keepAlive(server.port);
  const idle = await open();
  await idle.ask("/quick", "quick");
  const busy = await open();
  const answer = busy.ask("/slow", "slow and whole");
  await inFlight;
  const down = server.shutdown();
  await idle.closed; // closed without waiting for the busy one
  release();
  assert.match(await answer, /^HTTP\/1\.1 200 /);
  await busy.closed;
  await down;
});

Deno.test("idle keep-alive connections are closed; busy and active ones are not", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  const app = new Hono<{ Bindings: ServerEnv }>();
  app.get("/quick", (c) => c.text("quick"));
  app.get("/slow", async (c) => {
    await held;
    return c.text("slow and whole");
  });
  const idleTimeoutMs = 100;
  const server = await serveApp(app, {
    hostname: "127.0.0.1",
    port: 0,
    idleTimeoutMs,
  });
  const open = () => keepAlive(server.port);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    const idle = await open();
    await idle.ask("/quick", "quick");
    const idleSince = performance.now();
    const silent = await open(); // never sends a request
    const active = await open();
    const busy = await open();
    const slow = busy.ask("/slow", "slow and whole").then(
      () => "answered",
      (err: Error) => err.message,
    );
    // Five intervals: the active connection asks every half interval, the busy one waits.
    for (let i = 0; i < 10; i++) {
      await active.ask("/quick", "quick");
      await sleep(idleTimeoutMs / 2);
    }
    assert.ok(idle.socket.destroyed, "the idle connection is closed");
    assert.ok(
      silent.socket.destroyed,
      "a connection that never asks is closed",
    );
    assert.ok(
      idle.closedAt() - idleSince >= idleTimeoutMs,
      "not before a whole interval",
    );
    assert.ok(!active.socket.destroyed, "the active connection stays");
    assert.ok(!busy.socket.destroyed, "the busy connection stays");
    release();
    assert.equal(await slow, "answered");
    await active.ask("/quick", "quick");
    active.socket.destroy();
    busy.socket.destroy();
  } finally {
    release();
    await server.shutdown();
  }
});
