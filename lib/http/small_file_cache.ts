/**
 * @module The bytes of small immutable repository files (content-addressed objects, delta
 * parts) kept in memory, so a hot object is served without opening and reading it. Many
 * clients pulling the same new release fetch the same objects (bench/serve.ts measures this).
 *
 * An entry stays true to the file on disk: some time after it was last checked, the caller looks
 * at the file again (lstat, through the same checks as any request) and passes what it found; an
 * entry whose inode, device, size or modification time differ is dropped. So a pruned or
 * replaced file stops being served from memory within that time (nginx's `open_file_cache_valid`
 * does the same, with 60 s by default). That time is {@link RECHECK_MS} for delta parts, and
 * longer for content-addressed objects (`objectRecheckMs`, FLATYARD_OBJECT_RECHECK_SECONDS): an
 * object's name is the checksum of its bytes, so its file can only disappear (a prune), never
 * hold other bytes, and an object no ref reaches any more is one no client asks for. Looking at
 * each of a pull's ~2000 objects every second cost a tenth of the serving rate
 * (bench/serve.ts). Bounded by total bytes, least recently used out first, so memory stays
 * flat however many files are served.
 */

/** How long an entry that is not an object is used without looking at the file again. */
export const RECHECK_MS = 1000;
/** The default for content-addressed objects (see the module comment). */
export const OBJECT_RECHECK_MS = 10_000;

/** A file held in memory. */
export interface CachedFile {
  info: Deno.FileInfo;
  bytes: Uint8Array<ArrayBuffer>;
  /** Until when (the cache's clock) it is used without a look at the file. */
  checkedUntil: number;
  /** Dropped from the cache (stale, replaced or evicted): never to be served again. */
  dropped?: boolean;
}

/**
 * When to look at a file again: between half of `ms` and all of it, at random, so the files of
 * a pull, read into memory together, do not all fall due in the same instant and stall the
 * requests behind a burst of checks.
 */
function recheckIn(ms: number): number {
  return ms * (0.5 + Math.random() / 2);
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size &&
    a.mtime?.getTime() === b.mtime?.getTime();
}

export class SmallFileCache {
  /** In use order: the first key is the least recently used. */
  readonly #entries = new Map<string, CachedFile>();
  #bytes = 0;
  hits = 0;
  misses = 0;

  readonly maxFile: number;
  readonly objectRecheckMs: number;
  private readonly now: () => number;

  /**
   * `maxBytes`: the most file bytes held (0: nothing is kept); `maxFile`: the largest file;
   * `objectRecheckMs`: how long an object is used without a look at its file; `now`: a
   * monotonic clock in milliseconds (tests pass their own).
   */
  constructor(
    readonly maxBytes: number,
    options: {
      maxFile?: number;
      objectRecheckMs?: number;
      now?: () => number;
    } = {},
  ) {
    this.maxFile = options.maxFile ?? 64 * 1024;
    this.objectRecheckMs = options.objectRecheckMs ?? OBJECT_RECHECK_MS;
    this.now = options.now ?? (() => performance.now());
  }

  /** How long the file at `rel` (a path inside a repository) is used between looks at it. */
  recheckMsFor(rel: string): number {
    return rel.startsWith("objects/") ? this.objectRecheckMs : RECHECK_MS;
  }

  /** The entry for `key` if it was checked against its file recently enough. */
  recent(key: string): CachedFile | undefined {
    const e = this.#entries.get(key);
    if (!e || e.checkedUntil <= this.now()) return undefined;
    this.#touch(key, e);
    this.hits++;
    return e;
  }

  /**
   * The entry for `key` when `current` (the file on disk now) is the file it was read from;
   * a stale entry is dropped. `recheckMs`: when to look again ({@link recheckMsFor}).
   */
  get(
    key: string,
    current: Deno.FileInfo,
    recheckMs = RECHECK_MS,
  ): CachedFile | undefined {
    const e = this.#entries.get(key);
    if (e && sameFile(e.info, current)) {
      e.checkedUntil = this.now() + recheckIn(recheckMs);
      this.#touch(key, e);
      this.hits++;
      return e;
    }
    if (e) this.#drop(key, e);
    this.misses++;
    return undefined;
  }

  /** Keeps `bytes`, the whole of the file `key` whose stat was `info`, if it fits. */
  put(
    key: string,
    info: Deno.FileInfo,
    bytes: Uint8Array<ArrayBuffer>,
    recheckMs = RECHECK_MS,
  ): void {
    if (bytes.length > this.maxFile || bytes.length > this.maxBytes) return;
    if (bytes.length !== info.size) return;
    const old = this.#entries.get(key);
    if (old) this.#drop(key, old);
    while (this.#bytes + bytes.length > this.maxBytes) {
      const [k, first] = this.#entries.entries().next().value!;
      this.#drop(k, first);
    }
    this.#entries.set(key, {
      info,
      bytes,
      checkedUntil: this.now() + recheckIn(recheckMs),
    });
    this.#bytes += bytes.length;
  }

  /**
   * Whether `e`, an entry handed out earlier, may still be served without a look at its file:
   * held, and checked recently enough. Counted as a hit when it may. For callers that
   * keep more than the bytes (a ready answer, routes/repo_files.ts): it does not move `e` up
   * in the eviction order, so an entry served only this way is evicted as if unused, and its
   * next request goes through the usual path and puts it back.
   */
  current(e: CachedFile): boolean {
    if (e.dropped || e.checkedUntil <= this.now()) return false;
    this.hits++;
    return true;
  }

  /** Bytes held now. */
  get size(): number {
    return this.#bytes;
  }

  #touch(key: string, e: CachedFile): void {
    this.#entries.delete(key);
    this.#entries.set(key, e);
  }

  #drop(key: string, e: CachedFile): void {
    e.dropped = true;
    this.#entries.delete(key);
    this.#bytes -= e.bytes.length;
  }
}
