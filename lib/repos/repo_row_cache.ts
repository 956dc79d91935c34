/**
 * @module Repository rows for file downloads. A pull makes hundreds of requests, and a database
 * round trip per file costs more than serving the file (bench/serve.ts), so rows are reused for
 * a short time. A change made through the API (visibility, deletion) is announced on the bus and
 * every process drops its copy at once; the time limit only bounds what a lost bus message
 * (ARCHITECTURE.md §5: the bus may drop messages) can leave stale.
 */
import type { Bus } from "../bus/bus.ts";
import type { Queryable } from "../db/db.ts";
import { type Repo, repoStore } from "./repo_store.ts";

/** The bus channel that carries the name of a repository whose row changed. */
export const REPO_CHANGED_CHANNEL = "flatyard.repo.changed";

/** How long a row is reused when no change was announced. */
export const REPO_ROW_TTL_MS = 1000;

export class RepoRowCache {
  readonly #rows = new Map<string, { repo: Repo; until: number }>();
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Queryable,
    private readonly bus: Bus,
    private readonly ttlMs = REPO_ROW_TTL_MS,
  ) {}

  /** Listens for changes announced by any process. */
  async start(): Promise<void> {
    this.#unsubscribe = await this.bus.subscribe(
      REPO_CHANGED_CHANNEL,
      (name) => this.#rows.delete(name),
    );
  }

  async stop(): Promise<void> {
    await this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /** The row still held for `name`, without a database call; undefined when none is fresh. */
  peek(name: string): Repo | undefined {
    const hit = this.#rows.get(name);
    return hit && hit.until > performance.now() ? hit.repo : undefined;
  }

  /** The repository `name` (not deleted), from memory when fresh. */
  async get(name: string): Promise<Repo | undefined> {
    const hit = this.peek(name);
    if (hit) return hit;
    const repo = await repoStore.get(this.db, name);
    // Only repositories that exist are kept: a new one is served at once.
    if (repo) {
      this.#rows.set(name, { repo, until: performance.now() + this.ttlMs });
    } else this.#rows.delete(name);
    return repo;
  }

  /**
   * Announces that `name`'s row changed (call after the change committed): every process,
   * this one included, reads it again on its next request.
   */
  async changed(name: string): Promise<void> {
    this.#rows.delete(name);
    await this.bus.publish(REPO_CHANGED_CHANNEL, name);
  }
}
