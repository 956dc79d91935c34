/**
 * @module Client side of artifact uploads (routes/artifacts/): creates the artifact, PUTs the
 * file in `Content-Range` chunks streamed from disk, and survives lost connections, server errors
 * and restarts: after a failure it asks the server how many bytes it stored (`received`) and
 * resumes from exactly there, with the capped, jittered backoff of {@link withRetry}.
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { z } from "zod";
import {
  ConnectionError,
  type HttpRequest,
  type HttpResponse,
  nodeTransport,
} from "./http_transport.ts";
import { type RetryOptions, withRetry } from "./retry.ts";
import { formatContentRange } from "../artifacts/content_range.ts";

/** Default chunk: big enough to keep a link busy, small enough to lose little on a failure. */
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

/** A request with the methods artifact uploads use. */
export type ArtifactRequest = Omit<HttpRequest, "method"> & {
  method: "GET" | "POST" | "PUT";
};

/** Sends one request; throws {@link ConnectionError} when no response arrives. */
export type ArtifactTransport = (req: ArtifactRequest) => Promise<HttpResponse>;

/** The artifact record as the server shows it (the fields the client reads). */
export const ArtifactRecordSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  received: z.number().int(),
  status: z.enum(["uploading", "complete", "failed"]),
  error: z.string().nullable(),
  ref: z.string().nullable(),
  commit: z.string().nullable(),
  uploadUrl: z.string(),
});
export type ArtifactRecord = z.infer<typeof ArtifactRecordSchema>;

const ProblemBody = z.object({
  title: z.string().optional(),
  detail: z.string().optional(),
  received: z.number().int().optional(),
  artifactStatus: z.enum(["uploading", "complete", "failed"]).optional(),
});

/** A non-2xx answer, with the RFC 9457 problem the server sent. */
export class ArtifactApiError extends Error {
  override name = "ArtifactApiError";
  constructor(
    readonly url: string,
    readonly status: number,
    readonly problem: z.infer<typeof ProblemBody>,
  ) {
    super(
      `${url} answered ${status}: ${
        problem.detail ?? problem.title ?? "no details"
      }`,
    );
  }

  static from(url: string, res: HttpResponse): ArtifactApiError {
    let body: z.infer<typeof ProblemBody> = {};
    try {
      body = ProblemBody.parse(JSON.parse(new TextDecoder().decode(res.body)));
    } catch { /* not a problem document: status only */ }
    return new ArtifactApiError(url, res.status, body);
  }
}

/** The server stored a different number of bytes than the chunk assumed: resume from those. */
class OffsetMoved extends Error {
  constructor(readonly received: number) {
    super(`The server holds ${received} bytes`);
  }
}

/**
 * Lost connections, server errors, a stalled body (408) and upload conflicts (the artifact is
 * busy, or has ended meanwhile) are retried; the retry first asks where the upload stands.
 */
function transient(e: unknown): boolean {
  if (e instanceof ConnectionError) return true;
  if (!(e instanceof ArtifactApiError)) return false;
  return e.status >= 500 || e.status === 408 || e.status === 429 ||
    (e.status === 409 && e.problem.artifactStatus !== undefined);
}

/** What to upload, where, and how. */
export interface UploadArtifactOptions {
  /** The build URL, `…/api/v1/build/<id>`. */
  buildUrl: string;
  /** A token with the `upload` scope for the build. */
  token: string;
  /** The bundle on disk. */
  path: string;
  /** Default: the file's name. */
  name?: string;
  /** Bytes per PUT; default {@link DEFAULT_CHUNK_SIZE}. */
  chunkSize?: number;
  /** Continue an artifact created earlier (its `uploadUrl`) instead of creating one. */
  resumeUrl?: string;
  /** Default: a keep-alive `node:http` transport, closed at the end. */
  transport?: ArtifactTransport;
  /** Backoff and give-up time, per chunk (progress starts the clock again). */
  retry?: RetryOptions;
  log?: (line: string) => void;
  /** Hears the bytes the server holds after each chunk. */
  onProgress?: (received: number, size: number) => void;
}

/** sha256 of a file in lowercase hex, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1024 * 1024);
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

/** Bytes `start` to `start + length` of a file, read as they are sent. */
async function* fileRange(
  path: string,
  start: number,
  length: number,
): AsyncIterable<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  await file.seek(start, Deno.SeekMode.Start);
  let left = length;
  while (left > 0) {
    const buf = new Uint8Array(Math.min(left, 256 * 1024));
    const n = await file.read(buf);
    if (n === null) {
      throw new Error(`${path} ended before byte ${start + length}`);
    }
    left -= n;
    yield buf.subarray(0, n);
  }
}

/**
 * Uploads the file at `opts.path` as an artifact of the build and returns the complete record.
 * Throws {@link ArtifactApiError} when the server refuses it (a 422: the file did not match its
 * checksum or is not a bundle), or the last error once retries run out.
 */
export async function uploadArtifact(
  opts: UploadArtifactOptions,
): Promise<ArtifactRecord> {
  let send = opts.transport;
  let close: (() => void) | undefined;
  if (!send) {
    const t = nodeTransport();
    // nodeTransport hands any method to node:http; its request type names only the two that
    // flat-manager's client needs.
    send = (req) => t.send(req as unknown as HttpRequest);
    close = () => t[Symbol.dispose]();
  }
  try {
    return await upload(opts, send);
  } finally {
    close?.();
  }
}

async function upload(
  opts: UploadArtifactOptions,
  send: ArtifactTransport,
): Promise<ArtifactRecord> {
  const log = opts.log ?? (() => {});
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new Error(`Invalid chunk size ${chunkSize}`);
  }
  const auth = { Authorization: `Bearer ${opts.token}` };
  const call = async (req: ArtifactRequest): Promise<ArtifactRecord> => {
    const res = await send({ ...req, headers: { ...auth, ...req.headers } });
    if (res.status < 200 || res.status > 299) {
      throw ArtifactApiError.from(req.url, res);
    }
    return ArtifactRecordSchema.parse(
      JSON.parse(new TextDecoder().decode(res.body)),
    );
  };
  const retrying = <T>(what: string, fn: () => Promise<T>) =>
    withRetry(fn, transient, opts.retry ?? {}, (e, n, ms) =>
      log(
        `${what} failed (${(e as Error).message}); retry ${n} in ${
          (ms / 1000).toFixed(1)
        } s`,
      ));

  const size = (await Deno.stat(opts.path)).size;
  const sha256 = await sha256File(opts.path);
  const name = opts.name ?? basename(opts.path);
  let record = opts.resumeUrl !== undefined
    ? await retrying(
      "GET artifact",
      () => call({ method: "GET", url: opts.resumeUrl!, headers: {} }),
    )
    : await retrying("Create artifact", () =>
      call({
        method: "POST",
        url: `${opts.buildUrl.replace(/\/+$/, "")}/artifacts`,
        headers: { "Content-Type": "application/json" },
        body: new TextEncoder().encode(
          JSON.stringify({ name, size, sha256 }),
        ),
      }));
  if (record.size !== size || record.sha256 !== sha256) {
    throw new Error(
      `Artifact ${record.uploadUrl} is not ${opts.path}: size or sha256 differ`,
    );
  }
  const url = record.uploadUrl;

  // After a failure, the bytes the server holds are unknown until it is asked again.
  let stale = false;
  const putChunk = async (): Promise<ArtifactRecord> => {
    if (stale) {
      record = await call({ method: "GET", url, headers: {} });
      stale = false;
      if (record.status !== "uploading") return record;
    }
    const start = record.received;
    const end = Math.min(start + chunkSize, size) - 1;
    try {
      return await call({
        method: "PUT",
        url,
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": formatContentRange(start, end, size),
        },
        body: {
          length: end - start + 1,
          stream: () => fileRange(opts.path, start, end - start + 1),
        },
      });
    } catch (e) {
      const moved = e instanceof ArtifactApiError && e.status === 409 &&
        e.problem.artifactStatus === "uploading" &&
        e.problem.received !== undefined && e.problem.received !== start;
      if (moved) throw new OffsetMoved(e.problem.received!);
      stale = true;
      throw e;
    }
  };

  let moves = 0;
  while (record.status === "uploading") {
    try {
      record = await retrying(`PUT bytes from ${record.received}`, putChunk);
      moves = 0;
      opts.onProgress?.(record.received, size);
    } catch (e) {
      // A server that keeps moving the offset without taking bytes is not making progress.
      if (!(e instanceof OffsetMoved) || ++moves > 10) throw e;
      log(`Resuming from byte ${e.received}`);
      record = { ...record, received: e.received };
    }
  }
  if (record.status === "failed") {
    throw new Error(
      `Upload of ${opts.path} failed: ${record.error ?? "no reason given"}`,
    );
  }
  return record;
}
