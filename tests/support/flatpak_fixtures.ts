/**
 * @module Offline, unsigned flatpak test repositories for x86_64 and aarch64: a busybox runtime and
 * SDK plus an app built with flatpak-builder (after shared/specs/ostree-repos.md §7), exported
 * into an archive-z2 repo that Flatyard's own code then signs, publishes or serves. Builds are
 * slow, so {@link cachedFixtureRepo} builds each distinct fixture once and hands out copies.
 */
import { join } from "node:path";
import { exec } from "./fixture_exec.ts";
import {
  archSupport,
  FIXTURE_ARCHES,
  type FixtureArch,
  staticBusybox,
} from "./fixture_arch.ts";
import { PLATFORM_ID, SDK_ID, writeHelloApp } from "./hello_app.ts";

export { aarch64Support, type FixtureArch, hostArch } from "./fixture_arch.ts";
export { helloOutput, PLATFORM_ID, SDK_ID } from "./hello_app.ts";

/** What to build. */
export interface FixtureOptions {
  /** Architectures to build runtime, SDK and app for (at least one). */
  arches: FixtureArch[];
  /** Directory to build in (the repo lands in `<dir>/repo`); default: a new temporary one. */
  dir?: string;
  /** The app's id; default `org.example.Hello`. */
  appId?: string;
  /** The app's branch; default `master`. */
  branch?: string;
  /** The branch of the runtime and SDK, and the app's `runtime-version`; default `1`. */
  runtimeVersion?: string;
  /** Fixtures are never signed: Flatyard's code under test does the signing. */
  sign?: false;
  /**
   * Run `flatpak build-update-repo --no-update-appstream` (unsigned) at the end, so clients can
   * use the repo as is; default false, leaving a repo with no summary at all.
   */
  updateSummary?: boolean;
}

/** A built fixture repository. `await using` it to remove the directory it was made in. */
export interface FixtureRepo extends AsyncDisposable {
  /** Path of the archive-z2 repository. */
  repo: string;
  /** The directory holding `repo`. */
  dir: string;
  /** Every ref, sorted: `app/<appId>/<arch>/<branch>`, `runtime/<runtime id>/<arch>/<version>`. */
  refs: string[];
  /** Commit checksum of each ref. */
  commits: Record<string, string>;
  appId: string;
  branch: string;
  runtimeVersion: string;
  arches: FixtureArch[];
}

type Normalized = Required<Omit<FixtureOptions, "dir" | "sign">>;

/** The parts of a fixture that do not depend on where it lies; stored beside cached repos. */
type FixtureFacts = Omit<
  FixtureRepo,
  "repo" | "dir" | typeof Symbol.asyncDispose
>;

// flatpak's own rule for ids: at least three dot-separated elements of [A-Za-z0-9_-].
const APP_ID = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*){2,}$/;
const BRANCH = /^[\w.-]+$/;

function normalize(opts: FixtureOptions): Normalized {
  const arches = FIXTURE_ARCHES.filter((a) => opts.arches.includes(a));
  if (arches.length === 0) {
    throw new Error("Cannot build a fixture for no architecture");
  }
  const n: Normalized = {
    arches,
    appId: opts.appId ?? "org.example.Hello",
    branch: opts.branch ?? "master",
    runtimeVersion: opts.runtimeVersion ?? "1",
    updateSummary: opts.updateSummary ?? false,
  };
  if (!APP_ID.test(n.appId)) throw new Error(`Invalid app id "${n.appId}"`);
  for (const b of [n.branch, n.runtimeVersion]) {
    if (!BRANCH.test(b)) throw new Error(`Invalid branch "${b}"`);
  }
  return n;
}

/** Where fixtures and downloaded busybox binaries are cached across test runs. */
export function fixtureCacheDir(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  return Deno.env.get("FLATYARD_FIXTURE_CACHE") ??
    (xdg ? join(xdg, "flatyard-fixtures") : "/tmp/flatyard-fixture-cache");
}

/**
 * Environment for a flatpak installation of its own under `dir`: tests and builds never see,
 * nor touch, the machine's user or system installations and remotes.
 */
export async function isolatedFlatpakEnv(
  dir: string,
): Promise<Record<string, string>> {
  const env = {
    FLATPAK_USER_DIR: join(dir, "user"),
    FLATPAK_SYSTEM_DIR: join(dir, "system"),
    FLATPAK_CONFIG_DIR: join(dir, "config"),
  };
  for (const d of Object.values(env)) await Deno.mkdir(d, { recursive: true });
  return env;
}

/** Builds a fixture repository from scratch (see {@link cachedFixtureRepo} for the fast path). */
export async function buildFixtureRepo(
  opts: FixtureOptions,
): Promise<FixtureRepo> {
  const n = normalize(opts);
  for (const arch of n.arches) {
    const support = await archSupport(arch);
    if (!support.ok) {
      throw new Error(`Cannot build the ${arch} fixture: ${support.reason}`);
    }
  }
  const created = opts.dir === undefined;
  const dir = opts.dir ??
    await Deno.makeTempDir({ prefix: "flatyard-fixture-" });
  const repo = join(dir, "repo");
  const work = join(dir, "work");
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.mkdir(repo); // fails if a repo is already there: never add to one by accident
    await Deno.mkdir(work);
    await exec("ostree", ["init", "--mode=archive-z2", `--repo=${repo}`]);
    await exportRuntimes(repo, work, n);
    await buildApp(repo, work, n);
    if (n.updateSummary) {
      await exec("flatpak", [
        "build-update-repo",
        "--no-update-appstream",
        repo,
      ]);
    }
    return fixtureRepo(repo, dir, await describe(repo, n), created);
  } catch (e) {
    if (created) await Deno.remove(dir, { recursive: true });
    throw e;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/**
 * Runtime and SDK: busybox with a symlink per applet. Both use the same tree; what makes one the
 * SDK is only its name, and flatpak-builder needs a `sh`, `mkdir` and `cp` in it.
 */
async function exportRuntimes(repo: string, work: string, n: Normalized) {
  for (const arch of n.arches) {
    const busybox = await staticBusybox(arch, fixtureCacheDir());
    // Executing a foreign busybox goes through qemu-user, checked above.
    const applets = (await exec(busybox, ["--list"])).split("\n")
      // Skip "busybox" itself, which would overwrite the binary with a self-link.
      .filter((a) => a !== "" && a !== "busybox");
    for (const id of [PLATFORM_ID, SDK_ID]) {
      const tree = join(work, `${id}-${arch}`);
      const bin = join(tree, "files", "bin");
      await Deno.mkdir(bin, { recursive: true });
      await Deno.copyFile(busybox, join(bin, "busybox"));
      await Deno.chmod(join(bin, "busybox"), 0o755);
      for (const a of applets) await Deno.symlink("busybox", join(bin, a));
      const v = n.runtimeVersion;
      await Deno.writeTextFile(
        join(tree, "metadata"),
        `[Runtime]\nname=${id}\nruntime=${PLATFORM_ID}/${arch}/${v}\nsdk=${SDK_ID}/${arch}/${v}\n`,
      );
      // --files=files: runtimes are exported from usr/ by default.
      await exec("flatpak", [
        "build-export",
        "--runtime",
        `--arch=${arch}`,
        "--files=files",
        "--no-update-summary",
        repo,
        tree,
        v,
      ]);
    }
  }
}

/**
 * flatpak-builder needs the SDK installed. Installing from a file:// remote needs a summary, which
 * the fixture repo must not get unasked; so the runtimes are mirrored (same commits) into a
 * throwaway staging repo that gets the summary, and installed from there.
 */
async function buildApp(repo: string, work: string, n: Normalized) {
  const stage = join(work, "stage");
  const runtimeRefs = n.arches.flatMap((arch) =>
    [PLATFORM_ID, SDK_ID].map((id) =>
      `runtime/${id}/${arch}/${n.runtimeVersion}`
    )
  );
  await exec("ostree", ["init", "--mode=archive-z2", `--repo=${stage}`]);
  await exec("ostree", ["pull-local", `--repo=${stage}`, repo, ...runtimeRefs]);
  await exec("flatpak", ["build-update-repo", "--no-update-appstream", stage]);
  const env = await isolatedFlatpakEnv(join(work, "flatpak"));
  await exec("flatpak", [
    "--user",
    "remote-add",
    "--no-gpg-verify",
    "stage",
    `file://${stage}`,
  ], { env });
  await exec("flatpak", [
    "--user",
    "install",
    "-y",
    "--noninteractive",
    "stage",
    ...runtimeRefs,
  ], { env });

  const src = join(work, "app");
  const manifest = await writeHelloApp(src, n);
  for (const arch of n.arches) {
    const build = join(work, `build-${arch}`);
    // --disable-download: guaranteed offline; --disable-rofiles-fuse: no FUSE in containers;
    // a state dir per build keeps flatpak-builder's cache out of the source tree and of $HOME.
    await exec("flatpak-builder", [
      `--arch=${arch}`,
      "--force-clean",
      "--disable-download",
      "--disable-rofiles-fuse",
      `--state-dir=${join(work, `state-${arch}`)}`,
      build,
      manifest,
    ], { env, cwd: src });
    await exec("flatpak", [
      "build-export",
      `--arch=${arch}`,
      "--no-update-summary",
      repo,
      build,
      n.branch,
    ], { env });
  }
}

async function describe(repo: string, n: Normalized): Promise<FixtureFacts> {
  const refs = (await exec("ostree", ["refs", `--repo=${repo}`])).split("\n")
    .filter((r) => r !== "").sort();
  const commits: Record<string, string> = {};
  for (const ref of refs) {
    commits[ref] = (await exec("ostree", ["rev-parse", `--repo=${repo}`, ref]))
      .trim();
  }
  return {
    refs,
    commits,
    appId: n.appId,
    branch: n.branch,
    runtimeVersion: n.runtimeVersion,
    arches: n.arches,
  };
}

function fixtureRepo(
  repo: string,
  dir: string,
  facts: FixtureFacts,
  removeDir: boolean,
): FixtureRepo {
  return {
    ...facts,
    repo,
    dir,
    // Only a directory this module made is removed: a caller's `dir` stays theirs.
    [Symbol.asyncDispose]: () =>
      removeDir ? Deno.remove(dir, { recursive: true }) : Promise.resolve(),
  };
}

/** Sources whose change invalidates cached fixtures. */
const BUILDER_SOURCES = [
  "./flatpak_fixtures.ts",
  "./fixture_arch.ts",
  "./fixture_exec.ts",
  "./hello_app.ts",
  "./png.ts",
].map((p) => new URL(p, import.meta.url));

async function cacheKey(n: Normalized): Promise<string> {
  const parts = [JSON.stringify(n)];
  for (const url of BUILDER_SOURCES) parts.push(await Deno.readTextFile(url));
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(parts.join("\0")),
  );
  return Array.from(new Uint8Array(digest).slice(0, 12))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

const FACTS_FILE = "fixture.json";

/**
 * Like {@link buildFixtureRepo}, but each distinct fixture (options and builder source) is built
 * once into {@link fixtureCacheDir} and every call gets its own copy, free to modify.
 * Safe across concurrent test processes: builders serialize on a lock file per fixture, and a
 * fixture becomes visible only by the rename of its complete build directory.
 */
export async function cachedFixtureRepo(
  opts: FixtureOptions,
): Promise<FixtureRepo> {
  const n = normalize(opts);
  const cache = fixtureCacheDir();
  const entry = join(cache, `repo-${await cacheKey(n)}`);
  if (!await exists(entry)) await buildCacheEntry(cache, entry, n);
  const facts: FixtureFacts = JSON.parse(
    await Deno.readTextFile(join(entry, FACTS_FILE)),
  );
  const created = opts.dir === undefined;
  const dir = opts.dir ??
    await Deno.makeTempDir({ prefix: "flatyard-fixture-" });
  await Deno.mkdir(dir, { recursive: true });
  const repo = join(dir, "repo");
  // A real copy, not hardlinks: tests may corrupt objects in theirs on purpose.
  await exec("cp", ["-a", "--reflink=auto", join(entry, "repo"), repo]);
  return fixtureRepo(repo, dir, facts, created);
}

async function buildCacheEntry(cache: string, entry: string, n: Normalized) {
  await Deno.mkdir(cache, { recursive: true });
  // flock(2): released by the kernel if this process dies, so a crash never wedges later runs.
  using lock = await Deno.open(`${entry}.lock`, {
    create: true,
    write: true,
  });
  await lock.lock(true);
  if (await exists(entry)) return; // another process built it while this one waited
  const tmp = await Deno.makeTempDir({ dir: cache, prefix: ".building-" });
  try {
    const built = await buildFixtureRepo({ ...n, dir: tmp });
    const { repo: _repo, dir: _dir, ...facts } = built;
    await Deno.writeTextFile(join(tmp, FACTS_FILE), JSON.stringify(facts));
    await Deno.rename(tmp, entry);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
