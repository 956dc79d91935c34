/**
 * The builder's runner-wide remote for dependencies: one per `.flatpakrepo` URL, with the task's
 * token in its URL.
 */
import assert from "node:assert/strict";
import { depsRemoteName, urlWithToken } from "./builder_deps.ts";
import { downloadToken } from "../http/download_auth.ts";

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

Deno.test("urlWithToken puts the token in as the basic-auth password", () => {
  const url = urlWithToken("http://127.0.0.1:8080/repo/stable/", "a.b-c_d");
  assert.equal(url, "http://flatyard:a.b-c_d@127.0.0.1:8080/repo/stable/");
  // What flatpak sends for it, and what the server reads back (lib/http/download_auth.ts).
  const u = new URL(url);
  assert.equal(
    downloadToken(`Basic ${btoa(`${u.username}:${u.password}`)}`),
    "a.b-c_d",
  );
});
