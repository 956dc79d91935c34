/**
 * @module Editing an OSTree repository's `config` keyfile (specs/ostree-repos.md §1.2): keys set
 * the way `ostree config set` does, in one atomic rewrite instead of one process per key: a
 * build's two repositories took seven of them, 10 ms each (bench/upload.ts).
 */
import { join } from "node:path";
import { KeyFile } from "./keyfile.ts";

/**
 * Rewrites `<repo>/config` with `edit` applied to it, atomically (a temporary file renamed over),
 * so a reader never sees half a config.
 */
export async function editRepoConfig(
  repo: string,
  edit: (kf: KeyFile) => void,
): Promise<void> {
  const path = join(repo, "config");
  const kf = KeyFile.parse(await Deno.readTextFile(path));
  edit(kf);
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, kf.toString(), { mode: 0o644 });
  await Deno.rename(tmp, path);
}

/**
 * Sets each `section.key` of `values` (`core.parent`, say: split at the last dot, as the keys
 * Flatyard sets have none of their own) in `<repo>/config`; the rest of the file stays.
 */
export async function setRepoConfig(
  repo: string,
  values: Record<string, string>,
): Promise<void> {
  const entries = Object.entries(values).map(([name, value]) => {
    const dot = name.lastIndexOf(".");
    if (dot <= 0 || dot === name.length - 1) {
      throw new Error(`Not a section.key config name: "${name}"`);
    }
    return [name.slice(0, dot), name.slice(dot + 1), value] as const;
  });
  await editRepoConfig(repo, (kf) => {
    for (const [group, key, value] of entries) kf.set(group, key, value);
  });
}
