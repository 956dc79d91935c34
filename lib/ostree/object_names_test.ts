/**
 * The upload filename grammar of `specs/flat-manager-api.md` §5.3: what is accepted, where it is
 * stored, and that nothing else (in particular nothing that could leave the upload repository)
 * gets through.
 */
import assert from "node:assert/strict";
import { parseUploadName } from "./object_names.ts";

const HEX = "0123456789abcdef".repeat(4); // 64 lowercase hex digits
// ostree's modified base64 of af85a9… (specs/ostree-repos.md §6), and one using '+' and '_'.
const TO = "r4WpEemdaxuIBF6BExibsSRITKHrGXvpM9vmbZs33ao";
const FROM = "tcBHIIUynT2fFV7OoUwQy3D5IbMTnqtk04+EaPWN_cg";

Deno.test("object names map to objects/<2>/<62>.<ext>", () => {
  for (const ext of ["dirmeta", "dirtree", "filez", "commit"] as const) {
    assert.deepEqual(parseUploadName(`${HEX}.${ext}`), {
      kind: "object",
      checksum: HEX,
      ext,
      relPath: `objects/01/${HEX.slice(2)}.${ext}`,
    });
  }
});

Deno.test("delta part names map to deltas/<2>/<rest>/<part>", () => {
  const cases: [string, string, string][] = [
    [`${TO}.superblock.delta`, TO, "superblock"],
    [`${TO}.0.delta`, TO, "0"],
    [`${TO}.12.delta`, TO, "12"],
    [`${FROM}-${TO}.3.delta`, `${FROM}-${TO}`, "3"],
    [`${FROM}.4294967295.delta`, FROM, "4294967295"],
  ];
  for (const [name, delta, part] of cases) {
    assert.deepEqual(parseUploadName(name), {
      kind: "delta",
      delta,
      part,
      relPath: `deltas/${delta.slice(0, 2)}/${delta.slice(2)}/${part}`,
    }, name);
  }
});

Deno.test("every other name is refused", async (t) => {
  const refused: [string, string][] = [
    ["uppercase hex", `${HEX.toUpperCase()}.filez`],
    ["one uppercase digit", `A${HEX.slice(1)}.commit`],
    ["63 hex digits", `${HEX.slice(1)}.filez`],
    ["65 hex digits", `${HEX}0.filez`],
    ["non-hex digits", `${HEX.slice(1)}g.filez`],
    ["a bare-repo .file", `${HEX}.file`],
    ["a .commitmeta", `${HEX}.commitmeta`],
    ["a .sig", `${HEX}.sig`],
    ["an unknown extension", `${HEX}.dirtreex`],
    ["two dots", `${HEX}.filez.filez`],
    ["a trailing dot", `${HEX}.filez.`],
    ["no extension", HEX],
    ["a slash", `${HEX.slice(0, 2)}/${HEX.slice(2)}.filez`],
    ["a leading slash", `/${HEX}.filez`],
    ["'..' as a delta part", `${TO}.....delta`],
    ["a path as a delta name", `../../../../etc/passwd.0.delta`],
    ["a slash in a delta name", `${TO.slice(0, 42)}/.0.delta`],
    ["a '.' in a delta name", `${TO.slice(0, 42)}..0.delta`],
    ["the empty part flat-manager accepts", `${TO}..delta`],
    ["a 42-character delta name", `${TO.slice(1)}.0.delta`],
    ["a 44-character delta name", `${TO}A.0.delta`],
    ["an 86-character from-to name", `${FROM}-${TO.slice(1)}.0.delta`],
    ["an 87-character name without '-' at 43", `${FROM}${TO}A.0.delta`],
    ["'-' elsewhere", `${FROM.slice(1)}-A${TO}.0.delta`],
    ["standard base64 '/'", `${TO.slice(0, 42)}/.superblock.delta`],
    ["base64 padding", `${TO.slice(0, 42)}=.superblock.delta`],
    ["a non-numeric part", `${TO}.meta.delta`],
    ["a signed part", `${TO}.-1.delta`],
    ["an 11-digit part", `${TO}.12345678901.delta`],
    ["a superblock in other case", `${TO}.Superblock.delta`],
    ["four pieces", `${TO}.0.0.delta`],
    ["a wrong suffix", `${TO}.0.deltas`],
    ["the empty name", ""],
    ["a NUL", `${HEX}.filez\0`],
    ["a newline", `${HEX}.filez\n`],
  ];
  for (const [what, name] of refused) {
    await t.step(
      what,
      () => assert.equal(parseUploadName(name), undefined, name),
    );
  }
});
