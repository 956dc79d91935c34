/**
 * @module Serves the app over `node:http` rather than `Deno.serve`, because flat-manager clients
 * send JSON bodies on GET requests (specs/flat-manager-api.md §0.3: `missing_objects`, job polls)
 * and `Deno.serve` drops a GET request's body. A GET/HEAD body is read here (bounded) and handed
 * to the app in its environment as `getBody`; every other body streams through untouched.
 * WebSocket upgrades go through the app too (auth, validation, errors), which accepts one by
 * calling `c.env.upgradeWebSocket`; the `ws` package then does the handshake and framing.
 */
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { Duplex, Writable } from "node:stream";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
// @ts-types="@types/ws"
import { type WebSocket, WebSocketServer } from "ws";

/** What the app's `c.env` holds when served here. */
export interface ServerEnv {
  /** The body of a GET or HEAD request, when it had one. */
  getBody?: Uint8Array;
  remoteAddr: { hostname: string; port: number };
  /** Aborted when the server starts shutting down: long-lived responses (SSE) should end then. */
  closing: AbortSignal;
  /**
   * Present on a WebSocket upgrade request only. A handler that accepts the upgrade returns what
   * this returns (a 101); `onOpen` then gets the socket once the handshake is done. Any other
   * response is sent as plain HTTP and the connection closed.
   */
  upgradeWebSocket?: (onOpen: (socket: ServerWebSocket) => void) => Response;
}

/** An accepted WebSocket, as the app sees it: text out, close, and a signal for its end. */
export interface ServerWebSocket {
  /** Sends a text message; resolves once the socket took it, so a slow client slows the sender. */
  send(text: string): Promise<void>;
  close(code?: number, reason?: string): void;
  /** Aborted when the connection closes, whichever side closed it. */
  readonly signal: AbortSignal;
}

/** Largest GET body read (flat-manager's `missing_objects` limit is 10 MiB, §0.3). */
const GET_BODY_LIMIT = 10 * 1024 * 1024;
/** Largest message a WebSocket client may send; ours only listen. */
const WS_MAX_PAYLOAD = 64 * 1024;
/** How long WebSocket clients get to answer the close handshake at shutdown. */
const WS_CLOSE_GRACE_MS = 2_000;

/**
 * Answers some requests straight on node:http, ahead of the app (routes/repo_files.ts); false
 * hands the request to the app untouched. It must not read the request's body.
 */
export type FastPath = (
  req: IncomingMessage,
  res: ServerResponse,
) => boolean | Promise<boolean>;

type FetchApp = {
  fetch(req: Request, env: ServerEnv): Response | Promise<Response>;
};

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

function requestParts(req: IncomingMessage): { url: string; headers: Headers } {
  const url = `http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`;
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  return { url, headers };
}

function remoteAddr(socket: Socket): ServerEnv["remoteAddr"] {
  return {
    hostname: socket.remoteAddress ?? "unknown",
    port: socket.remotePort ?? 0,
  };
}

/** The response's headers for `writeHead`, with every `Set-Cookie` kept apart. */
function headersOf(response: Response): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, key) => {
    if (key === "set-cookie") return;
    out[key] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
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

/**
 * Writes `body` to `out` as the peer takes it, until the body ends or `signal` aborts. Respects
 * back-pressure: a slow client must not make the server buffer a whole file. A client that goes
 * away (the signal) cancels the body at once, even one idle between events (SSE), which
 * releases what its producer holds (an open file, a subscription). Does not end `out`.
 */
export async function pipeBody(
  out: Writable,
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): Promise<void> {
  const reader = body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || signal.aborted) break;
      if (!out.write(value)) {
        await new Promise<void>((r) => {
          out.once("drain", r);
          signal.addEventListener("abort", () => r(), { once: true });
        });
      }
    }
  } finally {
    signal.removeEventListener("abort", cancel);
    if (signal.aborted) cancel();
  }
}

/** Answers an upgrade request the app did not accept, as plain HTTP, and closes the socket. */
async function refuseUpgrade(
  socket: Duplex,
  response: Response,
): Promise<void> {
  const body = new Uint8Array(await response.arrayBuffer());
  const head = [
    `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ""}`,
  ];
  for (const [key, value] of Object.entries(headersOf(response))) {
    for (const v of Array.isArray(value) ? value : [value]) {
      head.push(`${key}: ${v}`);
    }
  }
  head.push(`Content-Length: ${body.length}`, "Connection: close");
  socket.end(
    new Uint8Array([
      ...new TextEncoder().encode(head.join("\r\n") + "\r\n\r\n"),
      ...body,
    ]),
  );
}

/**
 * Answers a request that arrived with an upgrade the server does not do, as plain HTTP/1.1 on
 * the raw socket, then closes it. Only bodiless requests: node does not parse the body of an
 * upgrade request.
 */
async function plainAnswer(
  app: FetchApp,
  req: IncomingMessage,
  socket: Duplex,
  closing: AbortSignal,
): Promise<void> {
  const method = req.method ?? "GET";
  const length = Number(req.headers["content-length"] ?? 0);
  if (req.headers["transfer-encoding"] || length > 0) {
    await refuseUpgrade(
      socket,
      new Response("Upgrade requests with a body are not supported", {
        status: 400,
      }),
    );
    return;
  }
  const { url, headers } = requestParts(req);
  headers.delete("upgrade");
  const abort = new AbortController();
  socket.once("close", () => abort.abort());
  const response = await app.fetch(
    new Request(url, { method, headers, signal: abort.signal }),
    { remoteAddr: remoteAddr(req.socket), closing },
  );
  const head = [
    `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ""}`,
  ];
  for (const [key, value] of Object.entries(headersOf(response))) {
    if (key.toLowerCase() === "connection") continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      head.push(`${key}: ${v}`);
    }
  }
  // Without a Content-Length the body ends where the connection does.
  head.push("Connection: close");
  socket.write(new TextEncoder().encode(head.join("\r\n") + "\r\n\r\n"));
  if (method !== "HEAD" && response.body) {
    await pipeBody(socket, response.body, abort.signal);
  } else {
    await response.body?.cancel();
  }
  socket.end();
}

/** WebSocket connections of one server: upgrades, keep-alive pings and closing at shutdown. */
class WebSockets {
  readonly #wss = new WebSocketServer({
    noServer: true,
    maxPayload: WS_MAX_PAYLOAD,
  });
  readonly #open = new Map<WebSocket, { alive: boolean }>();
  #pinger: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly pingMs: number) {}

  /** Runs an upgrade request through the app; completes the handshake if the app accepted it. */
  async upgrade(
    app: FetchApp,
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    closing: AbortSignal,
  ): Promise<void> {
    if (closing.aborted) {
      await refuseUpgrade(
        socket,
        new Response("Shutting down", { status: 503 }),
      );
      return;
    }
    if (req.headers.upgrade?.toLowerCase() !== "websocket") {
      // Not a WebSocket: libcurl (so ostree and flatpak) offers `Upgrade: h2c` on plain
      // requests. Upgrades are optional for a server (RFC 9110 §7.8): answer as HTTP/1.1.
      await plainAnswer(app, req, socket, closing);
      return;
    }
    const { url, headers } = requestParts(req);
    const abort = new AbortController();
    socket.once("close", () => abort.abort());
    let onOpen: ((socket: ServerWebSocket) => void) | undefined;
    const env: ServerEnv = {
      remoteAddr: remoteAddr(req.socket),
      closing,
      upgradeWebSocket(open) {
        onOpen = open;
        return new Response(null, { status: 101 });
      },
    };
    const response = await app.fetch(
      new Request(url, {
        method: req.method ?? "GET",
        headers,
        signal: abort.signal,
      }),
      env,
    );
    const accepted = onOpen;
    if (!accepted || response.status !== 101) {
      await refuseUpgrade(socket, response);
      return;
    }
    // ws answers a malformed handshake (bad key or version) with a 400 itself.
    this.#wss.handleUpgrade(
      req,
      socket,
      head,
      (ws) => accepted(this.#adopt(ws)),
    );
  }

  /** Closes every connection with 1001 (going away), and drops those that do not answer. */
  async close(): Promise<void> {
    clearInterval(this.#pinger);
    this.#pinger = undefined;
    const gone = [...this.#open.keys()].map((ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        ws.once("close", () => resolve());
        ws.close(1001, "Server shutting down");
      })
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(gone),
      new Promise<void>((r) => timer = setTimeout(r, WS_CLOSE_GRACE_MS)),
    ]);
    clearTimeout(timer);
    for (const ws of this.#open.keys()) ws.terminate();
    this.#wss.close();
  }

  #adopt(ws: WebSocket): ServerWebSocket {
    const state = { alive: true };
    const ended = new AbortController();
    this.#open.set(ws, state);
    ws.on("pong", () => state.alive = true);
    ws.on("error", () => ws.terminate());
    ws.once("close", () => {
      this.#open.delete(ws);
      ended.abort();
      if (this.#open.size === 0) {
        clearInterval(this.#pinger);
        this.#pinger = undefined;
      }
    });
    // Pings keep proxies from closing a quiet connection and find peers that vanished; the
    // timer runs only while connections are open.
    this.#pinger ??= setInterval(() => this.#ping(), this.pingMs);
    return {
      send: (text) =>
        new Promise<void>((resolve, reject) =>
          ws.send(text, (err) => err ? reject(err) : resolve())
        ),
      close: (code, reason) => ws.close(code, reason),
      signal: ended.signal,
    };
  }

  #ping(): void {
    for (const [ws, state] of this.#open) {
      if (!state.alive) {
        ws.terminate();
        continue;
      }
      state.alive = false;
      ws.ping();
    }
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
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.hostname, () => {
      const addr = server.address() as { port: number; address: string };
      resolve({
        port: addr.port,
        hostname: addr.address,
        shutdown: async () => {
          closing.abort();
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
