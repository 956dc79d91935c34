/**
 * @module `artifact.import`: imports a complete flatpak bundle artifact into its build's upload
 * repository with `flatpak build-import-bundle`, then registers the ref it carries as a build ref,
 * as `POST /api/v1/build/{id}/build_ref` would, so that the build commits and publishes like one
 * uploaded object by object.
 */
import { z } from "zod";
import type { Db } from "../lib/db/db.ts";
import { artifactStore } from "../lib/artifacts/artifact_store.ts";
import { artifactPaths } from "../lib/artifacts/chunk_upload.ts";
import { buildPaths } from "../lib/builds/build_disk.ts";
import { buildStore, RepoState } from "../lib/builds/build_store.ts";
import { readRef } from "../lib/builds/repo_refs.ts";
import { CommandError, run } from "../lib/ostree/cli.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";

export const ARTIFACT_IMPORT_KIND = "artifact.import";

/** The job's payload. */
export const ArtifactImportInput = z.object({
  build: z.number().int(),
  artifact: z.number().int(),
});
export type ArtifactImportInput = z.infer<typeof ArtifactImportInput>;

/** What the import needs. */
export interface ArtifactImportDeps {
  db: Db;
  dataDir: string;
}

/** Imports artifact `input.artifact` of build `input.build`; returns the ref and its commit. */
export async function runArtifactImport(
  deps: ArtifactImportDeps,
  input: ArtifactImportInput,
  { log, signal }: Pick<JobContext, "log" | "signal">,
): Promise<{ ref: string; commit: string }> {
  const artifact = await artifactStore.get(
    deps.db,
    input.build,
    input.artifact,
  );
  if (!artifact) {
    throw new PermanentJobError(
      `Cannot find artifact "${input.artifact}" of build "${input.build}"`,
    );
  }
  if (
    artifact.status !== "complete" || artifact.ref === null ||
    artifact.commit === null
  ) {
    throw new PermanentJobError(
      `Cannot import artifact "${artifact.name}": it is ${artifact.status}`,
    );
  }
  const { ref, commit } = artifact;
  const build = await buildStore.get(deps.db, input.build);
  if (build?.repoState !== RepoState.Uploading) {
    throw new PermanentJobError(
      `Cannot import into build "${input.build}": it is no longer uploading`,
    );
  }
  const upload = buildPaths(deps.dataDir, input.build).upload;
  const bundle = artifactPaths(deps.dataDir, input.build, artifact.id).bundle;
  await log(`Importing ${artifact.name} (${ref}, commit ${commit})`);
  try {
    // LC_ALL=C: the output is read by people in the job log; keep it one language.
    await run("flatpak", [
      "build-import-bundle",
      "--no-update-summary",
      upload,
      bundle,
    ], { signal, log, env: { LC_ALL: "C" } });
  } catch (err) {
    // A bundle flatpak refuses will be refused again: no retry.
    if (err instanceof CommandError) throw new PermanentJobError(err.message);
    throw err;
  }
  const imported = await readRef(upload, ref);
  if (imported !== commit) {
    throw new PermanentJobError(
      `Ref ${ref} is ${imported ?? "missing"} after the import, not ${commit}`,
    );
  }
  // The row only while the build still takes refs: a commit may have started meanwhile.
  await deps.db.transaction(async (tx) => {
    const build = await buildStore.get(tx, input.build, { forUpdate: true });
    if (build?.repoState !== RepoState.Uploading) {
      throw new PermanentJobError(
        `Cannot register ${ref}: build "${input.build}" is no longer uploading`,
      );
    }
    await buildStore.upsertRef(tx, input.build, ref, commit, null);
  });
  await log(`Registered build ref ${ref} (${commit})`);
  return { ref, commit };
}
