/** `Prefer: wait` parsing (RFC 7240) and the hold on the bus. */
import assert from "node:assert/strict";
import { createMemoryBus } from "../bus/memory_bus.ts";
import {
  MAX_WAIT_SECONDS,
  preferredWait,
  waitForChange,
} from "./prefer_wait.ts";

Deno.test("preferredWait reads wait= among other preferences, capped", () => {
  const cases: [string | undefined, number | undefined][] = [
    [undefined, undefined],
    ["", undefined],
    ["wait=5", 5],
    ["WAIT = 7", 7],
    ['wait="3"', 3],
    ["respond-async, wait=2", 2],
    ["return=minimal; foo=bar, wait=4;x=y", 4],
    ["wait=0", undefined],
    ["wait=-1", undefined],
    ["wait=abc", undefined],
    ["wait=3600", MAX_WAIT_SECONDS],
    ["waiting=5", undefined],
    ["handling=lenient", undefined],
  ];
  for (const [header, want] of cases) {
    assert.equal(preferredWait(header), want, String(header));
  }
});

Deno.test("waitForChange", async (t) => {
  const bus = createMemoryBus();
  let state = 0;
  const read = () => Promise.resolve(state);

  await t.step("a settled first read returns at once", async () => {
    state = 1;
    assert.equal(await waitForChange(bus, ["c"], 5, read, (v) => v === 1), 1);
  });

  await t.step("messages are followed by reads until settled", async () => {
    state = 0;
    const reads: number[] = [];
    const held = waitForChange(bus, ["c", "d"], 5, async () => {
      reads.push(state);
      return await read();
    }, (v) => v >= 2);
    await new Promise((r) => setTimeout(r, 20));
    state = 1;
    await bus.publish("d", "x"); // moved, but not far enough: held on
    await new Promise((r) => setTimeout(r, 20));
    state = 2;
    await bus.publish("c", "x");
    assert.equal(await held, 2);
    assert.deepEqual(reads, [0, 1, 2]);
  });

  await t.step(
    "the time running out ends the hold",
    async () => {
      state = 0;
      let n = 0;
      const v = await waitForChange(bus, ["c"], 1, () => {
        n++;
        return read();
      }, (x) => x === 9);
      assert.equal(v, 0);
      assert.equal(n, 1);
    },
  );

  await t.step("an aborted request ends the hold", async () => {
    const ac = new AbortController();
    const held = waitForChange(bus, ["c"], 10, read, () => false, ac.signal);
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    assert.equal(await held, 0);
  });

  await bus.close();
});
