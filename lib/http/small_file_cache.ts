/**
 * @module The bytes of small immutable repository files (content-addressed objects, delta
 * parts) kept in memory, so a hot object is served without opening and reading it. Many
 * clients pulling the same new release fetch the same objects (bench/serve.ts measures this).
 *
 * An entry stays true to the file on disk: at most {@link RECHECK_MS} after it was last checked,
 * the caller looks at the file again (lstat, through the same checks as any request) and passes
 * what it found; an entry whose inode, device, size or modification time differ is dropped. So a
 * pruned or replaced file stops being served from memory within that time (nginx's
 * `open_file_cache_valid` does the same, with 60 s by default). Bounded by total bytes, least
 * recently used out first, so memory stays flat however many files are served.
 */

/** How long an entry is used without looking at the file again. */
export const RECHECK_MS = 1000;

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
 * When to look at a file again: between half of RECHECK_MS and all of it, at random, so the
 * files of a pull, read into memory together, do not all fall due in the same instant and
 * stall the requests behind a burst of checks.
 */
function recheckIn(): number {
  return RECHECK_MS * (0.5 + Math.random() / 2);
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

  /**
   * `maxBytes`: the most file bytes held (0: nothing is kept); `maxFile`: the largest file;
   * `now`: a monotonic clock in milliseconds (tests pass their own).
   */
  constructor(
    readonly maxBytes: number,
    readonly maxFile = 64 * 1024,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The entry for `key` if it was checked against its file less than RECHECK_MS ago. */
  recent(key: string): CachedFile | undefined {
    const e = this.#entries.get(key);
    if (!e || e.checkedUntil <= this.now()) return undefined;
    this.#touch(key, e);
    this.hits++;
    return e;
  }

  /**
   * The entry for `key` when `current` (the file on disk now) is the file it was read from;
   * a stale entry is dropped.
   */
  get(key: string, current: Deno.FileInfo): CachedFile | undefined {
    const e = this.#entries.get(key);
    if (e && sameFile(e.info, current)) {
      e.checkedUntil = this.now() + recheckIn();
      this.#touch(key, e);
      this.hits++;
      return e;
    }
    if (e) this.#drop(key, e);
    this.misses++;
    return undefined;
  }

  /** Keeps `bytes`, the whole of the file `key` whose stat was `info`, if it fits. */
  put(key: string, info: Deno.FileInfo, bytes: Uint8Array<ArrayBuffer>): void {
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
      checkedUntil: this.now() + recheckIn(),
    });
    this.#bytes += bytes.length;
  }

  /**
   * Whether `e`, an entry handed out earlier, may still be served without a look at its file:
   * held, and checked less than RECHECK_MS ago. Counted as a hit when it may. For callers that
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
