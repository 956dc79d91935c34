/**
 * flat-manager's job metrics on /metrics (specs/flat-manager-api.md §4.6): the four families,
 * with flat-manager's kind, status and repo labels, computed from the jobs table.
 */
import assert from "node:assert/strict";
import {
  JOB_DURATION_BUCKETS,
  registerFlatManagerJobMetrics,
} from "../lib/builds/fm_metrics.ts";
import { dbTest } from "./support/db.ts";
import { testApp } from "./support/app.ts";

/** The samples of the exposition text, by series (name and labels as written). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

dbTest(
  "GET /metrics counts flat-manager jobs by kind, status and repo",
  async (db) => {
    const a = await testApp(db);
    registerFlatManagerJobMetrics(a.deps.metrics, a.deps.db);
    const q = a.deps.queue;
    try {
      // A commit (global queue) that took 100 s, and one that failed.
      const c1 = await q.enqueue("commit", { build: 1 });
      await q.claim("w", ["commit"], 30);
      await q.complete(c1.id, "w", { refs: {} });
      await db.query(
        "UPDATE jobs SET started_at = finished_at - interval '100 seconds' WHERE id = $1",
        [c1.id],
      );
      const c2 = await q.enqueue("commit", { build: 2 });
      await q.claim("w", ["commit"], 30);
      await q.fail(c2.id, "w", "boom", { permanent: true });
      // Repository queues: a publish that ended, one cancelled before it started, an update
      // waiting and one running on another repository.
      const p1 = await q.enqueue("publish", { build: 1 }, {
        serialKey: "repo:stable",
      });
      await q.claim("w", ["publish"], 30);
      await q.complete(p1.id, "w", {});
      const p2 = await q.enqueue("publish", { build: 2 }, {
        serialKey: "repo:stable",
      });
      await q.cancel(p2.id);
      await q.enqueue("update-repo", { repo: "stable" }, {
        serialKey: "repo:stable",
      });
      await q.enqueue("update-repo", { repo: "beta" }, {
        serialKey: "repo:beta",
        priority: 5,
      });
      await q.claim("w", ["update-repo"], 30);
      // Not a flat-manager kind: not in these families.
      await q.enqueue("maintenance", {}, { serialKey: "maintenance" });

      const res = await a.req("GET", "/metrics");
      assert.equal(res.status, 200);
      assert.equal(
        res.headers.get("content-type"),
        "text/plain; version=0.0.4; charset=utf-8",
      );
      const text = await res.text();
      for (
        const [family, type] of [
          ["flat_manager_jobs_total", "counter"],
          ["flat_manager_jobs_in_progress", "gauge"],
          ["flat_manager_jobs_queued", "gauge"],
          ["flat_manager_job_duration_seconds", "histogram"],
        ]
      ) {
        assert.match(text, new RegExp(`^# TYPE ${family} ${type}$`, "m"));
        assert.match(text, new RegExp(`^# HELP ${family} \\S`, "m"));
      }
      const s = samples(text);
      const fm = [...s].filter(([k]) => k.startsWith("flat_manager_"));
      const get = (k: string) => s.get(k);

      assert.equal(
        get(
          'flat_manager_jobs_total{kind="commit",status="ended",repo="global"}',
        ),
        1,
      );
      assert.equal(
        get(
          'flat_manager_jobs_total{kind="commit",status="broken",repo="global"}',
        ),
        1,
      );
      assert.equal(
        get(
          'flat_manager_jobs_total{kind="publish",status="ended",repo="stable"}',
        ),
        1,
      );
      assert.equal(
        get(
          'flat_manager_jobs_total{kind="publish",status="broken",repo="stable"}',
        ),
        1,
      );
      assert.equal(
        fm.filter(([k]) => k.startsWith("flat_manager_jobs_total")).length,
        4,
      );

      assert.equal(
        get('flat_manager_jobs_queued{kind="update_repo",repo="stable"}'),
        1,
      );
      assert.equal(
        get('flat_manager_jobs_in_progress{kind="update_repo",repo="stable"}'),
        0,
      );
      assert.equal(
        get('flat_manager_jobs_in_progress{kind="update_repo",repo="beta"}'),
        1,
      );
      assert.equal(
        get('flat_manager_jobs_queued{kind="update_repo",repo="beta"}'),
        0,
      );
      assert.equal(
        get('flat_manager_jobs_in_progress{kind="commit",repo="global"}'),
        0,
      );
      assert.equal(
        get('flat_manager_jobs_queued{kind="publish",repo="stable"}'),
        0,
      );

      const commitEnded = 'kind="commit",status="ended",repo="global"';
      for (const le of JOB_DURATION_BUCKETS) {
        assert.equal(
          get(
            `flat_manager_job_duration_seconds_bucket{${commitEnded},le="${le}"}`,
          ),
          le >= 100 ? 1 : 0,
          `le=${le}`,
        );
      }
      assert.equal(
        get(
          `flat_manager_job_duration_seconds_bucket{${commitEnded},le="+Inf"}`,
        ),
        1,
      );
      assert.equal(
        get(`flat_manager_job_duration_seconds_count{${commitEnded}}`),
        1,
      );
      assert.ok(
        Math.abs(
          get(`flat_manager_job_duration_seconds_sum{${commitEnded}}`)! - 100,
        ) < 1e-6,
      );
      assert.equal(
        get(
          'flat_manager_job_duration_seconds_count{kind="commit",status="broken",repo="global"}',
        ),
        1,
      );
      // Cancelled before it started: counted, but it has no duration.
      assert.equal(
        get(
          'flat_manager_job_duration_seconds_count{kind="publish",status="broken",repo="stable"}',
        ),
        undefined,
      );
      assert.ok(
        !fm.some(([k]) => k.includes("maintenance")),
        "only flat-manager's kinds",
      );
    } finally {
      await a.close();
    }
  },
);
