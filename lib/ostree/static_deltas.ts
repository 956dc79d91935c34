/**
 * @module Static delta names and where they live (specs/ostree-repos.md §6): ostree's modified
 * base64 of checksums, `deltas/XX/<rest>` directories, and the list of a repository's deltas
 * as `ostree static-delta list` gives it, read from the directory rather than by a subprocess.
 */
import { join } from "node:path";
import { hex } from "./object_graph.ts";

/** ostree's modified base64 of a checksum: `/` → `_`, no padding, 43 characters (§5.2 step 8). */
export function deltaNameEncode(checksumHex: string): string {
  const bytes = checksumHex.match(/../g)!.map((h) => parseInt(h, 16));
  return btoa(String.fromCharCode(...bytes)).replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** The inverse of {@link deltaNameEncode}; null if `name` is not a modified-base64 checksum. */
export function deltaNameDecode(name: string): string | null {
  if (!/^[A-Za-z0-9+_]{43}$/.test(name)) return null;
  const bin = atob(name.replaceAll("_", "/") + "=");
  return hex(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/** Where a delta (`to` or `from-to`, hex) lives below `deltas/`. */
export function deltaDir(name: string): string {
  const enc = name.split("-").map(deltaNameEncode).join("-");
  return join(enc.slice(0, 2), enc.slice(2));
}

/**
 * Existing deltas, hex names (`to` or `from-to`): what `ostree static-delta list` lists, the
 * directories below `deltas/` that hold a superblock.
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
      const hexes = parts.map(deltaNameDecode);
      if (hexes.some((h) => h === null)) continue;
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
