/**
 * @module How a builder installs a build's runtime and SDK from the build's own repository
 * (lib/cli/builder.ts): through a runner-wide flatpak remote per repository, added from the
 * repository's `.flatpakrepo`, into the runner's flatpak installation that its tasks share.
 * The task's token, which a private repository asks for, is in the remote's URL only while
 * that task installs, under an exclusive lock: no credential stays in the runner's flatpak
 * config, and no task ever downloads with another task's token (revoked when that task ends).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fromBase64 } from "../base64.ts";
import { CommandError, run } from "../ostree/cli.ts";
import { KeyFile } from "../ostree/keyfile.ts";

/**
 * The runner-wide flatpak remote of a `.flatpakrepo` URL: one per URL, so that builds for
 * different repositories never install their dependencies from each other's remote.
 */
export function depsRemoteName(url: string): string {
  return `flatyard-deps-${
    createHash("sha256").update(url).digest("hex").slice(0, 16)
  }`;
}

/**
 * `url` with `token` as its basic-auth password, which flatpak sends with every request of the
 * remote: a private repository's download token (specs/flat-manager-api.md §2.3).
 */
export function urlWithToken(url: string, token: string): string {
  const u = new URL(url);
  u.username = "flatyard";
  u.password = token;
  return u.href;
}

/** What {@link installDependencies} needs. */
export interface DependencyInstall {
  /** The build repository's `.flatpakrepo` URL. */
  depsFrom: string;
  /** The task's token: it downloads from the build's repository. */
  token: string;
  /** The task's scratch directory. */
  work: string;
  /** The runner's flatpak user installation. */
  userDir: string;
  /** flatpak-builder's arguments for the build, less the dependency options. */
  builderArgs: string[];
  cwd: string;
  log: (line: string) => Promise<void> | void;
}

/**
 * Adds (or refreshes) the repository's remote and installs the manifest's dependencies from it
 * with `flatpak-builder --install-deps-only`, all under the runner's remotes lock. Throws with
 * the token masked; a failed install is a {@link CommandError} of flatpak-builder.
 */
export async function installDependencies(o: DependencyInstall): Promise<void> {
  const mask = (s: string) => s.replaceAll(o.token, "<token>");
  const log = (line: string) => o.log(mask(line));
  const res = await fetch(o.depsFrom, {
    headers: { Authorization: `Bearer ${o.token}` },
  });
  if (!res.ok) {
    throw new Error(
      `Fetching ${o.depsFrom} answered ${res.status}: ${await res.text()}`,
    );
  }
  const kf = KeyFile.parse(await res.text());
  const url = kf.get("Flatpak Repo", "Url");
  if (!url) throw new Error(`${o.depsFrom} has no Url`);
  const remote = depsRemoteName(o.depsFrom);
  const withToken = urlWithToken(url, o.token);
  const repoFile = join(o.work, "deps.flatpakrepo");
  kf.set("Flatpak Repo", "Url", withToken);
  await Deno.writeTextFile(repoFile, kf.toString());
  // Every key the repository lists now, imported even into a remote added by an earlier task:
  // a remote added once would otherwise never learn of a rotated key.
  const gpgKey = kf.get("Flatpak Repo", "GPGKey");
  const keyFile = join(o.work, "deps.gpg");
  if (gpgKey) await Deno.writeFile(keyFile, fromBase64(gpgKey));
  const flatpak = (args: string[]) =>
    run("flatpak", ["--user", ...args], { log });

  await Deno.mkdir(o.userDir, { recursive: true });
  // flock(2), as the flatpak installation's other users on this runner (its other tasks) take.
  using lock = await Deno.open(join(o.userDir, ".flatyard-remotes.lock"), {
    create: true,
    write: true,
  });
  await lock.lock(true);
  try {
    await flatpak([
      "remote-add",
      "--if-not-exists",
      "--from",
      remote,
      repoFile,
    ]);
    if (gpgKey) {
      await flatpak(["remote-modify", `--gpg-import=${keyFile}`, remote]);
    }
    await flatpak(["remote-modify", `--url=${withToken}`, remote]);
    try {
      await run("flatpak-builder", [
        "--user",
        `--install-deps-from=${remote}`,
        "--install-deps-only",
        ...o.builderArgs,
      ], { log, cwd: o.cwd });
    } finally {
      await flatpak(["remote-modify", `--url=${url}`, remote]);
    }
  } catch (e) {
    // A command line that failed may carry the token (the remote's URL).
    if (e instanceof CommandError) {
      throw new CommandError(mask(e.command), e.code, mask(e.stderr));
    }
    throw e;
  } finally {
    await lock.unlock();
  }
}
