/**
 * @module Static delta planning for update-repo (specs/flat-manager-api.md §6.4, specs/
 * ostree-repos.md §6): which deltas each ref wants under the repository's policy, generating
 * the missing ones with flatpak, and retiring the rest into `tmp/deltas/` where they stay
 * servable for an hour (clients mid-download keep working).
 */
import { join } from "node:path";
import { run, type RunOptions } from "../ostree/cli.ts";
import { commitParent } from "../ostree/object_graph.ts";
import { deltaDir, existingDeltas } from "../ostree/static_deltas.ts";
import { listRefs, readRef } from "./repo_refs.ts";
import type { DeltaPolicy } from "../repos/repo_store.ts";
import { parseFlatpakRef } from "./flatpakref.ts";

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
