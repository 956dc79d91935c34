/** Upload batching follows the Python client's `upload_objects` (§5.2). */
import assert from "node:assert/strict";
import { uploadBatches } from "./upload_objects.ts";

const MiB = 1024 * 1024;

Deno.test("uploadBatches groups objects as the Python client's upload_objects", async (t) => {
  const f = (size: number, i: number) => ({
    name: `o${i}`,
    path: `/o${i}`,
    size,
  });
  const table: [string, number[], number[][]][] = [
    ["nothing, no request", [], []],
    ["small objects share a request", [1, 2, 3], [[1, 2, 3]]],
    ["exactly 4 MiB fits", [2 * MiB, 2 * MiB, 1], [[2 * MiB, 2 * MiB], [1]]],
    ["the object that would pass 4 MiB starts the next request", [
      3 * MiB,
      2 * MiB,
    ], [
      [3 * MiB],
      [2 * MiB],
    ]],
    ["an object over 4 MiB goes alone", [1, 5 * MiB, 1, 6 * MiB], [
      [1],
      [5 * MiB],
      [1],
      [
        6 * MiB,
      ],
    ]],
    ["two big objects in a row, each alone", [5 * MiB, 5 * MiB, 1, 2], [
      [5 * MiB],
      [5 * MiB],
      [
        1,
        2,
      ],
    ]],
  ];
  for (const [name, sizes, want] of table) {
    await t.step(name, () => {
      const got = uploadBatches(sizes.map(f)).map((b) => b.map((x) => x.size));
      assert.deepEqual(got, want);
    });
  }
});
