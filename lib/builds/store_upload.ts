/**
 * @module The work of `POST /api/v1/build/{id}/upload` (specs/flat-manager-api.md §5.3) below
 * HTTP: a multipart body, streamed, each part through a verifier (an object must hash to its
 * name) into a temporary file, then renamed into the build's upload repository. It takes a
 * stream and plain options, and reports a refused upload as an {@link UploadRefused} with the
 * status and message the route answers. (Verifying and writing on a Web Worker, the parts
 * handed over in transferred buffers within an 8 MiB window, was no faster in bench/upload.ts:
 * the server's two threads and the client then kept both CPUs of the machine busy, and the
 * copies and messages cost what the second thread gained. An earlier try was slower still.)
 */
import { dirname, join } from "node:path";
import { MultipartError, parseMultipart } from "../http/multipart.ts";
import { parseUploadName } from "../ostree/object_names.ts";
import { createObjectHasher, ObjectVerifyError } from "../ostree/verify.ts";

/** Where and how to store an upload. */
export interface StoreUploadOptions {
  /** The build's upload repository. */
  uploadDir: string;
  /** Largest object or delta part accepted (413 above). */
  maxObjectBytes: number;
}

/** An upload the client got wrong: 400 (flat-manager's generic error) or 413. */
export class UploadRefused extends Error {
  override name = "UploadRefused";
  constructor(readonly status: 400 | 413, message: string) {
    super(message);
  }
}

/** The temporary directory of uploads in progress, inside the upload repository. */
const uploadTmpDir = (uploadDir: string): string =>
  join(uploadDir, "tmp", "flatyard-upload");

/**
 * Stores every part of a multipart `body` and resolves with their sizes, in order. A bad name,
 * a mismatch or an oversize part stops the upload with an {@link UploadRefused} and leaves
 * nothing of that part; parts before it stay stored (as in flat-manager). Re-uploading an object
 * replaces it with identical bytes.
 */
export async function storeUpload(
  body: ReadableStream<Uint8Array>,
  contentType: string,
  opts: StoreUploadOptions,
): Promise<number[]> {
  const tmpDir = uploadTmpDir(opts.uploadDir);
  Deno.mkdirSync(tmpDir, { recursive: true });
  const sizes: number[] = [];
  const tooLarge = (name: string) =>
    new UploadRefused(
      413,
      `Object ${name} is larger than the limit of ${opts.maxObjectBytes} bytes`,
    );
  try {
    await parseMultipart(body, contentType, async (part) => {
      if (part.disposition === undefined) {
        throw new UploadRefused(
          400,
          "No content disposition for multipart item",
        );
      }
      if (part.filename === undefined) {
        throw new UploadRefused(400, "No filename for multipart item");
      }
      const name = parseUploadName(part.filename);
      if (!name) throw new UploadRefused(400, "Invalid upload filename");
      const declared = Number(part.headers.get("content-length") ?? NaN);
      if (declared > opts.maxObjectBytes) throw tooLarge(part.filename);
      const hasher = createObjectHasher(
        name.kind === "object" ? name.ext : "delta",
        {
          name: part.filename,
          ...(name.kind === "object" ? { expected: name.checksum } : {}),
        },
      );
      // Synchronous file calls: each is one short syscall, and an upload of thousands of small
      // objects spends most of its time in them; async ones each cost a thread-pool round trip.
      // Chunks arrive one at a time, so memory stays at one chunk per part.
      const tmp = join(tmpDir, crypto.randomUUID());
      const file = Deno.openSync(tmp, {
        write: true,
        createNew: true,
        mode: 0o644,
      });
      let closed = false;
      try {
        let size = 0;
        const reader = part.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          size += value.length;
          if (size > opts.maxObjectBytes) throw tooLarge(part.filename);
          await hasher.update(value);
          for (let at = 0; at < value.length;) {
            at += file.writeSync(value.subarray(at));
          }
        }
        await hasher.finish();
        file.close();
        closed = true;
        const final = join(opts.uploadDir, name.relPath);
        try {
          Deno.renameSync(tmp, final);
        } catch (err) {
          // The object's directory (objects/xx/, deltas/…) comes with its first object.
          if (!(err instanceof Deno.errors.NotFound)) throw err;
          Deno.mkdirSync(dirname(final), { recursive: true });
          Deno.renameSync(tmp, final);
        }
        sizes.push(size);
      } catch (err) {
        hasher.abort();
        if (!closed) file.close();
        try {
          Deno.removeSync(tmp);
        } catch { /* already gone */ }
        throw err;
      }
    });
  } catch (err) {
    if (err instanceof ObjectVerifyError) {
      throw new UploadRefused(400, err.message);
    }
    if (err instanceof MultipartError) {
      throw new UploadRefused(400, `Invalid multipart body: ${err.message}`);
    }
    throw err;
  }
  return sizes;
}
