/**
 * @module A repository's appstream data (specs/ostree-repos.md §5.3): the trees of its
 * `appstream2/<arch>` (or `appstream/<arch>`) commits, checked out once per commit into a cache
 * directory (so a moved branch is a new directory, never a changed one), and the names and
 * summaries of its components.
 */
import { join } from "node:path";
import { ostree } from "../ostree/cli.ts";

/** The XML file of a checked-out tree, gzipped if the branch had it uncompressed. */
export const APPSTREAM_GZ = "appstream.xml.gz";

/** Checked-out appstream trees under `root`, one directory per repository and commit. */
export class AppstreamTrees {
  readonly #pending = new Map<string, Promise<string>>();
  constructor(readonly root: string) {}

  /**
   * The directory holding commit `commit` of the repository at `repoDir` (named `repo` in the
   * cache), checked out on first use: into a temporary sibling, then renamed, so a directory
   * that exists is complete. An `appstream2` tree's `appstream.xml` gets a gzipped copy.
   */
  tree(repo: string, repoDir: string, commit: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(commit)) {
      return Promise.reject(new Error(`Invalid commit "${commit}"`));
    }
    const dir = join(this.root, repo, commit);
    let p = this.#pending.get(dir);
    if (!p) {
      p = this.#checkout(repo, repoDir, commit, dir).finally(() =>
        this.#pending.delete(dir)
      );
      this.#pending.set(dir, p);
    }
    return p;
  }

  async #checkout(
    repo: string,
    repoDir: string,
    commit: string,
    dir: string,
  ): Promise<string> {
    if (await exists(dir)) return dir;
    const parent = join(this.root, repo);
    await Deno.mkdir(parent, { recursive: true });
    const tmp = join(parent, `.tmp-${crypto.randomUUID()}`);
    try {
      await ostree(repoDir, ["checkout", "-U", commit, tmp]);
      if (
        !await exists(join(tmp, APPSTREAM_GZ)) &&
        await exists(join(tmp, "appstream.xml"))
      ) {
        const src = await Deno.open(join(tmp, "appstream.xml"));
        await Deno.writeFile(
          join(tmp, APPSTREAM_GZ),
          src.readable.pipeThrough(new CompressionStream("gzip")),
        );
      }
      await Deno.rename(tmp, dir).catch(async (err) => {
        // Another process checked out the same commit first: theirs is as good.
        if (!await exists(dir)) throw err;
      });
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
    await this.#prune(parent, commit);
    return dir;
  }

  /**
   * Removes this repository's trees checked out over an hour ago (mostly older commits of moved
   * branches); a current one removed with them is checked out again on its next use.
   */
  async #prune(parent: string, keep: string): Promise<void> {
    const cutoff = Date.now() - 3600_000;
    for await (const e of Deno.readDir(parent)) {
      if (e.name === keep || e.name.startsWith(".")) continue;
      const path = join(parent, e.name);
      const info = await Deno.stat(path).catch(() => undefined);
      if (info?.mtime && info.mtime.getTime() < cutoff) {
        await Deno.remove(path, { recursive: true }).catch(() => {});
      }
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** What the index shows of a component. */
export interface ComponentText {
  name: string | null;
  summary: string | null;
}

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith("#x")) {
      return String.fromCodePoint(parseInt(e.slice(2), 16));
    }
    if (e.startsWith("#")) {
      return String.fromCodePoint(parseInt(e.slice(1), 10));
    }
    return ENTITIES[e] ?? m;
  });
}

/** The text of the first `<tag>` without `xml:lang` (the untranslated one), or null. */
function untranslated(xml: string, tag: string): string | null {
  const re = new RegExp(`<${tag}(\\s[^>]*)?>([^<]*)</${tag}>`, "g");
  for (const m of xml.matchAll(re)) {
    if (!m[1]?.includes("xml:lang")) return unescapeXml(m[2]!).trim();
  }
  return null;
}

/**
 * Names and summaries by flatpak id, from flatpak's generated appstream XML: its `<bundle>` names
 * the ref a component came from (the component `<id>` may carry a `.desktop` suffix). A small
 * scan, not an XML parser: the input is build-update-repo's own, regular output.
 */
export function appstreamTexts(xml: string): Map<string, ComponentText> {
  const out = new Map<string, ComponentText>();
  for (const m of xml.matchAll(/<component[\s>][\s\S]*?<\/component>/g)) {
    const c = m[0];
    const bundle = /<bundle[^>]*>\s*(?:app|runtime)\/([^/<\s]+)\//.exec(c)?.[1];
    const id = bundle ?? untranslated(c, "id");
    if (!id || out.has(id)) continue;
    out.set(id, {
      name: untranslated(c, "name"),
      summary: untranslated(c, "summary"),
    });
  }
  return out;
}
