import assert from "node:assert/strict";
import type { Queryable } from "../db/db.ts";
import { readJobLog } from "./job_log.ts";

Deno.test("a chunk stored between readJobLog's two queries is not skipped", async () => {
  // The chunk query sees nothing past byte 18; by the length query the log has grown to 30.
  const db = {
    query: (sql: string) =>
      Promise.resolve(sql.includes("job_logs") ? [] : [{ log_bytes: 30 }]),
  } as unknown as Queryable;
  assert.deepEqual(await readJobLog(db, 1, 18), { text: "", next: 18 });
  assert.deepEqual(await readJobLog(db, 1, 500), { text: "", next: 30 });
});
