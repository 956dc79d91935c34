/**
 * @module Ready answers to the commonest request of a pull: a plain GET of a small immutable
 * object of a public repository, held in memory (small_file_cache.ts). The first answer to such
 * a request is built the usual way (routes/repo_files.ts); its status line headers and bytes
 * are then kept under the request path, and the next plain GET of that path is written from
 * them at once, without looking up, classifying and building the same answer again. An answer
 * is good exactly as long as the memory cache's entry it came from (`SmallFileCache.current`):
 * the file is looked at again on that entry's schedule, through the usual path, and a dropped
 * entry (pruned, replaced or evicted file) ends its ready answer. Bounded by count, oldest out
 * first; the bytes are the cache's own, so a ready answer costs only its headers.
 */
import type { CachedFile, SmallFileCache } from "./small_file_cache.ts";

/** A 200 answer ready to write. */
export interface ReadyAnswer {
  /** The repository the path is in, whose visibility is checked on every use. */
  repo: string;
  /** Every header but the per-request ones (X-Request-Id, Date). */
  headers: Readonly<Record<string, string>>;
  body: Uint8Array;
  cached: CachedFile;
}

/** Ready answers by request path. */
export class ReadyAnswers {
  readonly #answers = new Map<string, ReadyAnswer>();

  constructor(
    private readonly cache: SmallFileCache,
    readonly maxAnswers = 16_384,
  ) {}

  /** The ready answer for `path`, if its file is still current in the memory cache. */
  get(path: string): ReadyAnswer | undefined {
    const a = this.#answers.get(path);
    if (!a) return undefined;
    if (this.cache.current(a.cached)) return a;
    // Past its recheck time: the usual path looks at the file (and puts the answer back);
    // dropped: the file is gone or changed.
    if (a.cached.dropped) this.#answers.delete(path);
    return undefined;
  }

  set(path: string, answer: ReadyAnswer): void {
    this.#answers.delete(path);
    this.#answers.set(path, answer);
    if (this.#answers.size > this.maxAnswers) {
      this.#answers.delete(this.#answers.keys().next().value!);
    }
  }

  /** Answers held now. */
  get size(): number {
    return this.#answers.size;
  }
}
