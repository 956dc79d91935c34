/**
 * @module `flatyard builder`: the builder entrypoint, run by the local runner as a subprocess and
 * by the Kubernetes runner as the Job's container command. It reads its task from the
 * environment (`FLATYARD_BUILD_SPEC`: a {@link BuilderSpec} as JSON; `FLATYARD_UPLOAD_TOKEN`,
 * which also downloads from the build's repository), fetches the sources, installs the runtime
 * and SDK from the build's repository (builder_deps.ts), runs flatpak-builder for the one
 * architecture, and uploads the result into the task's flat-manager build with the
 * same code as `flatyard push` (upload and refs only: the server commits and publishes once
 * every architecture is in). Exit status: 0 done,
 * {@link BUILD_FAILED_EXIT} when flatpak-builder failed (the build's own fault: never retried),
 * anything else for an infrastructure failure (retried).
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { z } from "zod";
import { push } from "../client/push.ts";
import { CommandError, run } from "../ostree/cli.ts";
import { BUILD_FAILED_EXIT, type BuilderSpec } from "../runners/runner.ts";
import { installDependencies } from "./builder_deps.ts";

const SpecSchema = z.object({
  taskId: z.number().int(),
  arch: z.string().regex(/^[a-z0-9_]+$/),
  manifest: z.record(z.string(), z.unknown()),
  manifestName: z.string().min(1).refine(
    (p) => !p.startsWith("/") && !p.split("/").includes(".."),
    "must be a relative path",
  ),
  source: z.discriminatedUnion("kind", [
    z.object({ kind: z.literal("git"), url: z.string(), commit: z.string() }),
    z.object({
      kind: z.literal("archive"),
      url: z.string(),
      sha256: z.string(),
    }),
  ]).nullable(),
  uploadBuildUrl: z.string().url(),
  branch: z.string().min(1),
  depsFrom: z.string().url().optional(),
});

class BuildFailed extends Error {}

/** Runs the builder; returns its exit status. Output lines go to `out`. */
export async function builderCommand(
  env: Record<string, string | undefined>,
  out: (line: string) => void,
): Promise<number> {
  const parsed = SpecSchema.safeParse(
    JSON.parse(env.FLATYARD_BUILD_SPEC ?? "null"),
  );
  if (!parsed.success) {
    out(`builder: invalid FLATYARD_BUILD_SPEC: ${parsed.error.message}`);
    return 2;
  }
  const spec = parsed.data as BuilderSpec;
  const token = env.FLATYARD_UPLOAD_TOKEN;
  if (!token) {
    out("builder: FLATYARD_UPLOAD_TOKEN is not set");
    return 2;
  }
  const work = env.FLATYARD_WORK_DIR ??
    await Deno.makeTempDir({ prefix: "flatyard-builder-" });
  const log = (line: string) => out(line);
  const step = (what: string) => out(`==> ${what}`);
  try {
    const src = join(work, "src");
    await Deno.mkdir(src, { recursive: true });
    if (spec.source?.kind === "git") {
      step(`Fetching ${spec.source.url} at ${spec.source.commit}`);
      await run("git", ["clone", "--quiet", spec.source.url, src], { log });
      await run("git", [
        "-C",
        src,
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "--quiet",
        "--detach",
        spec.source.commit,
      ], { log });
      await run("git", [
        "-C",
        src,
        "submodule",
        "update",
        "--init",
        "--recursive",
      ], { log });
    } else if (spec.source?.kind === "archive") {
      step("Fetching the source archive");
      const archive = join(work, "sources.archive");
      const res = await fetch(spec.source.url, {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (!res.ok || !res.body) {
        throw new Error(
          `Fetching ${spec.source.url} answered ${res.status}: ${await res
            .text()}`,
        );
      }
      const hash = createHash("sha256");
      using file = await Deno.open(archive, { write: true, create: true });
      for await (const chunk of res.body) {
        hash.update(chunk);
        for (let at = 0; at < chunk.length;) {
          at += await file.write(chunk.subarray(at));
        }
      }
      const sha256 = hash.digest("hex");
      if (sha256 !== spec.source.sha256) {
        throw new Error(
          `The source archive has sha256 ${sha256}, not ${spec.source.sha256}`,
        );
      }
      // GNU tar reads the compression itself and refuses absolute paths and `..` members.
      await run("tar", ["-xf", archive, "-C", src, "--no-same-owner"], {
        log,
      });
    }
    // The checked manifest, next to where the submitted one lives: relative source paths in it
    // resolve against its directory, as flatpak-builder does.
    const manifestPath = join(
      src,
      dirname(spec.manifestName),
      ".flatyard-manifest.json",
    );
    await Deno.mkdir(dirname(manifestPath), { recursive: true });
    await Deno.writeTextFile(manifestPath, JSON.stringify(spec.manifest));
    const builderArgs = [
      `--arch=${spec.arch}`,
      `--default-branch=${spec.branch}`,
      "--force-clean",
      "--disable-rofiles-fuse",
      `--state-dir=${join(work, "state")}`,
      `--repo=${join(work, "repo")}`,
      join(work, "build"),
      manifestPath,
    ];
    if (spec.depsFrom) {
      step(`Installing the runtime and SDK from ${spec.depsFrom}`);
      try {
        await installDependencies({
          depsFrom: spec.depsFrom,
          token,
          work,
          // --user: the runner's FLATPAK_USER_DIR, shared by tasks, not the system installation.
          userDir: env.FLATPAK_USER_DIR ??
            join(env.HOME ?? work, ".local", "share", "flatpak"),
          builderArgs,
          cwd: dirname(manifestPath),
          log,
        });
      } catch (e) {
        // A dependency the manifest names but the repository lacks is the build's fault.
        if (
          e instanceof CommandError && e.command.startsWith("flatpak-builder")
        ) {
          throw new BuildFailed(`flatpak-builder failed (exit ${e.code})`);
        }
        throw e;
      }
    }
    step(`Building for ${spec.arch}`);
    try {
      await run("flatpak-builder", builderArgs, {
        log,
        cwd: dirname(manifestPath),
      });
    } catch (e) {
      if (e instanceof CommandError) {
        throw new BuildFailed(`flatpak-builder failed (exit ${e.code})`);
      }
      throw e;
    }
    step(`Uploading to ${spec.uploadBuildUrl}`);
    let last = 0;
    await push({
      buildUrl: spec.uploadBuildUrl,
      token,
      repoPath: join(work, "repo"),
      log,
      uploadConcurrency: 2,
      onProgress: (p) => {
        const now = Date.now();
        if (now - last < 2000 && p.phase !== "done") return;
        last = now;
        out(
          `upload ${p.phase} ${p.objectsDone}/${p.objectsTotal} objects, ${
            (p.bytesDone / 1048576).toFixed(1)
          } MiB`,
        );
      },
    });
    step("Done");
    return 0;
  } catch (e) {
    out(`builder: ${(e as Error).message}`);
    return e instanceof BuildFailed ? BUILD_FAILED_EXIT : 1;
  } finally {
    if (env.FLATYARD_WORK_DIR === undefined) {
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  }
}
