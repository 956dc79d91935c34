/**
 * @module Reads a local archive-z2 OSTree repository natively, the way `flat-manager-client push`
 * does through libostree: refs, the metadata objects of commits, the file objects of their
 * dirtrees and the from-scratch static deltas to upload (specs/flat-manager-api.md §5.2).
 */
import { join } from "node:path";
import { objectPath } from "../ostree/object_graph.ts";
import { KeyFile } from "../ostree/keyfile.ts";
import { deltaNameEncode, existingDeltas } from "../ostree/static_deltas.ts";

export { deltaNameDecode, deltaNameEncode } from "../ostree/static_deltas.ts";
export {
  commitObjects,
  fileObjects,
  metadataObjects,
  objectPath,
} from "../ostree/object_graph.ts";

/** A file to upload: its flat-manager upload name, where it lies, and its size in bytes. */
export interface UploadFile {
  name: string;
  path: string;
  size: number;
}

const CHECKSUM = /^[0-9a-f]{64}$/;
const PUSHED_PREFIXES = ["app/", "runtime/", "screenshots/"];

/**
 * Checks that `repoPath` is an archive repository: content objects are read as `.filez` files,
 * which only archive mode has (§5.2 step 1).
 */
export async function assertArchiveRepo(repoPath: string): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(repoPath, "config"));
  } catch (e) {
    throw new Error(`Cannot open repo "${repoPath}": ${(e as Error).message}`);
  }
  const mode = KeyFile.parse(text).get("core", "mode") ?? "bare";
  if (mode !== "archive-z2" && mode !== "archive") {
    throw new Error(
      `Cannot push repo "${repoPath}": mode is "${mode}", not archive-z2`,
    );
  }
}

async function walkRefs(
  dir: string,
  prefix: string,
  out: Map<string, string>,
): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory) await walkRefs(path, `${prefix}${e.name}/`, out);
    else out.set(`${prefix}${e.name}`, await readRefFile(path));
  }
}

async function readRefFile(path: string): Promise<string> {
  const rev = (await Deno.readTextFile(path)).trim();
  if (!CHECKSUM.test(rev)) {
    throw new Error(`Cannot read ref file "${path}": not a checksum`);
  }
  return rev;
}

/** Every ref in `refs/heads`, sorted by name, with its commit checksum. */
export async function listRefs(repoPath: string): Promise<Map<string, string>> {
  const refs = new Map<string, string>();
  await walkRefs(join(repoPath, "refs", "heads"), "", refs);
  return refs;
}

/**
 * The refs to push and their commits (§5.2 step 2): the given names resolved like
 * `ostree_repo_resolve_rev` (`refs/heads/<ref>`, `remote:ref`, or a bare checksum), else every
 * local ref under `app/`, `runtime/` or `screenshots/`.
 */
export async function resolveRefs(
  repoPath: string,
  refs?: readonly string[],
): Promise<Map<string, string>> {
  if (refs === undefined || refs.length === 0) {
    const all = await listRefs(repoPath);
    return new Map(
      [...all].filter(([r]) => PUSHED_PREFIXES.some((p) => r.startsWith(p))),
    );
  }
  const out = new Map<string, string>();
  for (const ref of refs) {
    if (CHECKSUM.test(ref)) {
      out.set(ref, ref);
      continue;
    }
    const colon = ref.indexOf(":");
    const path = colon > 0
      ? join(
        repoPath,
        "refs",
        "remotes",
        ref.slice(0, colon),
        ref.slice(colon + 1),
      )
      : join(repoPath, "refs", "heads", ref);
    try {
      out.set(ref, await readRefFile(path));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(`Cannot resolve ref "${ref}" in repo "${repoPath}"`);
    }
  }
  return out;
}

/**
 * Each object's {@link UploadFile}, with its size from the file system. Synchronous stats: a
 * push asks for thousands, each a few microseconds, where an async one is a thread-pool round
 * trip; nothing else runs in the CLI meanwhile.
 */
export function objectFiles(
  repoPath: string,
  names: readonly string[],
): UploadFile[] {
  const out: UploadFile[] = [];
  for (const name of names) {
    const path = objectPath(repoPath, name);
    try {
      out.push({ name, path, size: Deno.statSync(path).size });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new Error(`Cannot find object "${name}" in repo "${repoPath}"`);
    }
  }
  return out;
}

/** Python's `fnmatch.fnmatch` on POSIX: `*`, `?`, `[seq]`, `[!seq]`, case-sensitive. */
export function fnmatch(name: string, glob: string): boolean {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[" && glob.indexOf("]", i + 2) > 0) {
      const end = glob.indexOf("]", i + 2);
      let set = glob.slice(i + 1, end).replaceAll("\\", "\\\\");
      if (set.startsWith("!")) set = "^" + set.slice(1);
      else if (set.startsWith("^")) set = "\\" + set;
      re += `[${set}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s").test(name);
}

/**
 * The commits (hex) that have a from-scratch static delta (`deltas/XX/<rest>/` with no `-`),
 * as libostree lists them for the Python client: only those with a superblock.
 */
export async function scratchDeltaCommits(repoPath: string): Promise<string[]> {
  return [...await existingDeltas(repoPath)].filter((n) => !n.includes("-"))
    .sort();
}

// A delta part's upload name must be `<name>.superblock.delta` or `<name>.<digits>.delta`
// (§5.3 filename rules); any other file in the directory would fail the whole request.
const DELTA_PART = /^(superblock|\d+)$/;

/**
 * The delta part files to upload (§5.2 step 8): for each pushed `app/` or `runtime/` ref of
 * 4 parts whose id matches no `ignoreDelta` glob and whose commit has a from-scratch delta,
 * `superblock` then the numbered parts, named `<deltaname>.<part>.delta`.
 */
export async function deltaFiles(
  repoPath: string,
  refs: ReadonlyMap<string, string>,
  ignoreDelta: readonly string[] = [],
  log?: (line: string) => void,
): Promise<UploadFile[]> {
  const scratch = new Set(await scratchDeltaCommits(repoPath));
  const out: UploadFile[] = [];
  for (const [ref, commit] of refs) {
    const parts = ref.split("/");
    if (parts.length !== 4 || (parts[0] !== "app" && parts[0] !== "runtime")) {
      continue;
    }
    if (
      ignoreDelta.some((g) => fnmatch(parts[1]!, g)) || !scratch.has(commit)
    ) continue;
    log?.(` ${ref}: ${commit}`);
    const name = deltaNameEncode(commit);
    const dir = join(repoPath, "deltas", name.slice(0, 2), name.slice(2));
    const files: { part: string; path: string; size: number }[] = [];
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !DELTA_PART.test(e.name)) continue;
      const path = join(dir, e.name);
      files.push({ part: e.name, path, size: (await Deno.stat(path)).size });
    }
    const rank = (p: string) => p === "superblock" ? -1 : Number(p);
    files.sort((a, b) => rank(a.part) - rank(b.part));
    for (const f of files) {
      out.push({ name: `${name}.${f.part}.delta`, path: f.path, size: f.size });
    }
  }
  return out;
}
