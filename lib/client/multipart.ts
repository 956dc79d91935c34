/**
 * @module The `multipart/mixed` upload body in the Python `flat-manager-client`'s exact wire
 * format (specs/flat-manager-api.md §5.3), streamed from disk with its length known up front.
 */
import type { UploadFile } from "./local_repo.ts";

const encoder = new TextEncoder();

/**
 * Size of the body's chunks: part headers and file bytes are packed into buffers of this size,
 * so a batch of small objects goes out in a few large writes instead of three per object (each
 * write a chunk the server handles on its own).
 */
export const CHUNK_SIZE = 256 * 1024;

/** A fresh boundary: 32 lowercase hex digits, as aiohttp's `uuid4().hex`. */
export function multipartBoundary(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

/** `Content-Type` of an upload request with this boundary. */
export function multipartContentType(boundary: string): string {
  return `multipart/mixed; boundary=${boundary}`;
}

function partHead(boundary: string, f: UploadFile): Uint8Array {
  return encoder.encode(
    `--${boundary}\r\n` +
      "Content-Type: application/octet-stream\r\n" +
      `Content-Disposition: attachment; filename="${f.name}"\r\n` +
      `Content-Length: ${f.size}\r\n\r\n`,
  );
}

const CRLF = encoder.encode("\r\n");
const tail = (boundary: string) => encoder.encode(`--${boundary}--\r\n`);

/** The exact byte length of {@link multipartBody} for these files, for `Content-Length`. */
export function multipartLength(
  boundary: string,
  files: readonly UploadFile[],
): number {
  let n = tail(boundary).length;
  for (const f of files) {
    n += partHead(boundary, f).length + f.size + CRLF.length;
  }
  return n;
}

/**
 * Streams the body: per file its part headers, its bytes, CRLF; then the closing boundary, packed
 * into chunks of {@link CHUNK_SIZE} bytes (the last one shorter). Files are read with synchronous
 * calls straight into the chunk being filled: on page-cached files that is about 15 times faster
 * than async reads, which cost a thread-pool round trip each (5000 files of 40 KiB: 0.1 s against
 * 1.6 s here), and the upload's client did little else. `onFileBytes` is told the file bytes
 * handed out so far. A file whose size changed since it was measured fails the body, since
 * `Content-Length` would be wrong.
 */
export async function* multipartBody(
  boundary: string,
  files: readonly UploadFile[],
  onFileBytes?: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  let chunk = new Uint8Array(CHUNK_SIZE), used = 0, sent = 0, reported = 0;
  const full = () => used === chunk.length;
  const take = () => {
    const out = chunk.subarray(0, used);
    chunk = new Uint8Array(CHUNK_SIZE); // the one handed out may still be being written
    used = 0;
    return out;
  };
  /** Copies `bytes` in; yields at each full chunk. */
  function* put(bytes: Uint8Array) {
    for (let at = 0; at < bytes.length;) {
      const n = Math.min(bytes.length - at, chunk.length - used);
      chunk.set(bytes.subarray(at, at + n), used);
      used += n;
      at += n;
      if (full()) yield take();
    }
  }
  const changed = (f: UploadFile) =>
    new Error(
      `Cannot upload "${f.path}": its size changed from ${f.size} bytes while reading`,
    );
  const one = new Uint8Array(1);
  for (const f of files) {
    yield* put(partHead(boundary, f));
    using file = Deno.openSync(f.path, { read: true });
    for (let left = f.size; left > 0;) {
      const n = file.readSync(
        chunk.subarray(used, used + Math.min(left, chunk.length - used)),
      );
      if (n === null || n === 0) throw changed(f);
      used += n;
      left -= n;
      sent += n;
      if (full()) {
        yield take();
        onFileBytes?.(reported = sent);
      }
    }
    if (file.readSync(one) !== null) throw changed(f);
    yield* put(CRLF);
  }
  yield* put(tail(boundary));
  if (used > 0) yield take();
  if (reported !== sent) onFileBytes?.(sent);
}
