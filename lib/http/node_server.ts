/**
 * @module Serves the app over `node:http` rather than `Deno.serve`, because flat-manager clients
 * send JSON bodies on GET requests (specs/flat-manager-api.md §0.3: `missing_objects`, job polls)
 * and `Deno.serve` drops a GET request's body. A GET/HEAD body is read here (bounded) and handed
 * to the app in its environment as `getBody`; every other body streams through untouched.
 */
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { Readable } from "node:stream";

/** What the app's `c.env` holds when served here. */
export interface ServerEnv {
  /** The body of a GET or HEAD request, when it had one. */
  getBody?: Uint8Array;
  remoteAddr: { hostname: string; port: number };
}

/** Largest GET body read (flat-manager's `missing_objects` limit is 10 MiB, §0.3). */
const GET_BODY_LIMIT = 10 * 1024 * 1024;

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

async function handle(
  app: FetchApp,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const method = req.method ?? "GET";
  const url = `http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`;
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  const abort = new AbortController();
  res.on("close", () => abort.abort());
  const env: ServerEnv = {
    remoteAddr: {
      hostname: req.socket.remoteAddress ?? "unknown",
      port: req.socket.remotePort ?? 0,
    },
  };
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
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, key) => {
    if (key === "set-cookie") return;
    out[key] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
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
    for await (const chunk of response.body) {
      // Respect back-pressure: a slow client must not make the server buffer a whole file.
      if (!res.write(chunk)) {
        await new Promise<void>((r) => res.once("drain", r));
      }
      if (abort.signal.aborted) break;
    }
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
  opts: { hostname: string; port: number; onError?: (err: unknown) => void },
): Promise<NodeServer> {
  // Sockets and whether a request is in flight on each: shutdown closes idle keep-alive
  // connections at once (clients pool them for minutes) and busy ones when their response ends.
  const sockets = new Map<Socket, boolean>();
  let closing = false;
  const server = createServer((req, res) => {
    const socket = req.socket;
    sockets.set(socket, true);
    res.on("finish", () => {
      sockets.set(socket, false);
      if (closing) socket.destroy();
    });
    handle(app, req, res).catch((err) => {
      opts.onError?.(err);
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": "text/plain" });
      }
      res.end();
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.set(socket, false);
    socket.on("close", () => sockets.delete(socket));
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
        shutdown: () =>
          new Promise<void>((r) => {
            closing = true;
            server.close(() => r());
            for (const [socket, busy] of sockets) if (!busy) socket.destroy();
          }),
      });
    });
  });
}
