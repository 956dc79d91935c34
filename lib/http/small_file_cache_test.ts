import assert from "node:assert/strict";
import {
  OBJECT_RECHECK_MS,
  RECHECK_MS,
  SmallFileCache,
} from "./small_file_cache.ts";

function stat(ino: number, size: number, mtime = 1000): Deno.FileInfo {
  return { ino, dev: 1, size, mtime: new Date(mtime) } as Deno.FileInfo;
}
const bytes = (n: number) => new Uint8Array(n).fill(n % 251);

Deno.test("SmallFileCache: a held file is used until RECHECK_MS, then only while unchanged", () => {
  let now = 0;
  const cache = new SmallFileCache(1024, { maxFile: 512, now: () => now });
  cache.put("a", stat(1, 10), bytes(10));
  assert.deepEqual(cache.recent("a")?.bytes, bytes(10));
  now = RECHECK_MS;
  assert.equal(cache.recent("a"), undefined, "due for a check");
  // The same file on disk: used, and good for another interval.
  assert.deepEqual(cache.get("a", stat(1, 10))?.bytes, bytes(10));
  assert.ok(cache.recent("a"));
  now += RECHECK_MS;
  // Replaced (a new inode), or touched: dropped, and the bytes no longer count.
  assert.equal(cache.get("a", stat(2, 10)), undefined);
  assert.equal(cache.size, 0);
  assert.equal(cache.recent("a"), undefined);
  cache.put("b", stat(3, 10, 1000), bytes(10));
  now += RECHECK_MS;
  assert.equal(cache.get("b", stat(3, 10, 2000)), undefined, "new mtime");
  assert.equal(cache.size, 0);
});

Deno.test("SmallFileCache: bounded by bytes, least recently used out first", () => {
  const cache = new SmallFileCache(300, { maxFile: 200, now: () => 0 });
  cache.put("a", stat(1, 100), bytes(100));
  cache.put("b", stat(2, 100), bytes(100));
  cache.put("c", stat(3, 100), bytes(100));
  assert.ok(cache.recent("a"), "a is now the most recently used");
  cache.put("d", stat(4, 100), bytes(100));
  assert.equal(cache.size, 300);
  assert.equal(cache.recent("b"), undefined, "b was the least recently used");
  for (const k of ["a", "c", "d"]) assert.ok(cache.recent(k), k);
  // Too large for a single entry, or a short read: never kept.
  cache.put("big", stat(5, 201), bytes(201));
  cache.put("short", stat(6, 150), bytes(100));
  assert.equal(cache.recent("big"), undefined);
  assert.equal(cache.recent("short"), undefined);
  assert.equal(cache.size, 300);
  // Replacing an entry does not count its old bytes twice.
  cache.put("a", stat(7, 50), bytes(50));
  assert.equal(cache.size, 250);
});

Deno.test("SmallFileCache: size 0 keeps nothing", () => {
  const cache = new SmallFileCache(0, { now: () => 0 });
  cache.put("a", stat(1, 10), bytes(10));
  assert.equal(cache.recent("a"), undefined);
  assert.equal(cache.size, 0);
});

Deno.test("SmallFileCache: objects are looked at less often than other files", () => {
  let now = 0;
  const cache = new SmallFileCache(1024, {
    objectRecheckMs: 5 * RECHECK_MS,
    now: () => now,
  });
  const object = "objects/ab/cdef.filez";
  const part = "deltas/ab/cdef/0";
  assert.equal(cache.recheckMsFor(object), 5 * RECHECK_MS);
  assert.equal(cache.recheckMsFor(part), RECHECK_MS);
  assert.equal(new SmallFileCache(1).recheckMsFor(object), OBJECT_RECHECK_MS);
  cache.put(object, stat(1, 10), bytes(10), cache.recheckMsFor(object));
  cache.put(part, stat(2, 10), bytes(10), cache.recheckMsFor(part));
  now = RECHECK_MS;
  assert.equal(cache.recent(part), undefined, "the part is due for a check");
  assert.ok(cache.recent(object), "the object is not");
  // Due at the latest after its interval, whatever the jitter; checked again, it gets another.
  now = 5 * RECHECK_MS;
  assert.equal(cache.recent(object), undefined);
  assert.ok(cache.get(object, stat(1, 10), cache.recheckMsFor(object)));
  now += 2 * RECHECK_MS;
  assert.ok(cache.recent(object), "good for at least half an interval");
});
