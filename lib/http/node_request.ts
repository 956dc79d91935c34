/**
 * @module Between node:http and the fetch API the app speaks: the app's environment when served
 * over node:http (lib/http/node_server.ts), a request's URL and headers, the client's address, a
 * response's headers for `writeHead`, and the one body pipe every answer goes through.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Writable } from "node:stream";

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

/** The app, as the server calls it. */
export type FetchApp = {
  fetch(req: Request, env: ServerEnv): Response | Promise<Response>;
};

/** The URL and headers of a node:http request, as a fetch `Request` wants them. */
export function requestParts(
  req: IncomingMessage,
): { url: string; headers: Headers } {
  const url = `http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`;
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  return { url, headers };
}

/** The client's address. */
export function remoteAddr(socket: Socket): ServerEnv["remoteAddr"] {
  return {
    hostname: socket.remoteAddress ?? "unknown",
    port: socket.remotePort ?? 0,
  };
}

/** The response's headers for `writeHead`, with every `Set-Cookie` kept apart. */
export function headersOf(
  response: Response,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, key) => {
    if (key === "set-cookie") return;
    out[key] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
  return out;
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
