/**
 * @module Receives one `Content-Range` chunk of an artifact into its part file, streamed, never
 * held whole: under the artifact's writer lease, from exactly the bytes already stored, with
 * `received` moved only after an fsync. A dropped or stalled connection keeps every byte that
 * arrived (the client resumes from there); a malformed request keeps none of its chunk. The last
 * chunk is checked against the declared sha256 and the bundle header before the file is kept.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Db } from "../db/db.ts";
import { buildPaths } from "../builds/build_disk.ts";
import { type Artifact, artifactStore } from "./artifact_store.ts";
import { BundleError, readBundleHeader } from "./bundle_header.ts";

/** Where artifact `id` of build `buildId` lives: `<build>/artifacts/<id>.part`, then `.flatpak`. */
export function artifactPaths(
  dataDir: string,
  buildId: number,
  id: number,
): { dir: string; part: string; bundle: string } {
  const dir = join(buildPaths(dataDir, buildId).root, "artifacts");
  return {
    dir,
    part: join(dir, `${id}.part`),
    bundle: join(dir, `${id}.flatpak`),
  };
}

/**
 * The chunk writers running in this process, by artifact. A client that reconnects after a
 * network failure often reaches the server before the server has noticed the old connection is
 * dead; rather than make it wait out the idle timeout, its new request stops the old writer
 * (which keeps what it stored) and takes over. Across processes the lease expiry does this.
 */
export class ActiveWriters {
  #running = new Map<
    number,
    { abort: AbortController; done: Promise<unknown> }
  >();

  /** Runs `fn` as the writer of `id`, stoppable through the signal it gets. */
  async run<T>(
    id: number,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const abort = new AbortController();
    const done = fn(abort.signal);
    this.#running.set(id, { abort, done: done.catch(() => {}) });
    try {
      return await done;
    } finally {
      if (this.#running.get(id)?.abort === abort) this.#running.delete(id);
    }
  }

  /** Stops this process's writer of `id`, if any, and waits until it has let go. */
  async preempt(id: number): Promise<boolean> {
    const w = this.#running.get(id);
    if (!w) return false;
    w.abort.abort(new Error("Preempted by a newer request"));
    await w.done;
    return true;
  }
}

/** How a chunk request ended; the route turns each kind into its status code. */
export type ChunkOutcome =
  /** The chunk is stored; `artifact.received` moved past it. */
  | { kind: "stored"; artifact: Artifact }
  /** That was the last chunk and the file checked out. */
  | { kind: "complete"; artifact: Artifact }
  /** START is not the bytes stored; `artifact.received` is. */
  | { kind: "offset"; artifact: Artifact }
  /** Another request is writing this artifact. */
  | { kind: "busy"; artifact: Artifact }
  /** The artifact is complete or failed. */
  | { kind: "state"; artifact: Artifact }
  /** The body stopped early (connection lost, stalled or preempted); what arrived is kept. */
  | {
    kind: "interrupted";
    artifact: Artifact;
    reason: "aborted" | "idle" | "error";
  }
  /** The body does not match its Content-Range; nothing of it is kept. */
  | { kind: "body"; artifact: Artifact; detail: string }
  /** The whole file is not what was declared; it is deleted and the artifact failed. */
  | { kind: "rejected"; artifact: Artifact; detail: string };

/** Timing of a chunk writer. */
export interface ChunkTiming {
  /** A body that sends nothing for this long is treated as a lost connection. */
  idleMs: number;
  /** fsync and record `received` at least this often while bytes flow. */
  checkpointMs: number;
}

export const defaultChunkTiming: ChunkTiming = {
  idleMs: 30_000,
  checkpointMs: 5_000,
};

/** What {@link receiveChunk} needs. */
export interface ChunkDeps {
  db: Db;
  dataDir: string;
  writers: ActiveWriters;
  timing: ChunkTiming;
}

/**
 * Writes the body as bytes `start..end` (inclusive) of `artifact`, whose size the route has
 * already checked the range against. `signal` is the request's: aborted when its client goes.
 */
export async function receiveChunk(
  deps: ChunkDeps,
  artifact: Artifact,
  range: { start: number; end: number },
  body: ReadableStream<Uint8Array> | null,
  signal: AbortSignal,
): Promise<ChunkOutcome> {
  const writer = crypto.randomUUID();
  // Outlives the longest gap between checkpoints: an idle wait plus one checkpoint interval.
  const leaseMs = 2 * deps.timing.idleMs + deps.timing.checkpointMs + 10_000;
  let claimed = await artifactStore.claimWriter(
    deps.db,
    artifact.id,
    range.start,
    writer,
    leaseMs,
  );
  if (
    !claimed && await artifactStore.writerBusy(deps.db, artifact.id) &&
    await deps.writers.preempt(artifact.id)
  ) {
    claimed = await artifactStore.claimWriter(
      deps.db,
      artifact.id,
      range.start,
      writer,
      leaseMs,
    );
  }
  if (!claimed) {
    const now = (await artifactStore.get(
      deps.db,
      artifact.buildId,
      artifact.id,
    ))!;
    if (now.status !== "uploading") return { kind: "state", artifact: now };
    if (now.received !== range.start) return { kind: "offset", artifact: now };
    return { kind: "busy", artifact: now };
  }
  return deps.writers.run(artifact.id, (preempted) =>
    write(
      deps,
      claimed,
      writer,
      leaseMs,
      range,
      body,
      AbortSignal.any([signal, preempted]),
    ));
}

async function write(
  deps: ChunkDeps,
  artifact: Artifact,
  writer: string,
  leaseMs: number,
  range: { start: number; end: number },
  body: ReadableStream<Uint8Array> | null,
  signal: AbortSignal,
): Promise<ChunkOutcome> {
  const paths = artifactPaths(deps.dataDir, artifact.buildId, artifact.id);
  const expected = range.end - range.start + 1;
  // The lease is ours from here; `durable` is what the row says, released on every path.
  let durable = range.start;
  let holding = true;
  const checkpoint = async (received: number, release = false) => {
    const ok = await artifactStore.checkpoint(
      deps.db,
      artifact.id,
      writer,
      received,
      { leaseMs, release },
    );
    if (!ok) {
      holding = false;
      throw new LeaseLostError(artifact.id);
    }
    durable = received;
    if (release) holding = false;
  };
  try {
    await Deno.mkdir(paths.dir, { recursive: true });
    using file = await Deno.open(paths.part, { write: true, create: true });
    const stored = (await file.stat()).size;
    if (stored < range.start) {
      // The row promises bytes the file lacks (a crash between rename and commit, or an
      // outside hand): the truth is the file. The client resumes from there.
      const now = await artifactStore.rewind(
        deps.db,
        artifact.id,
        writer,
        stored,
      );
      holding = false;
      return {
        kind: "offset",
        artifact: now ?? { ...artifact, received: stored },
      };
    }
    // Bytes past `received` are from a writer that died before its fsync: not ours to trust.
    if (stored > range.start) await file.truncate(range.start);
    await file.seek(range.start, Deno.SeekMode.Start);

    let written = 0;
    let lastCheckpoint = Date.now();
    let stop: "aborted" | "idle" | "error" | "long" | undefined;
    const reader = body?.getReader();
    while (reader) {
      const next = await readWithin(reader, deps.timing.idleMs, signal);
      if (typeof next === "string") {
        stop = next;
        break;
      }
      if (next.done) break;
      if (written + next.value.length > expected) {
        stop = "long";
        break;
      }
      await writeAll(file, next.value);
      written += next.value.length;
      if (Date.now() - lastCheckpoint >= deps.timing.checkpointMs) {
        await file.syncData();
        await checkpoint(range.start + written);
        lastCheckpoint = Date.now();
      }
    }
    if (stop !== undefined) reader?.cancel().catch(() => {});

    if (stop === "long" || (stop === undefined && written < expected)) {
      await file.truncate(range.start);
      await checkpoint(range.start, true);
      return {
        kind: "body",
        artifact: { ...artifact, received: range.start },
        detail: stop === "long"
          ? `Chunk body is longer than the ${expected} bytes its Content-Range names`
          : `Chunk body has ${written} bytes, its Content-Range names ${expected}`,
      };
    }
    await file.syncData();
    if (stop !== undefined) {
      await checkpoint(range.start + written, true);
      return {
        kind: "interrupted",
        artifact: { ...artifact, received: durable },
        reason: stop,
      };
    }
    if (range.end + 1 < artifact.size) {
      await checkpoint(range.end + 1, true);
      return { kind: "stored", artifact: { ...artifact, received: durable } };
    }
    const outcome = await finish(
      deps,
      artifact,
      writer,
      paths,
      () => checkpoint(durable),
    );
    holding = false; // finish ended the upload, and the lease with it
    return outcome;
  } catch (err) {
    if (err instanceof LeaseLostError) {
      const now = (await artifactStore.get(
        deps.db,
        artifact.buildId,
        artifact.id,
      ))!;
      return { kind: "busy", artifact: now };
    }
    throw err;
  } finally {
    // An unexpected error: give the lease back with what is known to be on disk.
    if (holding) await checkpoint(durable, true).catch(() => {});
  }
}

/** The last byte is stored: the whole file must hash to the declared sha256 and be a bundle. */
async function finish(
  deps: ChunkDeps,
  artifact: Artifact,
  writer: string,
  paths: { dir: string; part: string; bundle: string },
  renewLease: () => Promise<void>,
): Promise<ChunkOutcome> {
  // Hashing again once at the end, streamed: node's hash state cannot be saved between
  // requests (a resumed upload may land on another replica), and this costs one sequential read.
  const sha256 = await hashFile(
    paths.part,
    deps.timing.checkpointMs,
    renewLease,
  );
  let problem: string | undefined;
  let header: { ref: string | null; commit: string | null } | undefined;
  if (sha256 !== artifact.sha256) {
    problem =
      `Artifact "${artifact.name}" has sha256 ${sha256}, not the declared ${artifact.sha256}`;
  } else if (artifact.kind === "source") {
    // A source archive: its checksum is all there is to check (the builder unpacks it).
    header = { ref: null, commit: null };
  } else {
    try {
      header = await readBundleHeader(paths.part);
    } catch (err) {
      if (!(err instanceof BundleError)) throw err;
      problem =
        `Artifact "${artifact.name}" is not a flatpak bundle: ${err.message}`;
    }
  }
  if (problem !== undefined || header === undefined) {
    await Deno.remove(paths.part).catch(() => {});
    const failed = await artifactStore.fail(
      deps.db,
      artifact.id,
      writer,
      problem!,
    );
    if (!failed) throw new LeaseLostError(artifact.id);
    return { kind: "rejected", artifact: failed, detail: problem! };
  }
  const done = header;
  // The row and the rename together: if either fails, the artifact stays uploading.
  const complete = await deps.db.transaction(async (tx) => {
    const a = await artifactStore.complete(tx, artifact.id, writer, done);
    if (!a) throw new LeaseLostError(artifact.id);
    await Deno.rename(paths.part, paths.bundle);
    return a;
  });
  await syncDir(paths.dir);
  return { kind: "complete", artifact: complete };
}

class LeaseLostError extends Error {
  override name = "LeaseLostError";
  constructor(id: number) {
    super(`Lost the writer lease of artifact "${id}"`);
  }
}

/** The next read, or why there is none: the body stalled, the request was aborted, or it broke. */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  idleMs: number,
  signal: AbortSignal,
): Promise<
  ReadableStreamReadResult<Uint8Array> | "idle" | "aborted" | "error"
> {
  if (signal.aborted) return "aborted";
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<"idle" | "aborted">((resolve) => {
    timer = setTimeout(() => resolve("idle"), idleMs);
    onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  const read = reader.read().catch(() => "error" as const);
  try {
    return await Promise.race([read, stop]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort!);
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

/** sha256 of a file in lowercase hex, read sequentially; `tick` runs every `everyMs`. */
async function hashFile(
  path: string,
  everyMs: number,
  tick: () => Promise<void>,
): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1024 * 1024);
  let last = Date.now();
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    if (Date.now() - last >= everyMs) {
      await tick();
      last = Date.now();
    }
  }
  return hash.digest("hex");
}

/** fsync a directory so a rename in it survives a crash; best effort where unsupported. */
async function syncDir(dir: string): Promise<void> {
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch { /* some filesystems refuse fsync on directories */ }
}
