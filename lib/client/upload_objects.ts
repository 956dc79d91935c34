/**
 * @module Uploads objects the Python client's way (specs/flat-manager-api.md §5.2): grouped into
 * sequential `multipart/mixed` requests of at most 4 MiB of summed sizes, with progress.
 */
import type { FlatManagerClient } from "./flat_manager_client.ts";
import type { UploadFile } from "./local_repo.ts";

/** Summed file sizes per upload request (`UPLOAD_CHUNK_LIMIT`, §5.2). */
export const UPLOAD_CHUNK_LIMIT = 4 * 1024 * 1024;

/** Upload progress; `*Done` never decrease and end equal to the totals. */
export interface PushProgress {
  phase: "files" | "metadata" | "deltas" | "done";
  objectsDone: number;
  objectsTotal: number;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSecond: number;
}

/**
 * Splits objects into upload requests as the Python client's `upload_objects` does: add objects
 * while the summed size stays ≤ `limit`; one that alone exceeds it goes in a request of its own.
 */
export function uploadBatches(
  files: readonly UploadFile[],
  limit = UPLOAD_CHUNK_LIMIT,
): UploadFile[][] {
  const batches: UploadFile[][] = [];
  let batch: UploadFile[] = [];
  let total = 0;
  for (const f of files) {
    if (total + f.size <= limit) {
      batch.push(f);
      total += f.size;
    } else if (batch.length > 0) {
      batches.push(batch);
      batch = [f];
      total = f.size;
    } else {
      batches.push([f]);
      total = 0;
    }
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * Sends each group's batches in order, one request at a time, and reports progress: per chunk
 * sent, per finished request, and a last `done`.
 */
export async function uploadAll(
  client: FlatManagerClient,
  buildUrl: string,
  groups: [PushProgress["phase"], UploadFile[][]][],
  log: (line: string) => void,
  onProgress?: (p: PushProgress) => void,
  concurrency = 1,
): Promise<void> {
  const all = groups.flatMap(([, batches]) => batches.flat());
  const total = {
    objectsTotal: all.length,
    bytesTotal: all.reduce((n, f) => n + f.size, 0),
  };
  const start = performance.now();
  let objectsDone = 0;
  let bytesDone = 0;
  const report = (phase: PushProgress["phase"]) => {
    const seconds = (performance.now() - start) / 1000;
    onProgress?.({
      phase,
      objectsDone,
      bytesDone,
      ...total,
      bytesPerSecond: seconds > 0 ? bytesDone / seconds : 0,
    });
  };
  // Phases stay in order (files before metadata, §5.2 step 7); within one, up to `concurrency`
  // requests run at once. flat-manager's clients send one at a time (concurrency 1).
  for (const [phase, batches] of groups) {
    log(
      phase === "files"
        ? "Uploading file objects"
        : phase === "metadata"
        ? "Uploading metadata objects"
        : "Uploading deltas",
    );
    report(phase);
    let next = 0;
    const sent = new Map<number, number>();
    // A retried request sends its bytes again: each batch counts its most sent, so progress
    // never falls back.
    const credit = (i: number, bytes: number) => {
      const before = sent.get(i) ?? 0;
      if (bytes <= before) return;
      bytesDone += bytes - before;
      sent.set(i, bytes);
    };
    const lane = async () => {
      while (next < batches.length) {
        const i = next++;
        const batch = batches[i]!;
        const size = batch.reduce((n, f) => n + f.size, 0);
        log(`Uploading ${batch.length} files (${size} bytes)`);
        await client.upload(buildUrl, batch, (bytes) => {
          credit(i, bytes);
          report(phase);
        });
        credit(i, size);
        objectsDone += batch.length;
        report(phase);
      }
    };
    await Promise.all(
      Array.from(
        { length: Math.max(1, Math.min(concurrency, batches.length)) },
        lane,
      ),
    );
  }
  report("done");
}
