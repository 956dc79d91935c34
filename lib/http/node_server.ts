/**
 * @module Serves the app over `node:http` rather than `Deno.serve`, because flat-manager clients
 * send JSON bodies on GET requests (specs/flat-manager-api.md §0.3: `missing_objects`, job polls)
 * and `Deno.serve` drops a GET request's body. A GET/HEAD body is read here (bounded) and handed
 * to the app in its environment as `getBody`; every other body streams through untouched.
 * Some requests are answered ahead of the app (a `FastPath`); upgrades go to
 * lib/http/web_sockets.ts; the conversions to and from fetch are lib/http/node_request.ts.
 */
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import {
  type FetchApp,
  headersOf,
  pipeBody,
  remoteAddr,
  requestParts,
  type ServerEnv,
} from "./node_request.ts";
import { WebSockets } from "./web_sockets.ts";

/** Largest GET body read (flat-manager's `missing_objects` limit is 10 MiB, §0.3). */
const GET_BODY_LIMIT = 10 * 1024 * 1024;

/**
 * Answers some requests straight on node:http, ahead of the app (routes/repo_files.ts); false
 * hands the request to the app untouched. It must not read the request's body.
 */
export type FastPath = (
  req: IncomingMessage,
  res: ServerResponse,
) => boolean | Promise<boolean>;

async function readBounded(
  req: IncomingMessage,
  limit: number,
): Promise<Uint8Array | "too-large"> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limit) return "too-large";
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function handle(
  app: FetchApp,
  req: IncomingMessage,
  res: ServerResponse,
  closing: AbortSignal,
): Promise<void> {
  const method = req.method ?? "GET";
  const { url, headers } = requestParts(req);
  const abort = new AbortController();
  res.on("close", () => abort.abort());
  const env: ServerEnv = { remoteAddr: remoteAddr(req.socket), closing };
  let init: RequestInit & { duplex?: "half" } = {
    method,
    headers,
    signal: abort.signal,
  };
  if (method === "GET" || method === "HEAD") {
    const body = await readBounded(req, GET_BODY_LIMIT);
    if (body === "too-large") {
      // Stop reading the rest: answer, then close the connection it would otherwise clog.
      const socket = req.socket;
      res.writeHead(413, { "Content-Type": "text/plain", Connection: "close" })
        .end("Payload too large", () => socket?.destroy());
      return;
    }
    if (body.length > 0) env.getBody = body;
  } else {
    init = {
      ...init,
      body: Readable.toWeb(req) as ReadableStream<Uint8Array>,
      duplex: "half",
    };
  }
  const response = await app.fetch(new Request(url, init), env);
  const out = headersOf(response);
  // The app answered before reading the whole body (an early 4xx during an upload): close the
  // connection after the response, or the client's next request would queue behind the rest.
  const unread = !req.complete;
  if (unread) out["connection"] = "close";
  res.writeHead(response.status, out);
  if (!response.body || method === "HEAD") {
    await response.body?.cancel();
    res.end(() => {
      if (unread) req.socket?.destroy();
    });
    return;
  }
  try {
    await pipeBody(res, response.body, abort.signal);
  } finally {
    res.end(() => {
      if (unread) req.socket?.destroy();
    });
  }
}

/** A running server. */
export interface NodeServer {
  port: number;
  hostname: string;
  shutdown(): Promise<void>;
}

/** Listens on `hostname:port` (0: any free port) and serves `app`. */
export function serveApp(
  app: FetchApp,
  opts: {
    hostname: string;
    port: number;
    onError?: (err: unknown) => void;
    /** WebSocket keep-alive ping interval; a client that misses one ping is dropped. */
    webSocketPingMs?: number;
    fastPath?: FastPath;
    /**
     * An idle keep-alive connection is closed after between this and twice this (default
     * 5 s, node's own `keepAliveTimeout`).
     */
    idleTimeoutMs?: number;
  },
): Promise<NodeServer> {
  // Each connection's latest response: shutdown closes idle keep-alive connections at once
  // (clients pool them for minutes) and busy ones when their response ends. Looked at only
  // then, so a request costs no listener of its own.
  const sockets = new Map<Socket, ServerResponse | undefined>();
  const closing = new AbortController();
  const webSockets = new WebSockets(opts.webSocketPingMs ?? 15_000);
  const server = createServer((req, res) => {
    const socket = req.socket;
    sockets.set(socket, res);
    if (closing.signal.aborted) res.once("finish", () => socket.destroy());
    const fast = opts.fastPath;
    let answered: boolean | Promise<boolean> = false;
    try {
      answered = fast ? fast(req, res) : false;
    } catch (err) {
      // A fast path that throws, at once or later, fails the request like the app would.
      answered = Promise.reject(err);
    }
    // Answered at once (the fast path's common case): nothing more to do in this tick.
    if (answered === true) return;
    Promise.resolve(answered).then((done) =>
      done ? undefined : handle(app, req, res, closing.signal)
    ).catch((err) => {
      // A client that went away mid-request (wrk stopping, a cancelled download) is not a
      // server failure.
      if (!res.destroyed && !socket.destroyed) opts.onError?.(err);
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": "text/plain" });
      }
      res.end();
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.set(socket, undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // An upgraded connection is WebSockets' to close (with a close frame), not an idle socket.
    sockets.delete(socket as Socket);
    socket.on("error", () => socket.destroy());
    webSockets.upgrade(app, req, socket, head, closing.signal).catch((err) => {
      opts.onError?.(err);
      socket.destroy();
    });
  });
  // Uploads can be long; the defaults would cut a slow CI push off.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  // Idle keep-alive connections are closed by a sweep, not by node's keepAliveTimeout, which
  // arms and clears a timer on the socket around every request: a tenth of the small-object
  // serving rate (bench/serve.ts). A connection is idle when its latest response has ended
  // (or it has sent no request yet) and that was so at the previous sweep already.
  server.keepAliveTimeout = 0;
  let idleAtLastSweep = new Map<Socket, ServerResponse | undefined>();
  const sweep = setInterval(() => {
    const idleNow = new Map<Socket, ServerResponse | undefined>();
    for (const [socket, res] of sockets) {
      if (res && !res.writableFinished) continue;
      if (idleAtLastSweep.has(socket) && idleAtLastSweep.get(socket) === res) {
        socket.destroy();
      } else idleNow.set(socket, res);
    }
    idleAtLastSweep = idleNow;
  }, opts.idleTimeoutMs ?? 5_000);
  Deno.unrefTimer(sweep);
  return new Promise((resolve, reject) => {
    server.once("error", (err) => {
      clearInterval(sweep);
      reject(err);
    });
    server.listen(opts.port, opts.hostname, () => {
      const addr = server.address() as { port: number; address: string };
      resolve({
        port: addr.port,
        hostname: addr.address,
        shutdown: async () => {
          closing.abort();
          clearInterval(sweep);
          const closed = new Promise<void>((r) => server.close(() => r()));
          for (const [socket, res] of sockets) {
            if (!res || res.writableFinished) socket.destroy();
            else res.once("finish", () => socket.destroy());
          }
          await webSockets.close();
          await closed;
        },
      });
    });
  });
}
