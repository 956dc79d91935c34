/**
 * @module Reading what a repository publishes, natively (ARCHITECTURE.md §5): its `summary`
 * (the refs and commits clients see, specs/ostree-repos.md §4) and the commit objects those refs
 * point at (subject, timestamp, flatpak's size and end-of-life metadata).
 */
import { join } from "node:path";
import { bswap64, decode, type Value, Variant } from "../ostree/gvariant.ts";

/** One ref of a summary. */
export interface SummaryRef {
  commit: string;
  /** flatpak's `xa.cache` sizes, when the summary has them. */
  installedSize: number | null;
  downloadSize: number | null;
}

const hex = (b: Value): string =>
  b instanceof Uint8Array
    ? Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")
    : "";

const asMap = (v: Value | undefined): Map<Value, Value> =>
  v instanceof Map ? v : new Map();

/** A `t` stored big-endian, as ostree and flatpak store timestamps and sizes. */
const beNumber = (v: Value | undefined): number | null =>
  typeof v === "bigint" ? Number(bswap64(v)) : null;

/**
 * The refs of a summary file's bytes: `(a(s(taya{sv}))a{sv})`, with flatpak's `xa.cache`
 * (`a{s(tts)}`: installed size, download size, metadata; sizes big-endian).
 */
export function parseSummary(bytes: Uint8Array): Map<string, SummaryRef> {
  const [refs, meta] = decode("(a(s(taya{sv}))a{sv})", bytes) as [
    Value[],
    Map<Value, Value>,
  ];
  const cache = meta.get("xa.cache");
  let sizes = new Map<Value, Value>();
  if (cache instanceof Variant) {
    const inner = cache.value instanceof Variant ? cache.value : cache;
    sizes = asMap(inner.value);
  }
  const out = new Map<string, SummaryRef>();
  for (const entry of refs) {
    const [name, [, checksum]] = entry as [string, [bigint, Uint8Array]];
    const s = sizes.get(name) as Value[] | undefined;
    out.set(name, {
      commit: hex(checksum),
      installedSize: beNumber(s?.[0]),
      downloadSize: beNumber(s?.[1]),
    });
  }
  return out;
}

/** What the index shows of a commit. */
export interface CommitInfo {
  subject: string;
  /** Seconds since the epoch. */
  timestamp: number;
  installedSize: number | null;
  downloadSize: number | null;
  endOfLife: string | null;
  endOfLifeRebase: string | null;
}

const COMMIT_TYPE = "(a{sv}aya(say)sstayay)";

/** A metadata size: flatpak writes `xa.installed-size` and `xa.download-size` big-endian. */
function metaSize(v: Value | undefined): number | null {
  if (!(v instanceof Variant) || v.type !== "t") return null;
  return beNumber(v.value);
}

function metaString(v: Value | undefined): string | null {
  return v instanceof Variant && v.type === "s" && typeof v.value === "string"
    ? v.value
    : null;
}

/** Reads commit `checksum` of the archive repository at `repo`. */
export async function readCommit(
  repo: string,
  checksum: string,
): Promise<CommitInfo> {
  if (!/^[0-9a-f]{64}$/.test(checksum)) {
    throw new Error(`Invalid commit checksum "${checksum}"`);
  }
  const bytes = await Deno.readFile(
    join(repo, "objects", checksum.slice(0, 2), `${checksum.slice(2)}.commit`),
  );
  const [meta, , , subject, , timestamp] = decode(COMMIT_TYPE, bytes) as [
    Map<Value, Value>,
    Uint8Array,
    Value[],
    string,
    string,
    bigint,
  ];
  return {
    subject,
    timestamp: Number(bswap64(timestamp)),
    installedSize: metaSize(meta.get("xa.installed-size")),
    downloadSize: metaSize(meta.get("xa.download-size")),
    endOfLife: metaString(meta.get("ostree.endoflife")),
    endOfLifeRebase: metaString(meta.get("ostree.endoflife-rebase")),
  };
}
