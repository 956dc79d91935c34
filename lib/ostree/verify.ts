/**
 * @module Streaming checksum verification of uploaded OSTree objects: bytes pass through
 * unchanged (to a temporary file, say) while the object's checksum is computed, so a corrupt or
 * misnamed upload is refused before it is stored (`specs/ostree-repos.md` §4.2, §4.4).
 */
import { createHash, type Hash } from "node:crypto";
import { createInflateRaw } from "node:zlib";
import { decode, type Value } from "./gvariant.ts";
import { readFilezHeader } from "./filez_header.ts";
import type { ObjectExt } from "./object_names.ts";

/** An upload that is not the object its name says: malformed, corrupt, truncated or misnamed. */
export class ObjectVerifyError extends Error {
  override name = "ObjectVerifyError";
}

/** What to verify: an object kind, or `delta` for a static-delta part (hashed, not checked). */
export type VerifyKind = ObjectExt | "delta";

/** Options of {@link createObjectVerifier}. */
export interface ObjectVerifierOptions {
  /** The upload's file name, quoted in error messages; default `<kind> object`. */
  name?: string;
  /** If set, the stream fails at its end unless the checksum equals this (lowercase hex). */
  expected?: string;
  /**
   * Largest metadata object accepted (it is parsed whole); default 128 MiB, libostree's
   * `OSTREE_MAX_METADATA_SIZE`, so nothing a client can pull is refused.
   */
  maxMetadataSize?: number;
}

/** A pass-through stream that computes an object's checksum. */
export interface ObjectVerifier
  extends TransformStream<Uint8Array, Uint8Array> {
  /** The checksum (lowercase hex) once the stream has ended; rejects if verification failed. */
  digest(): Promise<string>;
}

// GVariant types of the metadata objects (specs/ostree-repos.md §4.2).
const METADATA_TYPES = {
  commit: "(a{sv}aya(say)sstayay)",
  dirtree: "(a(say)a(sayay))",
  dirmeta: "(uuua(ayay))",
} as const;
/** Largest `.filez` header accepted: real ones hold only ids, mode, a link target and xattrs. */
const MAX_HEADER = 1 << 20;

interface Hasher {
  update(chunk: Uint8Array): Promise<void> | void;
  /** The checksum as lowercase hex. */
  finish(): Promise<string> | string;
  abort(): void;
}

/** A push-style checker of one object: feed it the bytes, then ask for the checksum. */
export interface ObjectHasher {
  /** Hashes the next chunk; rejects (or throws) an {@link ObjectVerifyError}. */
  update(chunk: Uint8Array): Promise<void> | void;
  /** The checksum (lowercase hex); rejects when the object is malformed or misnamed. */
  finish(): Promise<string>;
  /** Drops what was kept. */
  abort(): void;
}

/**
 * The checker behind {@link createObjectVerifier}, without a stream around it, for callers that
 * read and write the bytes themselves (the upload route, which writes each object to a file).
 */
export function createObjectHasher(
  kind: VerifyKind,
  opts: ObjectVerifierOptions = {},
): ObjectHasher {
  const label = `"${opts.name ?? `${kind} object`}"`;
  const hasher: Hasher = kind === "filez"
    ? new FilezHasher(label)
    : new PlainHasher(kind, label, opts.maxMetadataSize ?? 128 << 20);
  const wrap = (e: unknown) => {
    hasher.abort();
    return e instanceof ObjectVerifyError ? e : new ObjectVerifyError(
      typeof e === "string" ? e : `Cannot verify ${label}: ${message(e)}`,
    );
  };
  return {
    update(chunk) {
      try {
        const r = hasher.update(chunk);
        return r instanceof Promise
          ? r.catch((e) => {
            throw wrap(e);
          })
          : r;
      } catch (e) {
        throw wrap(e);
      }
    },
    async finish() {
      let hex: string;
      try {
        hex = await hasher.finish();
      } catch (e) {
        throw wrap(e);
      }
      if (opts.expected !== undefined && hex !== opts.expected) {
        throw new ObjectVerifyError(
          `Object ${label} does not match its name: its checksum is "${hex}"`,
        );
      }
      return hex;
    },
    abort: () => hasher.abort(),
  };
}

/**
 * Returns a pass-through stream that computes the checksum of the object of kind `kind`:
 * sha256 of the bytes for `.commit`, `.dirtree`, `.dirmeta` (which must also parse as their
 * GVariant type) and delta parts, and for `.filez` the sha256 of the uncompressed content stream
 * of §4.4. Chunks are passed on only once hashed; the stream errors with an
 * {@link ObjectVerifyError} when the upload cannot be the object (or, with `expected`, is not).
 */
export function createObjectVerifier(
  kind: VerifyKind,
  opts: ObjectVerifierOptions = {},
): ObjectVerifier {
  const label = `"${opts.name ?? `${kind} object`}"`;
  const hasher = createObjectHasher(kind, opts);
  const result = Promise.withResolvers<string>();
  result.promise.catch(() => {}); // a caller that only reads the stream sees the error there
  const fail = (e: unknown) => {
    hasher.abort();
    const err = e instanceof ObjectVerifyError
      ? e
      : new ObjectVerifyError(typeof e === "string" ? e : message(e));
    result.reject(err);
    return err;
  };
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      try {
        await hasher.update(chunk);
      } catch (e) {
        throw fail(e);
      }
      controller.enqueue(chunk);
    },
    async flush() {
      try {
        result.resolve(await hasher.finish());
      } catch (e) {
        throw fail(e);
      }
    },
    cancel: () => void fail(`Upload of ${label} was cancelled`),
  });
  return Object.assign(stream, { digest: () => result.promise });
}

const message = (e: unknown) => e instanceof Error ? e.message : String(e);

/** sha256 of the bytes; metadata objects are also kept (up to a cap) and parsed at the end. */
class PlainHasher implements Hasher {
  #hash = createHash("sha256");
  #kept: Uint8Array[] = [];
  #size = 0;
  constructor(
    readonly kind: VerifyKind,
    readonly label: string,
    readonly max: number,
  ) {}
  update(chunk: Uint8Array) {
    this.#hash.update(chunk);
    if (this.kind === "delta") return;
    if ((this.#size += chunk.length) > this.max) {
      throw new ObjectVerifyError(
        `Object ${this.label} is larger than the ${this.max}-byte limit on metadata objects`,
      );
    }
    this.#kept.push(chunk);
  }
  finish() {
    if (this.kind !== "delta" && this.kind !== "filez") {
      const bytes = new Uint8Array(this.#size);
      this.#kept.reduce((at, c) => (bytes.set(c, at), at + c.length), 0);
      this.#kept = [];
      checkMetadata(this.kind, bytes, this.label);
    }
    return this.#hash.digest("hex");
  }
  abort() {
    this.#kept = [];
  }
}

/**
 * Parses a metadata object, so that bytes which merely hash to their name ("garbage with a lucky
 * name": anyone can name bytes by their own sha256) are refused. As libostree's
 * `ostree_validate_structureof_*` do before any use, inner checksums must be 32 bytes and
 * dirtree names single path components, so no entry can name '..' or a path.
 */
function checkMetadata(
  kind: keyof typeof METADATA_TYPES,
  bytes: Uint8Array,
  label: string,
): void {
  const bad = (why: string) =>
    new ObjectVerifyError(`Object ${label} is not a valid ${kind}: ${why}`);
  let v: Value[];
  try {
    v = decode(METADATA_TYPES[kind], bytes) as Value[];
  } catch (e) {
    throw bad(message(e));
  }
  let sums: Value[] = [];
  if (kind === "commit") {
    const parent = v[1] as Uint8Array;
    sums = parent.length === 0 ? [v[6]!, v[7]!] : [parent, v[6]!, v[7]!];
  } else if (kind === "dirtree") {
    const entries = [...v[0] as Value[][], ...v[1] as Value[][]];
    const name = entries.find(([n]) => /^\.{0,2}$|\//.test(n as string));
    if (name) throw bad(`it has an entry named ${JSON.stringify(name[0])}`);
    sums = entries.flatMap((e) => e.slice(1));
  }
  if (sums.some((s) => (s as Uint8Array).length !== 32)) {
    throw bad("it holds a checksum that is not 32 bytes");
  }
}

/**
 * The `.filez` checksum (§4.4): sha256 over the 8-byte size prefix and `(uuuusa(ayay))` header
 * rebuilt from the `(tuuuusa(ayay))` one (dropping the size), then the inflated content.
 */
class FilezHasher implements Hasher {
  #hash = createHash("sha256");
  #prefix = new Uint8Array(8);
  #header: Uint8Array | undefined;
  #filled = 0;
  #inflater: Inflater | undefined;
  #symlink = false;
  constructor(readonly label: string) {}

  update(chunk: Uint8Array): Promise<void> | void {
    let at = 0;
    if (!this.#header) {
      at = this.#fill(this.#prefix, chunk, 0);
      if (this.#filled < 8) return;
      const view = new DataView(this.#prefix.buffer);
      const length = view.getUint32(0);
      if (view.getUint32(4) !== 0) throw this.#bad("its padding is not zero");
      if (length > MAX_HEADER) {
        throw this.#bad(`its ${length}-byte header is over ${MAX_HEADER}`);
      }
      this.#header = new Uint8Array(length);
      this.#filled = 0;
    }
    if (!this.#inflater && !this.#symlink) {
      at = this.#fill(this.#header, chunk, at);
      if (this.#filled < this.#header.length) return;
      this.#start(this.#header);
    }
    const rest = chunk.subarray(at);
    if (rest.length === 0) return;
    // ostree reads no content for a symlink (ostree_content_stream_parse): bytes after its
    // header would be stored and served, yet covered by no checksum.
    if (this.#symlink) throw this.#bad("a symlink has content");
    return this.#inflater!.write(rest);
  }

  #fill(into: Uint8Array, chunk: Uint8Array, at: number): number {
    const n = Math.min(into.length - this.#filled, chunk.length - at);
    into.set(chunk.subarray(at, at + n), this.#filled);
    this.#filled += n;
    return at + n;
  }

  #start(header: Uint8Array) {
    const read = readFilezHeader(header);
    if ("refused" in read) throw this.#bad(read.refused);
    const { meta, symlink, size } = read;
    this.#symlink = symlink;
    this.#hash.update(meta);
    // ostree ignores the size a symlink's header claims, and hashes no content for it.
    if (!symlink) {
      this.#inflater = new Inflater(size, this.#hash, (why) => this.#bad(why));
    }
  }

  async finish(): Promise<string> {
    if (!this.#inflater && !this.#symlink) {
      throw this.#bad("it ends inside its header");
    }
    await this.#inflater?.end();
    return this.#hash.digest("hex");
  }

  abort() {
    this.#inflater?.abort();
  }

  #bad(why: string) {
    return new ObjectVerifyError(`Object ${this.label} is corrupt: ${why}`);
  }
}

/**
 * Raw-deflate decompression into the hash with bounded memory: node:zlib hands out 16 KiB
 * output chunks (DecompressionStream emits a chunk's whole output at once, and accepts a
 * truncated stream silently), and a write resolves only once its output is hashed.
 */
class Inflater {
  #z = createInflateRaw();
  #fed = 0;
  #out = 0n;
  #ended = false;
  #error: ObjectVerifyError | undefined;
  #failed: Promise<never>;
  constructor(
    readonly size: bigint,
    hash: Hash,
    readonly bad: (why: string) => ObjectVerifyError,
  ) {
    this.#failed = new Promise<never>((_, reject) => {
      this.#z.on("error", (e: Error) => reject(this.#zlibError(e)));
    });
    this.#failed.catch(() => {});
    this.#z.on("data", (b: Uint8Array) => {
      if (this.#error) return;
      // Checked as it inflates, so a deflate bomb stops at the size its header claims.
      if ((this.#out += BigInt(b.length)) > size) {
        this.#z.destroy(this.#fail(`it inflates beyond its ${size} bytes`));
      } else hash.update(b);
    });
    this.#z.on("end", () => this.#ended = true);
  }

  #zlibError(e: Error): ObjectVerifyError {
    return this.#fail(`its content does not inflate (${e.message})`);
  }

  #fail(why: string): ObjectVerifyError {
    return this.#error ??= this.bad(why);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#error) throw this.#error;
    // The deflate stream has ended, and zlib ignores what follows: it is not content.
    if (this.#ended) {
      throw this.#fail("it has bytes after its compressed content");
    }
    this.#fed += chunk.length;
    const written = new Promise<void>((resolve, reject) =>
      this.#z.write(chunk, (e) => e ? reject(this.#zlibError(e)) : resolve())
    );
    await Promise.race([written, this.#failed]);
  }

  async end(): Promise<void> {
    if (this.#error) throw this.#error;
    const ended = new Promise<void>((resolve) => this.#z.once("end", resolve));
    this.#z.end();
    await Promise.race([this.#ended || ended, this.#failed]);
    if (this.#error) throw this.#error;
    if (this.#z.bytesWritten !== this.#fed) {
      throw this.#fail("it has bytes after its compressed content");
    }
    if (this.#out !== this.size) {
      throw this.#fail(
        `it inflates to ${this.#out} bytes, but its header says ${this.size}`,
      );
    }
  }

  abort() {
    this.#z.destroy();
  }
}
