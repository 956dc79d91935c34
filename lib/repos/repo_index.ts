/**
 * @module The JSON index of a repository: its apps and runtimes as clients see them (the refs of
 * the published `summary`), with appstream names, sizes, end-of-life and latest commits. Built
 * once per summary file and kept until the summary changes, so repeated requests are cheap.
 */
import { join } from "node:path";
import { parseFlatpakRef } from "../builds/flatpakref.ts";
import {
  APPSTREAM_GZ,
  appstreamTexts,
  type AppstreamTrees,
} from "./appstream.ts";
import { parseSummary, readCommit, type SummaryRef } from "./repo_summary.ts";

/** One ref of an app or runtime. */
export interface IndexRef {
  ref: string;
  arch: string;
  branch: string;
  installedSize: number | null;
  downloadSize: number | null;
  endOfLife: string | null;
  endOfLifeRebase: string | null;
  commit: { checksum: string; timestamp: string; subject: string };
}

/** One app or runtime, over all its arches and branches. */
export interface IndexEntry {
  id: string;
  kind: "app" | "runtime";
  name: string | null;
  summary: string | null;
  arches: string[];
  branches: string[];
  refs: IndexRef[];
}

/** The whole index. */
export interface RepoIndex {
  repo: string;
  /** When the summary was written; null before the first publish. */
  updatedAt: string | null;
  apps: IndexEntry[];
  runtimes: IndexEntry[];
}

/** The published refs of a repository, with the summary's identity for caching. */
export interface PublishedRefs {
  /** Changes whenever the summary file does. */
  key: string;
  mtime: Date | null;
  refs: Map<string, SummaryRef>;
}

/** Builds and caches indexes and summaries, per repository directory. */
export class RepoIndexer {
  readonly #summaries = new Map<string, PublishedRefs>();
  readonly #indexes = new Map<
    string,
    { key: string; index: Promise<RepoIndex> }
  >();

  constructor(private readonly trees: AppstreamTrees) {}

  /** The refs of `<repoDir>/summary` (none when there is no summary yet). */
  async published(repoDir: string): Promise<PublishedRefs> {
    const path = join(repoDir, "summary");
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        return { key: "none", mtime: null, refs: new Map() };
      }
      throw err;
    }
    // The summary is replaced by rename: a new inode, or at least a new mtime or size.
    const key = `${info.ino}:${info.mtime?.getTime()}:${info.size}`;
    const cached = this.#summaries.get(repoDir);
    if (cached?.key === key) return cached;
    const refs = parseSummary(await Deno.readFile(path));
    const value = { key, mtime: info.mtime, refs };
    this.#summaries.set(repoDir, value);
    return value;
  }

  /** The commit clients see for the appstream data of `arch`: `appstream2/`, else `appstream/`. */
  async appstreamCommit(
    repoDir: string,
    arch: string,
  ): Promise<string | undefined> {
    const { refs } = await this.published(repoDir);
    return (refs.get(`appstream2/${arch}`) ?? refs.get(`appstream/${arch}`))
      ?.commit;
  }

  /** The index of repository `repo` at `repoDir`. */
  async index(repo: string, repoDir: string): Promise<RepoIndex> {
    const published = await this.published(repoDir);
    const cacheKey = `${repoDir}\0${repo}`;
    const cached = this.#indexes.get(cacheKey);
    if (cached?.key === published.key) return cached.index;
    const index = this.#build(repo, repoDir, published);
    this.#indexes.set(cacheKey, { key: published.key, index });
    index.catch(() => this.#indexes.delete(cacheKey));
    return index;
  }

  async #build(
    repo: string,
    repoDir: string,
    published: PublishedRefs,
  ): Promise<RepoIndex> {
    const texts = new Map<
      string,
      { name: string | null; summary: string | null }
    >();
    const entries = new Map<string, IndexEntry>();
    for (const [ref, s] of published.refs) {
      const p = parseFlatpakRef(ref);
      if (!p) continue;
      const c = await readCommit(repoDir, s.commit);
      const key = `${p.kind}/${p.id}`;
      let e = entries.get(key);
      if (!e) {
        e = {
          id: p.id,
          kind: p.kind,
          name: null,
          summary: null,
          arches: [],
          branches: [],
          refs: [],
        };
        entries.set(key, e);
      }
      if (!e.arches.includes(p.arch)) e.arches.push(p.arch);
      if (!e.branches.includes(p.branch)) e.branches.push(p.branch);
      e.refs.push({
        ref,
        arch: p.arch,
        branch: p.branch,
        installedSize: c.installedSize ?? s.installedSize,
        downloadSize: c.downloadSize ?? s.downloadSize,
        endOfLife: c.endOfLife,
        endOfLifeRebase: c.endOfLifeRebase,
        commit: {
          checksum: s.commit,
          timestamp: new Date(c.timestamp * 1000).toISOString(),
          subject: c.subject,
        },
      });
    }
    // Appstream of every arch; the first arch that names an id wins.
    const arches = [...new Set([...entries.values()].flatMap((e) => e.arches))]
      .sort();
    for (const arch of arches) {
      const commit = await this.appstreamCommit(repoDir, arch);
      if (!commit) continue;
      const dir = await this.trees.tree(repo, repoDir, commit);
      const gz = await Deno.open(join(dir, APPSTREAM_GZ)).catch(() =>
        undefined
      );
      if (!gz) continue;
      const xml = await new Response(
        gz.readable.pipeThrough(new DecompressionStream("gzip")),
      ).text();
      for (const [id, t] of appstreamTexts(xml)) {
        if (!texts.has(id)) texts.set(id, t);
      }
    }
    const sorted = [...entries.values()].sort((a, b) =>
      a.id.localeCompare(b.id)
    );
    for (const e of sorted) {
      const t = texts.get(e.id);
      e.name = t?.name ?? null;
      e.summary = t?.summary ?? null;
      e.arches.sort();
      e.branches.sort();
      e.refs.sort((a, b) => a.ref.localeCompare(b.ref));
    }
    return {
      repo,
      updatedAt: published.mtime?.toISOString() ?? null,
      apps: sorted.filter((e) => e.kind === "app"),
      runtimes: sorted.filter((e) => e.kind === "runtime"),
    };
  }
}
