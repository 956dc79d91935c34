/**
 * flat-manager compatibility: the exact request sequence of the Python client's
 * `push --commit --publish --wait --extra-id Foo --build-log-url http://log` (specs/flat-manager-
 * api.md §5.4), replayed over raw HTTP/1.1 against a served Flatyard, with the wire formats the
 * spec gives byte for byte: gzip JSON bodies on GET `missing_objects` (§5.2 step 4), JSON bodies
 * on GET job polls (§0.3, §4.4), multipart/mixed uploads in 4 MiB batches, files before metadata
 * (§5.2 step 7, §5.3). Each answer is checked for the status, headers and shapes the clients
 * read: `Location` headers, `missing`, job `contents`/`results` as JSON strings (§1.5).
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  fileObjects,
  listRefs,
  metadataObjects,
  objectPath,
} from "../lib/client/local_repo.ts";
import { dbTest } from "./support/db.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";
import { rawRequest } from "./support/raw_http.ts";
import { pythonMultipart } from "./support/wire.ts";

const UPLOAD_CHUNK_LIMIT = 4 * 1024 * 1024;

/** §5.2 upload batching: up to 4 MiB of summed sizes per request; a bigger object alone. */
function batches<T extends { size: number }>(items: T[]): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let sum = 0;
  for (const it of items) {
    if (cur.length > 0 && sum + it.size > UPLOAD_CHUNK_LIMIT) {
      out.push(cur);
      cur = [];
      sum = 0;
    }
    cur.push(it);
    sum += it.size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

dbTest(
  "the Python client's push sequence (§5.4), byte for byte, ends published",
  async (db, t) => {
    const p = await startPipeline(db, "stable", {
      collectionId: "org.example.Stable",
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const seen: string[] = [];
    const call = async (
      method: string,
      path: string,
      opts: {
        json?: unknown;
        gzip?: unknown;
        raw?: Uint8Array;
        type?: string;
      } = {},
      // deno-lint-ignore no-explicit-any -- the test reads whatever shape it asserts on
    ): Promise<{ status: number; headers: Headers; json: any }> => {
      // As Python's requests sends it: the host with its port (Location is built from it, §0.5).
      const headers: Record<string, string> = {
        Host: `127.0.0.1:${p.port}`,
        Authorization: `Bearer ${p.token}`,
      };
      let body: Uint8Array | undefined;
      if (opts.gzip !== undefined) {
        body = gzipSync(JSON.stringify(opts.gzip));
        headers["Content-Encoding"] = "gzip";
        headers["Content-Type"] = "application/json";
      } else if (opts.json !== undefined) {
        body = new TextEncoder().encode(JSON.stringify(opts.json));
        headers["Content-Type"] = "application/json";
      } else if (opts.raw) {
        body = opts.raw;
        headers["Content-Type"] = opts.type!;
      }
      const r = await rawRequest(p.port, method, path, headers, body);
      seen.push(`${method} ${path.replace(/\/build\/\d+/, "/build/N")}`);
      const text = r.text();
      return {
        status: r.status,
        headers: r.headers,
        json: text ? JSON.parse(text) : undefined,
      };
    };
    /** The §4.4 poll loop: a JSON body with the log offset, the log appended as it grows. */
    const poll = async (path: string) => {
      let offset = 0;
      let log = "";
      for (;;) {
        const r = await call("GET", path, { json: { "log-offset": offset } });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        log += r.json.log;
        offset += new TextEncoder().encode(r.json.log).length;
        assert.equal(typeof r.json.contents, "string");
        if (r.json.status >= 2) {
          // §1.5: `results` is a JSON string once the job ended.
          assert.equal(typeof r.json.results, "string");
          return { job: r.json, log, results: JSON.parse(r.json.results) };
        }
        assert.equal(r.json.results, undefined, "no results while running");
        await new Promise((res) => setTimeout(res, 100));
      }
    };

    try {
      const refs = await listRefs(fixture.repo);
      const pushed = new Map(
        [...refs].filter(([r]) => /^(app|runtime|screenshots)\//.test(r)),
      );
      let build = "";
      let id = 0;

      await t.step("create: 200 with Location", async () => {
        const r = await call("POST", "/api/v1/build", {
          json: { repo: "stable", "app-id": fixture.appId },
        });
        assert.equal(r.status, 200);
        id = r.json.id;
        build = `/api/v1/build/${id}`;
        assert.equal(r.headers.get("location"), `${p.base}${build}`);
        assert.equal(r.json.repo_state, 0);
      });

      const metadata = await metadataObjects(fixture.repo, pushed.values());
      const files = await fileObjects(fixture.repo, metadata);
      const missing: Record<string, string[]> = {};

      await t.step(
        "steps 1-2: gzip missing_objects in chunks of 2000",
        async () => {
          for (
            const [what, names] of [["metadata", metadata], [
              "files",
              files,
            ]] as const
          ) {
            missing[what] = [];
            for (let i = 0; i < names.length; i += 2000) {
              const r = await call("GET", `${build}/missing_objects`, {
                gzip: { wanted: names.slice(i, i + 2000) },
              });
              assert.equal(r.status, 200);
              missing[what]!.push(...r.json.missing);
            }
            // A fresh repository has none of them.
            assert.deepEqual(new Set(missing[what]), new Set(names));
          }
        },
      );

      await t.step(
        "steps 3-4: multipart/mixed uploads, files first, 4 MiB batches",
        async () => {
          for (const what of ["files", "metadata"]) {
            const items = await Promise.all(
              missing[what]!.map(async (name) => ({
                name,
                size: (await Deno.stat(objectPath(fixture.repo, name))).size,
              })),
            );
            for (const batch of batches(items)) {
              const { body, type } = pythonMultipart(
                await Promise.all(batch.map(async (b) => ({
                  name: b.name,
                  bytes: await Deno.readFile(objectPath(fixture.repo, b.name)),
                }))),
              );
              const r = await call("POST", `${build}/upload`, {
                raw: body,
                type,
              });
              assert.equal(r.status, 200, JSON.stringify(r.json));
              // The Rust client counts the answer's entries: one per file.
              assert.equal(r.json.length, batch.length);
            }
          }
          const again = await call("GET", `${build}/missing_objects`, {
            gzip: { wanted: [...metadata, ...files] },
          });
          assert.deepEqual(again.json.missing, []);
        },
      );

      await t.step(
        "steps 6-7: build_ref per ref, then add_extra_ids",
        async () => {
          for (const [ref, commit] of pushed) {
            const r = await call("POST", `${build}/build_ref`, {
              json: { ref, commit, "build-log-url": "http://log" },
            });
            assert.equal(r.status, 200, JSON.stringify(r.json));
            assert.equal(r.json.ref_name, ref);
            assert.equal(r.json.build_log_url, "http://log");
            assert.match(
              r.headers.get("location")!,
              new RegExp(`^${p.base}${build}/build_ref/\\d+$`),
            );
          }
          const x = await call("POST", `${build}/add_extra_ids`, {
            json: { ids: ["Foo"] },
          });
          assert.equal(x.status, 200);
          assert.deepEqual(x.json.extra_ids, ["Foo"]);
        },
      );

      await t.step(
        "steps 8-11: commit with Location, extended while committing, poll the commit job",
        async () => {
          const r = await call("POST", `${build}/commit`, {
            json: { endoflife: null, endoflife_rebase: null },
          });
          assert.equal(r.status, 200);
          assert.equal(r.headers.get("location"), `${p.base}${build}/commit`);
          assert.equal(r.json.kind, 0);
          assert.equal(r.json.status, 0);
          assert.equal(r.json.results, undefined);
          for (;;) {
            const e = await call("GET", `${build}/extended`);
            assert.equal(e.status, 200);
            assert.deepEqual(e.json.checks, []);
            if (e.json.build.repo_state !== 1) break;
            await new Promise((res) => setTimeout(res, 100));
          }
          const { job, log, results } = await poll(`${build}/commit`);
          assert.equal(job.status, 2, log);
          assert.match(log, /Committing ref /);
          assert.deepEqual(
            Object.keys(results.refs).sort(),
            [...pushed.keys()].sort(),
          );
        },
      );

      await t.step(
        "steps 12-14: publish with Location, poll, the update-repo job once, the build",
        async () => {
          const r = await call("POST", `${build}/publish`, { json: {} });
          assert.equal(r.status, 200, JSON.stringify(r.json));
          assert.equal(r.headers.get("location"), `${p.base}${build}/publish`);
          assert.equal(r.json.kind, 1);
          const { job, results } = await poll(`${build}/publish`);
          assert.equal(job.status, 2);
          const m = results["update-repo-job"];
          assert.equal(typeof m, "number");
          const u = await call("GET", `/api/v1/job/${m}`, { json: {} });
          assert.equal(u.status, 200);
          assert.equal(u.json.kind, 2);
          const final = await call("GET", build);
          assert.equal(final.json.repo_state, 2);
          assert.equal(final.json.published_state, 2);
          assert.deepEqual(final.json.extra_ids, ["Foo"]);
        },
      );

      await t.step("the server saw exactly §5.4's order", () => {
        const collapsed = seen.filter((s, i) => s !== seen[i - 1]);
        assert.deepEqual(collapsed, [
          "POST /api/v1/build",
          "GET /api/v1/build/N/missing_objects",
          "POST /api/v1/build/N/upload",
          "GET /api/v1/build/N/missing_objects",
          "POST /api/v1/build/N/build_ref",
          "POST /api/v1/build/N/add_extra_ids",
          "POST /api/v1/build/N/commit",
          "GET /api/v1/build/N/extended",
          "GET /api/v1/build/N/commit",
          "POST /api/v1/build/N/publish",
          "GET /api/v1/build/N/publish",
          `GET /api/v1/job/${
            seen.find((s) => s.startsWith("GET /api/v1/job/"))!.split("/").pop()
          }`,
          "GET /api/v1/build/N",
        ]);
      });
    } finally {
      await p.close();
    }
  },
);
