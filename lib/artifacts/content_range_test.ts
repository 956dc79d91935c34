import assert from "node:assert/strict";
import { formatContentRange, parseContentRange } from "./content_range.ts";

Deno.test("parseContentRange reads bytes START-END/TOTAL and refuses anything else", async (t) => {
  const cases: [string, ReturnType<typeof parseContentRange>][] = [
    ["bytes 0-99/100", { start: 0, end: 99, total: 100 }],
    ["bytes 5-5/6", { start: 5, end: 5, total: 6 }],
    ["bytes 0-17179869183/17179869184", {
      start: 0,
      end: 17179869183,
      total: 17179869184,
    }],
    ["bytes 10-9/100", undefined],
    ["bytes 0-99/*", undefined],
    ["bytes */100", undefined],
    ["bytes=0-99/100", undefined],
    ["bytes -1-99/100", undefined],
    ["bytes 0-99", undefined],
    ["items 0-99/100", undefined],
    ["bytes 0-99/100, 100-199/200", undefined],
    ["bytes 0-12345678901234567/12345678901234568", undefined],
  ];
  for (const [value, want] of cases) {
    await t.step(JSON.stringify(value), () => {
      assert.deepEqual(parseContentRange(value), want);
    });
  }
});

Deno.test("formatContentRange round-trips through parseContentRange", () => {
  assert.deepEqual(parseContentRange(formatContentRange(3, 9, 10)), {
    start: 3,
    end: 9,
    total: 10,
  });
});
