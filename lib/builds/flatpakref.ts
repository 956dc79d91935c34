/**
 * @module `.flatpakref` files (specs/flat-manager-api.md §6.6, specs/ostree-repos.md §5.2): the
 * build variant, written into a build repository by the commit job, and the main variant,
 * written into `<repo>/appstream/` by the publish job.
 */
import { toBase64 } from "../base64.ts";
import { KeyFile } from "../ostree/keyfile.ts";

/** What goes into one `.flatpakref`. */
export interface FlatpakrefInput {
  id: string;
  branch: string;
  title: string;
  isRuntime: boolean;
  url: string;
  /** Binary keyring; becomes `GPGKey`. */
  gpgKey?: Uint8Array | undefined;
  collectionId?: string | null | undefined;
  suggestRemoteName?: string | null | undefined;
  runtimeRepo?: string | null | undefined;
}

/** The file's text, keys in flat-manager's order. */
export function flatpakref(r: FlatpakrefInput): string {
  const kf = KeyFile.parse("[Flatpak Ref]\n");
  const set = (k: string, v: string | null | undefined) =>
    kf.set("Flatpak Ref", k, v ?? undefined);
  set("Name", r.id);
  set("Branch", r.branch);
  set("Title", r.title);
  set("IsRuntime", r.isRuntime ? "true" : "false");
  set("Url", r.url);
  // A collection ID needs a GPGKey, as in .flatpakrepo files (ostree-repos.md §5.1).
  if (r.gpgKey) set("DeploySideloadCollectionID", r.collectionId);
  set("SuggestRemoteName", r.suggestRemoteName);
  if (r.gpgKey) {
    set(
      "GPGKey",
      toBase64(r.gpgKey),
    );
  }
  set("RuntimeRepo", r.runtimeRepo);
  return kf.toString();
}

/** `app/ID/ARCH/BRANCH` → its parts, or undefined for other refs. */
export function parseFlatpakRef(
  ref: string,
):
  | { kind: "app" | "runtime"; id: string; arch: string; branch: string }
  | undefined {
  const p = ref.split("/");
  if (p.length !== 4 || (p[0] !== "app" && p[0] !== "runtime")) {
    return undefined;
  }
  return { kind: p[0], id: p[1]!, arch: p[2]!, branch: p[3]! };
}

/** §6.1: runtimes whose id ends in these get no `.flatpakref`. */
export function wantsFlatpakref(ref: string): boolean {
  const r = parseFlatpakRef(ref);
  if (!r) return false;
  return r.kind === "app" || !/\.(Debug|Locale|Sources|Docs)$/.test(r.id);
}
