/**
 * @module Artifact records (migration 0004): a large file uploaded into a build in chunks, with
 * the bytes stored so far, its checksum and status, and the writer lease that lets exactly one
 * request at a time append to its part file.
 */
import type { Queryable } from "../db/db.ts";

/** Where an artifact is in its life. */
export type ArtifactStatus = "uploading" | "complete" | "failed";

/** An artifact row. */
export interface Artifact {
  id: number;
  buildId: number;
  /** `bundle`: a flatpak bundle to import; `source`: a source archive for the builders. */
  kind: "bundle" | "source";
  name: string;
  size: number;
  sha256: string;
  received: number;
  status: ArtifactStatus;
  error: string | null;
  ref: string | null;
  commit: string | null;
  importJobId: number | null;
  uploader: string;
  createdAt: Date;
  completedAt: Date | null;
}

type Row = {
  id: number;
  build_id: number;
  kind: "bundle" | "source";
  name: string;
  size: number;
  sha256: string;
  received: number;
  status: ArtifactStatus;
  error: string | null;
  ref: string | null;
  commit: string | null;
  import_job_id: number | null;
  uploader: string;
  created_at: Date;
  completed_at: Date | null;
};

const toArtifact = (r: Row): Artifact => ({
  id: r.id,
  buildId: r.build_id,
  kind: r.kind,
  name: r.name,
  size: r.size,
  sha256: r.sha256,
  received: r.received,
  status: r.status,
  error: r.error,
  ref: r.ref,
  commit: r.commit,
  importJobId: r.import_job_id,
  uploader: r.uploader,
  createdAt: r.created_at,
  completedAt: r.completed_at,
});

const columns =
  "id, build_id, kind, name, size, sha256, received, status, error, ref, commit, import_job_id, uploader, created_at, completed_at";

/** Reads and writes artifacts. Every write that moves `received` is guarded by the lease. */
export const artifactStore = {
  async create(
    q: Queryable,
    a:
      & Pick<Artifact, "buildId" | "name" | "size" | "sha256" | "uploader">
      & { kind?: Artifact["kind"] },
  ): Promise<Artifact> {
    const [row] = await q.query<Row>(
      `INSERT INTO artifacts (build_id, kind, name, size, sha256, uploader)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${columns}`,
      [a.buildId, a.kind ?? "bundle", a.name, a.size, a.sha256, a.uploader],
    );
    return toArtifact(row!);
  },

  /** The artifact `id` of build `buildId` (another build's artifact is not found). */
  async get(
    q: Queryable,
    buildId: number,
    id: number,
  ): Promise<Artifact | undefined> {
    const [row] = await q.query<Row>(
      `SELECT ${columns} FROM artifacts WHERE build_id = $1 AND id = $2`,
      [buildId, id],
    );
    return row ? toArtifact(row) : undefined;
  },

  /**
   * Takes the writer lease for a chunk starting at `start`: only while uploading, only when
   * `start` is exactly the bytes stored, and only when no live lease is held by someone else.
   * Undefined when any of these fails (re-read the row to learn which).
   */
  async claimWriter(
    q: Queryable,
    id: number,
    start: number,
    writer: string,
    leaseMs: number,
  ): Promise<Artifact | undefined> {
    const [row] = await q.query<Row>(
      `UPDATE artifacts SET writer = $3,
         writer_until = now() + make_interval(secs => $4::double precision / 1000)
       WHERE id = $1 AND status = 'uploading' AND received = $2
         AND (writer IS NULL OR writer_until < now())
       RETURNING ${columns}`,
      [id, start, writer, leaseMs],
    );
    return row ? toArtifact(row) : undefined;
  },

  /** Whether a live lease is held on `id` (by anyone). */
  async writerBusy(q: Queryable, id: number): Promise<boolean> {
    const [row] = await q.query<{ busy: boolean }>(
      "SELECT (writer IS NOT NULL AND writer_until >= now()) AS busy FROM artifacts WHERE id = $1",
      [id],
    );
    return row?.busy ?? false;
  },

  /**
   * Records `received` (already fsynced) and renews the lease; `release` also gives it up.
   * False when the lease was lost: the caller must stop touching the part file.
   */
  async checkpoint(
    q: Queryable,
    id: number,
    writer: string,
    received: number,
    opts: { leaseMs: number; release?: boolean },
  ): Promise<boolean> {
    const rows = await q.query(
      `UPDATE artifacts SET received = $3,
         writer = CASE WHEN $5 THEN NULL ELSE writer END,
         writer_until = CASE WHEN $5 THEN NULL
           ELSE now() + make_interval(secs => $4::double precision / 1000) END
       WHERE id = $1 AND writer = $2 AND status = 'uploading' RETURNING id`,
      [id, writer, received, opts.leaseMs, opts.release ?? false],
    );
    return rows.length > 0;
  },

  /** Sets `received` back to what the part file really holds (it lost bytes: a crash). */
  async rewind(
    q: Queryable,
    id: number,
    writer: string,
    received: number,
  ): Promise<Artifact | undefined> {
    const [row] = await q.query<Row>(
      `UPDATE artifacts SET received = $3, writer = NULL, writer_until = NULL
       WHERE id = $1 AND writer = $2 AND status = 'uploading' RETURNING ${columns}`,
      [id, writer, received],
    );
    return row ? toArtifact(row) : undefined;
  },

  /** Marks the upload complete with what its bundle header says; undefined if the lease was lost. */
  async complete(
    q: Queryable,
    id: number,
    writer: string,
    bundle: { ref: string | null; commit: string | null },
  ): Promise<Artifact | undefined> {
    const [row] = await q.query<Row>(
      `UPDATE artifacts SET status = 'complete', received = size, ref = $3, commit = $4,
         completed_at = now(), writer = NULL, writer_until = NULL
       WHERE id = $1 AND writer = $2 AND status = 'uploading' RETURNING ${columns}`,
      [id, writer, bundle.ref, bundle.commit],
    );
    return row ? toArtifact(row) : undefined;
  },

  /** Records the import job queued for a complete artifact. */
  async setImportJob(q: Queryable, id: number, jobId: number): Promise<void> {
    await q.query("UPDATE artifacts SET import_job_id = $2 WHERE id = $1", [
      id,
      jobId,
    ]);
  },

  /** Marks the upload failed for good (its bytes are deleted); undefined if the lease was lost. */
  async fail(
    q: Queryable,
    id: number,
    writer: string,
    error: string,
  ): Promise<Artifact | undefined> {
    const [row] = await q.query<Row>(
      `UPDATE artifacts SET status = 'failed', received = 0, error = $3, completed_at = now(),
         writer = NULL, writer_until = NULL
       WHERE id = $1 AND writer = $2 AND status = 'uploading' RETURNING ${columns}`,
      [id, writer, error],
    );
    return row ? toArtifact(row) : undefined;
  },
};
