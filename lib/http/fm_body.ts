/**
 * @module Request bodies of flat-manager routes, read the way actix's `Json` extractor reads
 * them (specs/flat-manager-api.md §0.3): a `*\/json` or `*+json` content type, `Content-Encoding:
 * gzip` undone, a size limit, and on GET the body the node:http front kept (`c.env.getBody`). A
 * missing body can stand for `{}`, as proxies strip GET bodies.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ServerEnv } from "./node_request.ts";

/** The body bytes of a request: GET bodies from the server env, others from the stream. */
async function rawBody(c: Context, limit: number): Promise<Uint8Array> {
  if (c.req.method === "GET" || c.req.method === "HEAD") {
    return (c.env as Partial<ServerEnv> | undefined)?.getBody ??
      new Uint8Array();
  }
  const body = c.req.raw.body;
  if (!body) return new Uint8Array();
  return await readLimited(body, limit);
}

async function readLimited(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > limit) {
      throw new HTTPException(413, { message: "Payload too large" });
    }
    parts.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Parses a flat-manager JSON body; throws actix-style 400/413 (plain text) on bad input. */
export async function fmJsonBody(
  c: Context,
  options: { limit?: number; emptyIsObject?: boolean } = {},
): Promise<unknown> {
  const limit = options.limit ?? 2 * 1024 * 1024;
  let bytes = await rawBody(c, limit);
  if (bytes.length === 0 && options.emptyIsObject) return {};
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim()
    .toLowerCase();
  if (!/^[a-z0-9.+-]+\/([a-z0-9.-]+\+)?json$/.test(type)) {
    throw new HTTPException(400, { message: "Content type error" });
  }
  if ((c.req.header("content-encoding") ?? "").toLowerCase() === "gzip") {
    try {
      const inflated = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
        .pipeThrough(new DecompressionStream("gzip"));
      bytes = await readLimited(inflated, limit);
    } catch (err) {
      if (err instanceof HTTPException) throw err;
      throw new HTTPException(400, {
        message: "Payload error: invalid gzip data",
      });
    }
  }
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new HTTPException(400, {
      message: `Json deserialize error: ${
        err instanceof Error ? err.message : String(err)
      }`,
    });
  }
}
