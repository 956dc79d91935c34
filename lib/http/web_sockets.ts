/**
 * @module Upgrade requests on node:http: WebSocket upgrades run through the app (auth,
 * validation, errors), which accepts one by calling `c.env.upgradeWebSocket`, and the `ws`
 * package then does the handshake, framing, keep-alive pings and closing at shutdown; any other
 * upgrade (libcurl's `h2c`) is answered as plain HTTP/1.1, and a refused one as the app's answer.
 */
import { type IncomingMessage, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
// @ts-types="@types/ws"
import { type WebSocket, WebSocketServer } from "ws";
import {
  type FetchApp,
  headersOf,
  pipeBody,
  remoteAddr,
  requestParts,
  type ServerEnv,
  type ServerWebSocket,
} from "./node_request.ts";

/** Largest message a WebSocket client may send; ours only listen. */
const WS_MAX_PAYLOAD = 64 * 1024;
/** How long WebSocket clients get to answer the close handshake at shutdown. */
const WS_CLOSE_GRACE_MS = 2_000;

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
export class WebSockets {
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
