/** The Bus contract, run against the in-process bus and a real Redis server. */
import assert from "node:assert/strict";
import type { Bus } from "./bus.ts";
import { createMemoryBus } from "./memory_bus.ts";
import { createRedisBus } from "./redis_bus.ts";

const redisUrl = Deno.env.get("FLATYARD_TEST_REDIS_URL");
const requireAll = Deno.env.get("FLATYARD_TEST_REQUIRE_ALL") === "1";

const impls: [string, () => Promise<Bus[]>][] = [
  ["memory", () => {
    const bus = createMemoryBus();
    return Promise.resolve([bus, bus]);
  }],
];
if (redisUrl || requireAll) {
  impls.push(["redis", async () => {
    if (!redisUrl) throw new Error("FLATYARD_TEST_REDIS_URL is not set");
    // Two separate connections, as two processes would have; a unique prefix isolates this test.
    const prefix = `test:${crypto.randomUUID()}:`;
    return [
      await createRedisBus(redisUrl, prefix),
      await createRedisBus(redisUrl, prefix),
    ];
  }]);
}

function collector() {
  const got: string[] = [];
  let waiters: (() => void)[] = [];
  return {
    got,
    handler: (m: string) => {
      got.push(m);
      for (const w of waiters) w();
      waiters = [];
    },
    async until(n: number, ms = 3000) {
      const deadline = Date.now() + ms;
      while (got.length < n) {
        if (Date.now() > deadline) {
          throw new Error(`Got ${got.length} of ${n} messages`);
        }
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
  };
}

for (const [kind, make] of impls) {
  Deno.test(`Bus [${kind}]`, async (t) => {
    const [a, b] = await make();
    try {
      await t.step(
        "delivers a message to a subscriber of another connection, in order",
        async () => {
          const c = collector();
          const off = await b!.subscribe("ch1", c.handler);
          for (let i = 0; i < 20; i++) await a!.publish("ch1", `m${i}`);
          await c.until(20);
          assert.deepEqual(
            c.got,
            Array.from({ length: 20 }, (_, i) => `m${i}`),
          );
          await off();
        },
      );
      await t.step(
        "fans out to every subscriber and keeps channels apart",
        async () => {
          const c1 = collector(), c2 = collector(), other = collector();
          const offs = [
            await b!.subscribe("fan", c1.handler),
            await b!.subscribe("fan", c2.handler),
            await b!.subscribe("other", other.handler),
          ];
          await a!.publish("fan", "hello");
          await c1.until(1);
          await c2.until(1);
          assert.deepEqual(c1.got, ["hello"]);
          assert.deepEqual(c2.got, ["hello"]);
          assert.deepEqual(other.got, []);
          for (const off of offs) await off();
        },
      );
      await t.step(
        "stops delivering after unsubscribe, to that handler only",
        async () => {
          const gone = collector(), stays = collector();
          const off = await b!.subscribe("un", gone.handler);
          const off2 = await b!.subscribe("un", stays.handler);
          await off();
          await a!.publish("un", "after");
          await stays.until(1);
          assert.deepEqual(gone.got, []);
          await off2();
        },
      );
      await t.step("carries any text byte for byte", async () => {
        const c = collector();
        const off = await b!.subscribe("utf", c.handler);
        const text = 'línea ✓ {"json": [1, 2]}\n\ttab';
        await a!.publish("utf", text);
        await c.until(1);
        assert.equal(c.got[0], text);
        await off();
      });
    } finally {
      await a!.close();
      if (b !== a) await b!.close();
    }
    await t.step("refuses use after close", async () => {
      if (kind !== "memory") return;
      await assert.rejects(a!.publish("x", "y"), /closed bus/);
    });
  });
}
