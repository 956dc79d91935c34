/** The README's promises: its two commands, and a configuration table that lists every variable. */
import assert from "node:assert/strict";
import { envSchema } from "../lib/config.ts";

const readme = await Deno.readTextFile(
  new URL("../README.md", import.meta.url),
);

Deno.test("README opens with the start and test commands, and .ci/run calls the test command", async () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const commands = firstBlock.split("\n").filter((l) => l.trim()).map((l) =>
    l.split("#")[0]!.trim()
  );
  assert.deepEqual(commands, ["./flatyard start", "./flatyard test"]);
  const ci = await Deno.readTextFile(new URL("../.ci/run", import.meta.url));
  assert.match(ci, /\.\/flatyard test/);
});

Deno.test("README's configuration table lists every environment variable lib/config.ts reads", () => {
  const rows = [...readme.matchAll(/^\| `([A-Z0-9_]+)` +\|/gm)].map((m) =>
    m[1]
  );
  assert.deepEqual(rows.sort(), Object.keys(envSchema.shape).sort());
});
