/** The builder's runner-wide remote for dependencies: one per `.flatpakrepo` URL. */
import assert from "node:assert/strict";
import { depsRemoteName } from "./builder.ts";

Deno.test("depsRemoteName is stable per URL and differs between repositories", () => {
  const stable = depsRemoteName("https://fy.example/repo/stable.flatpakrepo");
  assert.equal(
    stable,
    depsRemoteName("https://fy.example/repo/stable.flatpakrepo"),
  );
  assert.notEqual(
    stable,
    depsRemoteName("https://fy.example/repo/beta.flatpakrepo"),
  );
  // A valid flatpak remote name: letters, digits, `-`, `_`, `.`.
  assert.match(stable, /^flatyard-deps-[0-9a-f]{16}$/);
});
