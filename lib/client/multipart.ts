/**
 * @module The `multipart/mixed` upload body in the Python `flat-manager-client`'s exact wire
 * format (specs/flat-manager-api.md §5.3), streamed from disk with its length known up front.
 */
import type { UploadFile } from "./local_repo.ts";

const encoder = new TextEncoder();

/** The Python client's buffer size for file parts (`DEFAULT_LIMIT = 2 ** 16`). */
export const READ_SIZE = 64 * 1024;

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
 * Streams the body: per file its part headers, its bytes read from disk in 64 KiB chunks, CRLF;
 * then the closing boundary. `onFileBytes` is told the file bytes written so far. A file whose
 * size changed since it was measured fails the body, since `Content-Length` would be wrong.
 */
export async function* multipartBody(
  boundary: string,
  files: readonly UploadFile[],
  onFileBytes?: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  let sent = 0;
  for (const f of files) {
    yield partHead(boundary, f);
    using file = await Deno.open(f.path, { read: true });
    let left = f.size;
    while (true) {
      const buf = new Uint8Array(READ_SIZE);
      const n = await file.read(buf);
      if (n === null) break;
      if (n > left) break;
      left -= n;
      sent += n;
      yield buf.subarray(0, n);
      onFileBytes?.(sent);
    }
    if (left !== 0 || (await file.read(new Uint8Array(1))) !== null) {
      throw new Error(
        `Cannot upload "${f.path}": its size changed from ${f.size} bytes while reading`,
      );
    }
    yield CRLF;
  }
  yield tail(boundary);
}
