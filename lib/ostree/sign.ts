/**
 * @module Native OSTree signing (specs/ostree-repos.md §3.1): detached binary OpenPGP signatures
 * over the exact bytes of a `.commit` object (appended to its `.commitmeta`), of `summary`
 * (`summary.sig`) and of `summary.idx` (`summary.idx.sig` and `summaries/<sha256>.idx.sig`),
 * each wrapped as GVariant `{"ostree.gpgsigs": aay}`. Files are replaced atomically.
 */
import { join } from "node:path";
import type { Signer } from "../pgp/keys.ts";
import {
  encodeDetachedMetadata,
  GPG_SIGS_KEY,
  withGpgSignature,
} from "./detached_metadata.ts";
import { Variant } from "./gvariant.ts";

/** `objects/XX/<rest>.<ext>` of a checksum. */
export function objectPath(
  repo: string,
  checksum: string,
  ext: string,
): string {
  if (!/^[0-9a-f]{64}$/.test(checksum)) {
    throw new Error(`Invalid object checksum "${checksum}"`);
  }
  return join(
    repo,
    "objects",
    checksum.slice(0, 2),
    `${checksum.slice(2)}.${ext}`,
  );
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeFile(tmp, bytes, { mode: 0o644 });
  await Deno.rename(tmp, path);
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Signs commit `checksum`: appends the signature to its `.commitmeta`, keeping signatures
 * already there (clients accept a commit when at least one signature verifies). Sign before
 * generating static deltas: a delta embeds the commitmeta of its time (§3.1).
 */
export async function signCommit(
  repo: string,
  checksum: string,
  signer: Signer,
): Promise<void> {
  const commit = await Deno.readFile(objectPath(repo, checksum, "commit"));
  const signature = await signer.sign(commit);
  const metaPath = objectPath(repo, checksum, "commitmeta");
  await writeAtomic(
    metaPath,
    withGpgSignature(await readIfExists(metaPath), signature),
  );
}

function signatureFile(signature: Uint8Array): Uint8Array {
  return encodeDetachedMetadata(
    new Map([[GPG_SIGS_KEY, new Variant("aay", [signature])]]),
  );
}

/**
 * Signs `summary` and, when present, `summary.idx`. The signature files hold this signature
 * only: they are regenerated with the summary, by the repository's current key.
 */
export async function signSummaries(
  repo: string,
  signer: Signer,
): Promise<{ idxDigest?: string }> {
  const summary = await Deno.readFile(join(repo, "summary"));
  await writeAtomic(
    join(repo, "summary.sig"),
    signatureFile(await signer.sign(summary)),
  );
  const idx = await readIfExists(join(repo, "summary.idx"));
  if (!idx) return {};
  const sig = signatureFile(await signer.sign(idx));
  const digest = Array.from(
    new Uint8Array(
      await crypto.subtle.digest("SHA-256", idx as Uint8Array<ArrayBuffer>),
    ),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  await Deno.mkdir(join(repo, "summaries"), { recursive: true });
  // Clients look for the digest-named file first; the plain name is for flatpak 1.9.1-1.9.2.
  await writeAtomic(join(repo, "summaries", `${digest}.idx.sig`), sig);
  await writeAtomic(join(repo, "summary.idx.sig"), sig);
  return { idxDigest: digest };
}
