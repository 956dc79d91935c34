/** Job payloads are checked before a handler runs; a bad one fails for good, with the field named. */
import assert from "node:assert/strict";
import type { Deps } from "../lib/deps.ts";
import { PermanentJobError } from "../lib/queue/worker.ts";
import { createJobHandlers } from "./registry.ts";

Deno.test("a job with a malformed payload fails permanently and names the field", async (t) => {
  // The handlers must refuse before they touch any dependency: these are unusable on purpose.
  const handlers = createJobHandlers(
    { config: { dataDir: "/nonexistent" } } as unknown as Deps,
  );
  const ctx = {
    job: {} as never,
    signal: new AbortController().signal,
    log: () => Promise.resolve(),
  };
  const cases: [string, unknown, RegExp][] = [
    ["repo.validate", {}, /Invalid repo\.validate payload: repo:/],
    ["repo.validate", { repo: 7 }, /repo:/],
    ["repo.delete", { repo: "x" }, /Invalid repo\.delete payload: trashPath:/],
    ["repo.delete", null, /Invalid repo\.delete payload/],
  ];
  for (const [kind, payload, message] of cases) {
    await t.step(`${kind} ${JSON.stringify(payload)}`, async () => {
      await assert.rejects(
        Promise.resolve().then(() => handlers[kind]!(payload, ctx)),
        (e) => e instanceof PermanentJobError && message.test(e.message),
      );
    });
  }
});
