/** The commit job's early writeback: it succeeds on a real path and reports, never throws. */
import assert from "node:assert/strict";
import { startWriteback } from "./writeback.ts";

Deno.test("startWriteback flushes a path's file system and reports a failure", async () => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-writeback-" });
  try {
    await Deno.writeTextFile(`${dir}/f`, "bytes to flush\n");
    assert.deepEqual(await startWriteback(dir).done, { ok: true });
    const missing = await startWriteback(`${dir}/missing`).done;
    assert.equal(missing.ok, false);
    assert.match(
      (missing as { why: string }).why,
      /missing.*No such file or directory/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
