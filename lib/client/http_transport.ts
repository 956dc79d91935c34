/**
 * @module The HTTP/1.1 transport of the flat-manager client, over `node:http`: Deno's `fetch`
 * refuses a body on GET, which `missing_objects` and job polls need (specs/flat-manager-api.md
 * §0.3), and sends streamed bodies chunked, dropping the `Content-Length` that the Python client
 * sends with every upload (§5.3).
 */
import http from "node:http";
import https from "node:https";
import { gunzipSync, inflateSync } from "node:zlib";

/** A request; a streamed body is produced anew by `stream()` for each attempt. */
export interface HttpRequest {
  method: "GET" | "POST";
  url: string;
  headers: Record<string, string>;
  body?: Uint8Array | {
    length: number;
    stream: () => AsyncIterable<Uint8Array>;
  };
}

/** A complete response; `body` is already decoded from any `Content-Encoding`. */
export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** Sends one request. Throws {@link ConnectionError} when no response arrives. */
export type Transport = (req: HttpRequest) => Promise<HttpResponse>;

/** A transport that holds connections open until disposed. */
export interface ClosableTransport extends Disposable {
  send: Transport;
}

/** The connection failed, was reset, or timed out before a full response: worth retrying. */
export class ConnectionError extends Error {
  override name = "ConnectionError";
  constructor(message: string, readonly code?: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Per-request time limit of the Python client (`aiohttp.ClientTimeout(total=5400)`, §5.5). */
export const DEFAULT_TIMEOUT_MS = 90 * 60 * 1000;

function decodeBody(encoding: string | null, body: Uint8Array): Uint8Array {
  if (encoding === "gzip" || encoding === "x-gzip") return gunzipSync(body);
  if (encoding === "deflate") return inflateSync(body);
  return body;
}

/** A keep-alive `node:http`/`node:https` transport; dispose it to close its connections. */
export function nodeTransport(
  opts: { timeoutMs?: number } = {},
): ClosableTransport {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const agents = {
    "http:": new http.Agent({ keepAlive: true, maxSockets: 4 }),
    "https:": new https.Agent({ keepAlive: true, maxSockets: 4 }),
  };
  const send: Transport = (req) =>
    new Promise<HttpResponse>((resolve, reject) => {
      const url = new URL(req.url);
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        reject(new Error(`Cannot request "${req.url}": not an http(s) URL`));
        return;
      }
      const body = req.body;
      const length = body === undefined ? undefined : body.length;
      const headers: Record<string, string> = { ...req.headers };
      if (length !== undefined) headers["Content-Length"] = String(length);
      const mod = url.protocol === "https:" ? https : http;
      let settled = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        out.destroy();
        reject(e);
      };
      const out = mod.request(url, {
        method: req.method,
        headers,
        agent: agents[url.protocol],
      }, (res) => {
        const chunks: Uint8Array[] = [];
        res.on("data", (c: Uint8Array) => chunks.push(c));
        res.on("error", (e) => fail(asConnectionError(e)));
        res.on("end", () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            for (const x of Array.isArray(v) ? v : v === undefined ? [] : [v]) {
              h.append(k, x);
            }
          }
          try {
            const raw = concat(chunks);
            resolve({
              status: res.statusCode ?? 0,
              headers: h,
              body: decodeBody(h.get("content-encoding"), raw),
            });
          } catch (e) {
            reject(new ConnectionError(`Cannot decode the response: ${e}`));
          }
        });
      });
      const timer = setTimeout(
        () =>
          fail(
            new ConnectionError(
              `Request timed out after ${timeoutMs} ms`,
              "ETIMEDOUT",
            ),
          ),
        timeoutMs,
      );
      out.on("error", (e) => fail(asConnectionError(e)));
      if (body === undefined) out.end();
      else if (body instanceof Uint8Array) out.end(body);
      else {
        // Stream with back-pressure; an error producing the body (a local file) is not a
        // connection error, so it is passed on as it is and never retried.
        (async () => {
          for await (const chunk of body.stream()) {
            if (settled) return;
            if (!out.write(chunk)) {
              await new Promise<void>((r) => {
                const done = () => {
                  out.off("drain", done).off("close", done);
                  r();
                };
                out.on("drain", done).on("close", done);
              });
            }
          }
          out.end();
        })().catch(fail);
      }
    });
  return {
    send,
    [Symbol.dispose]() {
      agents["http:"].destroy();
      agents["https:"].destroy();
    },
  };
}

function asConnectionError(e: unknown): ConnectionError {
  if (e instanceof ConnectionError) return e;
  const err = e as { message?: string; code?: string };
  return new ConnectionError(
    `Connection failed: ${err.message ?? String(e)}`,
    err.code,
    { cause: e },
  );
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
