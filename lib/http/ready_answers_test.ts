import assert from "node:assert/strict";
import { RECHECK_MS, SmallFileCache } from "./small_file_cache.ts";
import { ReadyAnswers } from "./ready_answers.ts";

function stat(ino: number, size: number): Deno.FileInfo {
  return { ino, dev: 1, size, mtime: new Date(1000) } as Deno.FileInfo;
}

Deno.test("ReadyAnswers: good exactly as long as the cache entry they came from", () => {
  let now = 0;
  const cache = new SmallFileCache(1024, { maxFile: 512, now: () => now });
  const ready = new ReadyAnswers(cache);
  cache.put("k", stat(1, 4), new Uint8Array(4));
  const cached = cache.recent("k")!;
  const answer = {
    repo: "main",
    headers: { ETag: '"x"' },
    body: cached.bytes,
    cached,
  };
  ready.set("/repo/main/objects/ab/c.dirtree", answer);
  const hits = cache.hits;
  assert.equal(ready.get("/repo/main/objects/ab/c.dirtree"), answer);
  assert.equal(cache.hits, hits + 1, "a use counts as a cache hit");
  assert.equal(ready.get("/repo/main/other"), undefined);
  // Due for a look at the file: the usual path must answer (and refresh the entry).
  now = RECHECK_MS;
  assert.equal(ready.get("/repo/main/objects/ab/c.dirtree"), undefined);
  assert.equal(
    ready.size,
    1,
    "kept: the same entry is good again once checked",
  );
  assert.ok(cache.get("k", stat(1, 4)));
  assert.equal(ready.get("/repo/main/objects/ab/c.dirtree"), answer);
  // The file changed: its entry is dropped, and the ready answer with it.
  now += RECHECK_MS;
  assert.equal(cache.get("k", stat(2, 4)), undefined);
  assert.equal(ready.get("/repo/main/objects/ab/c.dirtree"), undefined);
  assert.equal(ready.size, 0);
});

Deno.test("ReadyAnswers: an evicted entry ends its answer; bounded by count", () => {
  const cache = new SmallFileCache(8, { maxFile: 8, now: () => 0 });
  const ready = new ReadyAnswers(cache, 2);
  cache.put("a", stat(1, 8), new Uint8Array(8));
  const a = cache.recent("a")!;
  ready.set("/a", { repo: "r", headers: {}, body: a.bytes, cached: a });
  cache.put("b", stat(2, 8), new Uint8Array(8)); // evicts "a": 8 bytes in all
  assert.equal(ready.get("/a"), undefined);
  const b = cache.recent("b")!;
  for (const p of ["/1", "/2", "/3"]) {
    ready.set(p, { repo: "r", headers: {}, body: b.bytes, cached: b });
  }
  assert.equal(ready.size, 2);
  assert.equal(ready.get("/1"), undefined, "the oldest went first");
  assert.ok(ready.get("/3"));
});
