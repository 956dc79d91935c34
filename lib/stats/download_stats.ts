/**
 * @module The download counter behind `deps.downloads`: counts in memory on the request path
 * and adds the counts to the database in one batch per interval and on stop, so several server
 * processes can count the same repository at once (specs/ecosystem.md §3.3).
 */
import type { Clock } from "../clock.ts";
import type { Db } from "../db/db.ts";
import type { Logger } from "../logger.ts";
import { classifyDownload } from "./counting.ts";
import type { DownloadObserver, HeaderReader } from "./observer.ts";

interface RefCount {
  repo: string;
  day: string;
  kind: string;
  name: string;
  arch: string;
  branch: string;
  installs: number;
  updates: number;
  deltas: number;
}

interface ClientCount {
  repo: string;
  day: string;
  ostree: string;
  flatpak: string;
  downloads: number;
}

interface Batch {
  refs: Map<string, RefCount>;
  clients: Map<string, ClientCount>;
}

// Rows per INSERT: well under the 65535 bind parameters of the wire protocol.
const ROWS_PER_STATEMENT = 500;

/** Options of {@link DownloadStats}. */
export interface DownloadStatsOptions {
  /** How often pending counts are written; default 10 s. */
  flushMs?: number;
}

/** Counts downloads and flushes them in batches. */
export class DownloadStats implements DownloadObserver {
  #pending: Batch = emptyBatch();
  #timer: ReturnType<typeof setInterval> | undefined;
  #flushing: Promise<void> = Promise.resolve();
  readonly #flushMs: number;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly logger: Logger,
    opts: DownloadStatsOptions = {},
  ) {
    this.#flushMs = opts.flushMs ?? 10_000;
  }

  /** Counts `path` if it is a download; never throws or waits. */
  observe(repo: string, path: string, headers: HeaderReader): void {
    const d = classifyDownload(path, headers);
    if (!d) return;
    // Days are UTC days, as in Flathub's daily files.
    const day = this.clock.now().toISOString().slice(0, 10);
    const refKey = [repo, day, d.kind, d.name, d.arch, d.branch].join("\0");
    const ref = this.#pending.refs.get(refKey) ?? {
      repo,
      day,
      kind: d.kind,
      name: d.name,
      arch: d.arch,
      branch: d.branch,
      installs: 0,
      updates: 0,
      deltas: 0,
    };
    if (d.update) ref.updates++;
    else ref.installs++;
    if (d.delta) ref.deltas++;
    this.#pending.refs.set(refKey, ref);
    const clientKey = [repo, day, d.ostreeVersion, d.flatpakVersion].join("\0");
    const client = this.#pending.clients.get(clientKey) ?? {
      repo,
      day,
      ostree: d.ostreeVersion,
      flatpak: d.flatpakVersion,
      downloads: 0,
    };
    client.downloads++;
    this.#pending.clients.set(clientKey, client);
  }

  /** Number of distinct counters waiting to be written. */
  get pending(): number {
    return this.#pending.refs.size;
  }

  /** Writes the pending counts (one transaction); on failure they stay pending for the next try. */
  flush(): Promise<void> {
    // Flushes run one after another so a slow one never overlaps the next tick's.
    // A failed flush has put its counts back; it must not stop the next one.
    this.#flushing = this.#flushing.catch(() => {}).then(() => this.#write());
    return this.#flushing;
  }

  /** Starts the periodic flush. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.flush().catch(() => {});
    }, this.#flushMs);
  }

  /** Stops the timer and writes what is pending. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush().catch(() => {});
  }

  async #write(): Promise<void> {
    const batch = this.#pending;
    if (batch.refs.size === 0) return;
    this.#pending = emptyBatch();
    try {
      await this.db.transaction(async (tx) => {
        const refs = [...batch.refs.values()];
        for (let i = 0; i < refs.length; i += ROWS_PER_STATEMENT) {
          const rows = refs.slice(i, i + ROWS_PER_STATEMENT);
          await tx.query(
            upsert(
              rows.length,
              "download_stats",
              [
                ["kind", "text"],
                ["name", "text"],
                ["arch", "text"],
                ["branch", "text"],
              ],
              ["installs", "updates", "delta_downloads"],
            ),
            rows.flatMap((r) => [
              r.repo,
              r.day,
              r.kind,
              r.name,
              r.arch,
              r.branch,
              r.installs,
              r.updates,
              r.deltas,
            ]),
          );
        }
        const clients = [...batch.clients.values()];
        for (let i = 0; i < clients.length; i += ROWS_PER_STATEMENT) {
          const rows = clients.slice(i, i + ROWS_PER_STATEMENT);
          await tx.query(
            upsert(
              rows.length,
              "download_clients",
              [["ostree_version", "text"], ["flatpak_version", "text"]],
              ["downloads"],
            ),
            rows.flatMap((r) => [
              r.repo,
              r.day,
              r.ostree,
              r.flatpak,
              r.downloads,
            ]),
          );
        }
      });
    } catch (err) {
      merge(this.#pending, batch);
      this.logger.error("download statistics flush failed", {
        error: err instanceof Error ? err.message : String(err),
        counters: batch.refs.size,
      });
      throw err;
    }
  }
}

function emptyBatch(): Batch {
  return { refs: new Map(), clients: new Map() };
}

/** Adds a failed batch back into the pending one (new counts may have arrived meanwhile). */
function merge(into: Batch, from: Batch): void {
  for (const [k, r] of from.refs) {
    const cur = into.refs.get(k);
    if (!cur) into.refs.set(k, r);
    else {
      cur.installs += r.installs;
      cur.updates += r.updates;
      cur.deltas += r.deltas;
    }
  }
  for (const [k, c] of from.clients) {
    const cur = into.clients.get(k);
    if (!cur) into.clients.set(k, c);
    else cur.downloads += c.downloads;
  }
}

/**
 * `INSERT … SELECT … FROM (VALUES …) JOIN repos … ON CONFLICT DO UPDATE SET n = t.n + EXCLUDED.n`
 * for `rows` rows of (repo name, day, ...keys, ...counters). Counters of a repository deleted
 * meanwhile are dropped by the join.
 */
function upsert(
  rows: number,
  table: string,
  keys: [string, string][],
  counters: string[],
): string {
  const columns: [string, string][] = [
    ["repo", "text"],
    ["day", "date"],
    ...keys,
    ...counters.map((c): [string, string] => [c, "int8"]),
  ];
  const values = Array.from({ length: rows }, (_, r) =>
    "(" +
    columns.map(([, type], c) => `$${r * columns.length + c + 1}::${type}`)
      .join(", ") +
    ")").join(",\n");
  const names = columns.map(([n]) => n);
  const conflict = ["repo_id", "day", ...keys.map(([n]) => n)];
  return `INSERT INTO ${table} (repo_id, ${names.slice(1).join(", ")})
SELECT r.id, ${names.slice(1).map((n) => `v.${n}`).join(", ")}
FROM (VALUES ${values}) AS v (${names.join(", ")})
JOIN repos r ON r.name = v.repo AND r.deleted_at IS NULL
ON CONFLICT (${conflict.join(", ")}) DO UPDATE SET ${
    counters.map((c) => `${c} = ${table}.${c} + EXCLUDED.${c}`).join(", ")
  }`;
}
