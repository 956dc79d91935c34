/**
 * @module Static delta planning for update-repo (specs/flat-manager-api.md §6.4, specs/
 * ostree-repos.md §6): which deltas each ref wants under the repository's policy, generating
 * the missing ones with flatpak, and retiring the rest into `tmp/deltas/` where they stay
 * servable for an hour (clients mid-download keep working).
 */
import { join } from "node:path";
import { run, type RunOptions } from "../ostree/cli.ts";
import { commitParent } from "../ostree/object_graph.ts";
import { listRefs, readRef } from "./repo_refs.ts";
import type { DeltaPolicy } from "../repos/repo_store.ts";
import { parseFlatpakRef } from "./flatpakref.ts";

/** ostree's modified base64 of a hex checksum: standard alphabet, `/` → `_`, no padding. */
export function mbase64(hex: string): string {
  const bytes = hex.match(/../g)!.map((h) =>
    String.fromCharCode(parseInt(h, 16))
  ).join("");
  return btoa(bytes).replace(/=+$/, "").replaceAll("/", "_");
}

/** Where a delta (`to` or `from-to`, hex) lives below `deltas/`. */
export function deltaDir(name: string): string {
  const [a, b] = name.split("-");
  const enc = b === undefined ? mbase64(a!) : `${mbase64(a!)}-${mbase64(b)}`;
  return join(enc.slice(0, 2), enc.slice(2));
}

/** flat-manager's glob (§7.2): only `*` is special, and it matches at least one character. */
export function globMatch(glob: string, s: string): boolean {
  const re = new RegExp(
    "^" +
      glob.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(
        ".+",
      ) + "$",
  );
  return re.test(s);
}

/** The depth the policy gives a ref: the first matching rule, else 0 (appstream2: 1). */
export function depthFor(policy: DeltaPolicy, ref: string): number {
  if (ref.startsWith("appstream2/")) return 1;
  const r = parseFlatpakRef(ref);
  if (!r) return 0;
  const rule = policy.rules.find((x) =>
    globMatch(x.match, r.id) &&
    (!x.arches?.length || x.arches.some((a) => globMatch(a, r.arch)))
  );
  return rule?.depth ?? 0;
}

/** The deltas the policy wants: scratch → tip (if enabled) and up to `depth` ancestors → tip. */
export async function wantedDeltas(
  repo: string,
  policy: DeltaPolicy,
): Promise<Set<string>> {
  const wanted = new Set<string>();
  for (const ref of await listRefs(repo)) {
    const delta = ref.startsWith("app/") || ref.startsWith("runtime/") ||
      ref.startsWith("appstream2/");
    if (!delta) continue;
    const tip = await readRef(repo, ref);
    if (!tip) continue;
    if (policy.fromScratch || ref.startsWith("appstream2/")) wanted.add(tip);
    let from: string | undefined = tip;
    for (let d = depthFor(policy, ref); d > 0 && from; d--) {
      from = await commitParent(repo, from);
      if (from) wanted.add(`${from}-${tip}`);
    }
  }
  return wanted;
}

/** The hex checksum of ostree's modified base64 `s`, or undefined if it is not one. */
export function unmbase64(s: string): string | undefined {
  if (!/^[A-Za-z0-9+_]{43}$/.test(s)) return undefined;
  const bytes = atob(s.replaceAll("_", "/") + "=");
  return Array.from(bytes, (c) => c.charCodeAt(0).toString(16).padStart(2, "0"))
    .join("");
}

/**
 * Existing deltas, hex names: what `ostree static-delta list` lists (the directories below
 * `deltas/` that hold a superblock), read from the directory rather than by a subprocess.
 */
export async function existingDeltas(repo: string): Promise<Set<string>> {
  const names = new Set<string>();
  const root = join(repo, "deltas");
  let prefixes: Deno.DirEntry[];
  try {
    prefixes = await Array.fromAsync(Deno.readDir(root));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return names;
    throw err;
  }
  for (const p of prefixes) {
    if (!p.isDirectory || p.name.length !== 2) continue;
    for await (const d of Deno.readDir(join(root, p.name))) {
      const parts = (p.name + d.name).split("-");
      if (!d.isDirectory || parts.length > 2) continue;
      const hexes = parts.map(unmbase64);
      if (hexes.some((h) => h === undefined)) continue;
      try {
        await Deno.lstat(join(root, p.name, d.name, "superblock"));
      } catch {
        continue;
      }
      names.add(hexes.join("-"));
    }
  }
  return names;
}

/**
 * Makes the repository's deltas match the policy: generates missing ones (a failure is logged,
 * not fatal, as in flat-manager), retires unwanted ones, and deletes retired ones older than
 * an hour. Returns what it did.
 */
export async function updateDeltas(
  repo: string,
  policy: DeltaPolicy,
  opts: RunOptions & { log: (line: string) => Promise<void> },
): Promise<{ generated: string[]; retired: string[]; failed: string[] }> {
  const wanted = await wantedDeltas(repo, policy);
  const existing = await existingDeltas(repo);
  const generated: string[] = [];
  const failed: string[] = [];
  for (const name of wanted) {
    if (existing.has(name)) continue;
    const [a, b] = name.split("-");
    const args = b === undefined ? [`--generate-static-delta-to=${a}`] : [
      `--generate-static-delta-from=${a}`,
      `--generate-static-delta-to=${b}`,
    ];
    try {
      await run("flatpak", ["build-update-repo", ...args, repo], {
        ...opts,
        log: () => {},
      });
      generated.push(name);
      await opts.log(`Generated delta ${name}`);
    } catch (err) {
      failed.push(name);
      await opts.log(
        `Failed to generate ${name}: ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
    }
  }
  const retired: string[] = [];
  for (const name of existing) {
    if (wanted.has(name)) continue;
    const rel = deltaDir(name);
    const to = join(repo, "tmp", "deltas", rel);
    await Deno.mkdir(join(to, ".."), { recursive: true });
    await Deno.rename(join(repo, "deltas", rel), to);
    // The hour of grace counts from retirement.
    await Deno.utime(to, new Date(), new Date());
    retired.push(name);
    await opts.log(`Retired delta ${name}`);
  }
  await expireRetired(join(repo, "tmp", "deltas"), 3600_000);
  return { generated, retired, failed };
}

async function expireRetired(root: string, maxAgeMs: number): Promise<void> {
  let prefixes: Deno.DirEntry[];
  try {
    prefixes = await Array.fromAsync(Deno.readDir(root));
  } catch {
    return;
  }
  for (const p of prefixes) {
    for await (const d of Deno.readDir(join(root, p.name))) {
      const path = join(root, p.name, d.name);
      const st = await Deno.stat(path);
      if (st.mtime && Date.now() - st.mtime.getTime() > maxAgeMs) {
        await Deno.remove(path, { recursive: true });
      }
    }
  }
}
