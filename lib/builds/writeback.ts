/**
 * @module Starts writing a build's uploaded objects to disk while the commit job works on them.
 * The publish that follows imports them into the main repository, whose commit transaction ends
 * with syncfs(2) (libostree, for durability): with 200 MB just uploaded and still only in the
 * page cache, that one call spent 0.2–0.4 s on this VM's disk writing all of it (bench/upload.ts),
 * after the commit job's CPU-bound work had left the disk idle. `sync --file-system` is that same
 * syncfs, run beside the commit job instead. Nothing depends on it: it only moves the writing
 * earlier, and a failure is merely logged.
 */
import { run } from "../ostree/cli.ts";

/** A running flush of the file system holding `path`; `done` never rejects. */
export interface Writeback {
  done: Promise<{ ok: true } | { ok: false; why: string }>;
}

/** Runs `sync --file-system <path>` (coreutils) in the background. */
export function startWriteback(path: string): Writeback {
  return {
    done: run("sync", ["--file-system", path]).then(
      () => ({ ok: true as const }),
      (err) => ({
        ok: false as const,
        why: err instanceof Error ? err.message : String(err),
      }),
    ),
  };
}
