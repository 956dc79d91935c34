/**
 * flat-manager build endpoints over a real server (clients send JSON on GET, §0.3): create,
 * list, read, refs, missing_objects with gzip, extra ids, purge, and job polling, with
 * flat-manager's exact shapes, Location headers and errors.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { expectJson, testApp } from "./support/app.ts";
import { rawRequest } from "./support/raw_http.ts";
import { serveApp } from "../lib/http/node_server.ts";
import { ostree } from "../lib/ostree/cli.ts";

async function setup(db: Parameters<typeof testApp>[0]) {
  const a = await testApp(db);
  await a.user("root", "admin");
  const s = await a.login("root");
  await expectJson(
    await a.req("POST", "/api/v1/repos", {
      token: s,
      body: { name: "stable", collectionId: "org.example.Stable" },
    }),
    201,
  );
  const server = await serveApp(a.app, { hostname: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${server.port}`;
  const call = async (
    method: string,
    path: string,
    token: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(base + path, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      text,
      json: () => JSON.parse(text),
    };
  };
  /** GET with a JSON body, gzip-compressed when asked, as the clients send it. */
  const getWithBody = async (
    path: string,
    token: string,
    body: unknown,
    gzip = false,
  ) => {
    let bytes: Uint8Array = new TextEncoder().encode(JSON.stringify(body));
    if (gzip) {
      bytes = new Uint8Array(
        await new Response(
          new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
            new CompressionStream("gzip"),
          ),
        ).arrayBuffer(),
      );
    }
    const res = await rawRequest(server.port, "GET", path, {
      Authorization: `Bearer ${token}`,
      "Content-Type": "application/json",
      ...(gzip ? { "Content-Encoding": "gzip" } : {}),
    }, bytes);
    return {
      status: res.status,
      json: () => JSON.parse(res.text()),
      text: res.text(),
    };
  };
  return { a, s, server, base, call, getWithBody };
}

const fmErr = (status: number, type: string, message: string) => ({
  status,
  "error-type": type,
  message,
});

dbTest(
  "POST /api/v1/build creates a build, its repositories and an absolute Location",
  async (db) => {
    const { a, server, base, call } = await setup(db);
    try {
      const token = await a.token({ name: "ci" });
      const res = await call("POST", "/api/v1/build", token, {
        repo: "stable",
        "app-id": "org.example.Hello",
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers.get("content-type"), "application/json");
      const b = res.json();
      assert.equal(res.headers.get("location"), `${base}/api/v1/build/${b.id}`);
      assert.deepEqual(Object.keys(b), [
        "id",
        "created",
        "repo_state",
        "published_state",
        "repo",
        "extra_ids",
        "app_id",
        "public_download",
        "build_log_url",
        "token_name",
        "token_type",
      ]);
      assert.match(b.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      assert.deepEqual(
        [
          b.repo_state,
          b.published_state,
          b.repo,
          b.extra_ids,
          b.app_id,
          b.public_download,
          b.build_log_url,
          b.token_name,
          b.token_type,
        ],
        [0, 0, "stable", [], "org.example.Hello", false, null, "ci", "app"],
      );
      const legacy =
        (await call("POST", "/api/v1/build", token, { repo: "stable" })).json();
      assert.equal(
        legacy.public_download,
        true,
        "public by default without an app id",
      );
      const dir = join(a.deps.config.dataDir, "builds", String(b.id));
      const main = join(a.deps.config.dataDir, "repos", "stable");
      for (const d of [dir, join(dir, "upload")]) {
        assert.equal(
          (await ostree(d, ["config", "get", "core.mode"])).trim(),
          "archive-z2",
        );
        assert.equal(
          (await ostree(d, ["config", "get", "core.parent"])).trim(),
          main,
        );
        assert.equal(await Deno.readLink(join(d, "parent")), main);
      }
      assert.equal(
        (await ostree(dir, ["config", "get", "core.collection-id"])).trim(),
        `org.example.Stable.Build${b.id}`,
      );

      const cases: [
        Record<string, unknown>,
        Record<string, unknown>,
        number,
        unknown,
      ][] = [
        [
          {},
          { repo: "nope" },
          400,
          fmErr(400, "generic-error", "No such repo"),
        ],
        [
          { repos: ["other"] },
          { repo: "stable" },
          403,
          fmErr(
            403,
            "token-insufficient",
            "Not enough permissions: Not matching repo in token",
          ),
        ],
        [
          { prefixes: ["org.other"] },
          { repo: "stable", "app-id": "org.example.Hello" },
          403,
          fmErr(
            403,
            "token-insufficient",
            "Not enough permissions: Id org.example.Hello not matching prefix in token",
          ),
        ],
        [
          { scope: ["upload"] },
          { repo: "stable" },
          403,
          fmErr(
            403,
            "token-insufficient",
            "Not enough permissions: Not matching scope 'build' in token",
          ),
        ],
        [
          { sub: "build/1" },
          { repo: "stable" },
          403,
          fmErr(
            403,
            "token-insufficient",
            "Not enough permissions: Not matching sub 'build' in token",
          ),
        ],
      ];
      for (const [claims, body, status, error] of cases) {
        const r = await call(
          "POST",
          "/api/v1/build",
          await a.token(claims),
          body,
        );
        assert.equal(r.status, status, JSON.stringify(claims));
        assert.deepEqual(r.json(), error);
      }
      const bad = await call("POST", "/api/v1/build", token, undefined);
      assert.equal(bad.status, 400, "no JSON body: actix's plain-text 400");
      assert.match(bad.text, /Content type error|Json deserialize error/);
      void server;
    } finally {
      await server.shutdown();
      await a.close();
    }
  },
);

dbTest(
  "build reads, refs, extra ids and listing follow flat-manager's rules",
  async (db) => {
    const { a, server, base, call } = await setup(db);
    try {
      const token = await a.token();
      const b = (await call("POST", "/api/v1/build", token, {
        repo: "stable",
        "app-id": "org.example.Hello",
      })).json();
      const other = await a.token({ sub: `build/${b.id + 1}` });
      assert.deepEqual(
        (await call("GET", `/api/v1/build/${b.id}`, other)).json(),
        fmErr(
          403,
          "token-insufficient",
          `Not enough permissions: Not matching sub 'build/${b.id}' in token`,
        ),
      );
      assert.equal((await call("GET", "/api/v1/build/abc", token)).status, 404);
      assert.equal(
        (await call("GET", "/api/v1/build/999999", token)).status,
        404,
      );
      const own = await a.token({ sub: `build/${b.id}`, scope: ["upload"] });
      assert.equal(
        (await call("GET", `/api/v1/build/${b.id}`, own)).status,
        200,
        "upload scope may read its build",
      );
      const prefix = await a.token({ prefixes: ["org.other"] });
      assert.deepEqual(
        (await call("GET", `/api/v1/build/${b.id}`, prefix)).json(),
        fmErr(
          403,
          "token-insufficient",
          "Not enough permissions: Build's app ID not matching prefix in token",
        ),
      );

      const commit = "a".repeat(64);
      const r1 = await call("POST", `/api/v1/build/${b.id}/build_ref`, token, {
        ref: "app/org.example.Hello/x86_64/stable",
        commit,
        "build-log-url": "http://log/1",
      });
      assert.equal(r1.status, 200, r1.text);
      const ref = r1.json();
      assert.deepEqual(ref, {
        id: ref.id,
        build_id: b.id,
        ref_name: "app/org.example.Hello/x86_64/stable",
        commit,
        build_log_url: "http://log/1",
      });
      assert.equal(
        r1.headers.get("location"),
        `${base}/api/v1/build/${b.id}/build_ref/${ref.id}`,
      );
      const same =
        (await call("POST", `/api/v1/build/${b.id}/build_ref`, token, {
          ref: ref.ref_name,
          commit,
          "build-log-url": "http://log/2",
        })).json();
      assert.equal(
        same.build_log_url,
        "http://log/1",
        "same commit: row unchanged",
      );
      const moved =
        (await call("POST", `/api/v1/build/${b.id}/build_ref`, token, {
          ref: ref.ref_name,
          commit: "b".repeat(64),
        })).json();
      assert.deepEqual([moved.id, moved.commit, moved.build_log_url], [
        ref.id,
        "b".repeat(64),
        null,
      ]);
      for (
        const bad of [
          "app/org.example.Hello/x86_64",
          "app/a/b/c/d",
          "foo/bar",
          "screenshots/a/b",
        ]
      ) {
        assert.deepEqual(
          (await call("POST", `/api/v1/build/${b.id}/build_ref`, token, {
            ref: bad,
            commit,
          })).json(),
          fmErr(400, "generic-error", `Invalid ref_name ${bad}`),
        );
      }
      assert.equal(
        (await call("POST", `/api/v1/build/${b.id}/build_ref`, token, {
          ref: "screenshots/x86_64",
          commit,
        })).status,
        200,
      );
      assert.equal(
        (await call("POST", `/api/v1/build/${b.id}/build_ref`, prefix, {
          ref: "runtime/org.x.Y/x86_64/1",
          commit,
        })).status,
        403,
      );
      assert.deepEqual(
        (await call("GET", `/api/v1/build/${b.id}/build_ref/${ref.id}`, token))
          .json().id,
        ref.id,
      );

      const ext = (await call("GET", `/api/v1/build/${b.id}/extended`, token))
        .json();
      assert.deepEqual(Object.keys(ext), ["build", "build_refs", "checks"]);
      assert.equal(ext.build_refs.length, 2);

      const ids = await call(
        "POST",
        `/api/v1/build/${b.id}/add_extra_ids`,
        token,
        { ids: ["Foo", "Bär.Baz", "Foo"] },
      );
      assert.deepEqual(ids.json().extra_ids, ["Foo", "Bär.Baz"]);
      for (const bad of ["with_underscore", "with-dash", "a..b", ""]) {
        assert.deepEqual(
          (await call("POST", `/api/v1/build/${b.id}/add_extra_ids`, token, {
            ids: [bad],
          })).json(),
          fmErr(400, "generic-error", `Invalid extra id ${bad}`),
        );
      }

      const legacy =
        (await call("POST", "/api/v1/build", token, { repo: "stable" })).json();
      const list =
        (await call("GET", "/api/v1/build?app-id=org.example.Hello", token))
          .json();
      assert.deepEqual(list.map((x: { id: number }) => x.id), [b.id]);
      assert.deepEqual(
        (await call("GET", "/api/v1/build", token)).json().map((
          x: { id: number },
        ) => x.id),
        [legacy.id],
      );
      assert.equal(
        (await call(
          "GET",
          "/api/v1/build",
          await a.token({ scope: ["download"] }),
        )).status,
        200,
      );
      void server;
    } finally {
      await server.shutdown();
      await a.close();
    }
  },
);

dbTest(
  "GET missing_objects takes a gzip JSON body and finds objects in the upload and main repos",
  async (db) => {
    const { a, server, call, getWithBody } = await setup(db);
    try {
      const token = await a.token();
      const b = (await call("POST", "/api/v1/build", token, { repo: "stable" }))
        .json();
      // A commit in the main repository: its objects never need uploading.
      const main = join(a.deps.config.dataDir, "repos", "stable");
      const tree = await Deno.makeTempDir();
      await Deno.writeTextFile(join(tree, "f"), "x");
      const commit =
        (await ostree(main, ["commit", "-b", "test/x", `--tree=dir=${tree}`]))
          .trim();
      // And an object "uploaded" into the build's upload repo.
      const upObj = "c".repeat(64);
      const upDir = join(
        a.deps.config.dataDir,
        "builds",
        String(b.id),
        "upload",
        "objects",
        "cc",
      );
      await Deno.mkdir(upDir, { recursive: true });
      await Deno.writeTextFile(join(upDir, `${"c".repeat(62)}.dirtree`), "x");
      const absent = "d".repeat(64) + ".filez";
      const wanted = [
        absent,
        `${commit}.commit`,
        `${upObj}.dirtree`,
        "../../etc/passwd",
        `${"e".repeat(64)}.dirmeta`,
      ];
      const res = await getWithBody(
        `/api/v1/build/${b.id}/missing_objects`,
        token,
        { wanted },
        true,
      );
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json(), {
        missing: [absent, "../../etc/passwd", `${"e".repeat(64)}.dirmeta`],
      });
      const plain = await getWithBody(
        `/api/v1/build/${b.id}/missing_objects`,
        token,
        { wanted: [absent] },
      );
      assert.deepEqual(plain.json(), { missing: [absent] });
      const noScope = await getWithBody(
        `/api/v1/build/${b.id}/missing_objects`,
        await a.token({ scope: ["build"] }),
        { wanted },
      );
      assert.equal(noScope.status, 403);
      const noBody = await rawRequest(
        server.port,
        "GET",
        `/api/v1/build/${b.id}/missing_objects`,
        { Authorization: `Bearer ${token}` },
      );
      assert.equal(noBody.status, 400);
      await Deno.remove(tree, { recursive: true });
    } finally {
      await server.shutdown();
      await a.close();
    }
  },
);

dbTest(
  "purge removes the build's files; a busy build refuses with the message clients accept",
  async (db) => {
    const { a, server, call } = await setup(db);
    try {
      const token = await a.token();
      const b = (await call("POST", "/api/v1/build", token, { repo: "stable" }))
        .json();
      const purged = await call(
        "POST",
        `/api/v1/build/${b.id}/purge`,
        token,
        {},
      );
      assert.equal(purged.status, 200);
      assert.equal(purged.json().repo_state, 5);
      await assert.rejects(
        Deno.stat(join(a.deps.config.dataDir, "builds", String(b.id))),
        Deno.errors.NotFound,
      );
      const again =
        (await call("POST", `/api/v1/build/${b.id}/purge`, token, {})).json();
      assert.equal(again.repo_state, 3);
      assert.match(again.repo_state_reason, /^Failed to Purge build: /);
      const busy =
        (await call("POST", "/api/v1/build", token, { repo: "stable" })).json();
      await db.query("UPDATE builds SET repo_state = 1 WHERE id = $1", [
        busy.id,
      ]);
      assert.deepEqual(
        (await call("POST", `/api/v1/build/${busy.id}/purge`, token, {}))
          .json(),
        fmErr(400, "generic-error", "Can't prune build while in use"),
      );
    } finally {
      await server.shutdown();
      await a.close();
    }
  },
);

dbTest(
  "job polls take a log-offset body in bytes and answer flat-manager's Job",
  async (db) => {
    const { a, server, getWithBody } = await setup(db);
    try {
      const token = await a.token();
      const job = await a.deps.queue.enqueue(
        "update-repo",
        { repo: "stable" },
        { serialKey: "repo:stable" },
      );
      await a.deps.queue.appendLog(job.id, "línea uno\n");
      await a.deps.queue.appendLog(job.id, "two\n");
      const first = await getWithBody(`/api/v1/job/${job.id}`, token, {
        "log-offset": 0,
      });
      assert.equal(first.status, 200, first.text);
      assert.deepEqual(first.json(), {
        id: job.id,
        kind: 2,
        status: 0,
        contents: '{"repo":"stable"}',
        log: "línea uno\ntwo\n",
        start_after: null,
        repo: "stable",
      });
      // Offset 2 falls inside "í" (2 bytes): rounded down, never a 500 (§5.6).
      assert.equal(
        (await getWithBody(`/api/v1/job/${job.id}`, token, { "log-offset": 2 }))
          .json().log,
        "ínea uno\ntwo\n",
      );
      assert.equal(
        (await getWithBody(`/api/v1/job/${job.id}`, token, {
          "log-offset": 11,
        })).json().log,
        "two\n",
      );
      const noBody = await rawRequest(
        server.port,
        "GET",
        `/api/v1/job/${job.id}`,
        { Authorization: `Bearer ${token}` },
      );
      assert.equal(
        JSON.parse(noBody.text()).log,
        "línea uno\ntwo\n",
        "a stripped body counts as {}",
      );
      await a.deps.queue.claim("w", ["update-repo"], 30);
      await a.deps.queue.complete(job.id, "w", { refs: {} });
      const done = (await getWithBody(`/api/v1/job/${job.id}`, token, {}))
        .json();
      assert.equal(done.status, 2);
      assert.equal(done.results, '{"refs":{}}', "results is a JSON string");
      const sub = await getWithBody(
        `/api/v1/job/${job.id}`,
        await a.token({ sub: "build/1" }),
        {},
      );
      assert.equal(sub.status, 403);
      const noJobs = await getWithBody(
        `/api/v1/job/${job.id}`,
        await a.token({ scope: ["build"] }),
        {},
      );
      assert.deepEqual(
        noJobs.json(),
        fmErr(
          403,
          "token-insufficient",
          "Not enough permissions: Not matching scope 'jobs' in token",
        ),
      );
      assert.equal(
        (await getWithBody("/api/v1/job/999999", token, {})).status,
        404,
      );
    } finally {
      await server.shutdown();
      await a.close();
    }
  },
);

dbTest(
  "Prefer: wait holds a job poll or a committing build until it moves (native extension)",
  async (db) => {
    const { a, server, call } = await setup(db);
    try {
      const token = await a.token();
      const job = await a.deps.queue.enqueue("update-repo", { repo: "stable" });
      await a.deps.queue.claim("w", ["update-repo"], 30);
      const poll = (headers: Record<string, string>, offset = 0) =>
        rawRequest(server.port, "GET", `/api/v1/job/${job.id}`, {
          Authorization: `Bearer ${token}`,
          "Content-Type": "application/json",
          ...headers,
        }, new TextEncoder().encode(JSON.stringify({ "log-offset": offset })));
      // Without the header: the immediate answer flat-manager's clients know.
      const plain = await poll({});
      assert.equal(plain.status, 200);
      assert.equal(plain.headers.get("preference-applied"), null);
      assert.equal(JSON.parse(plain.text()).log, "");

      // Nothing new: held until the job logs.
      let answered = false;
      const held = poll({ Prefer: "wait=8" }).then((r) => {
        answered = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(answered, false, "a poll with nothing new is held");
      await a.deps.queue.appendLog(job.id, "step one\n");
      const logged = await held;
      assert.equal(logged.headers.get("preference-applied"), "wait=8");
      assert.equal(JSON.parse(logged.text()).log, "step one\n");

      // Something new already: answered at once, still saying the preference applied.
      const fresh = await poll({ Prefer: "respond-async, wait=3" });
      assert.equal(JSON.parse(fresh.text()).log, "step one\n");
      assert.equal(fresh.headers.get("preference-applied"), "wait=3");

      // A wait with nothing happening ends with the same state; over-long waits are capped.
      const quiet = await poll({ Prefer: "wait=1" }, 9);
      assert.equal(quiet.status, 200);
      assert.equal(JSON.parse(quiet.text()).status, 1);
      assert.equal(
        (await poll({ Prefer: "wait=0" }, 9)).headers.get("preference-applied"),
        null,
        "wait=0 asks for no wait",
      );

      // The end of the job ends a held poll.
      const ending = poll({ Prefer: "wait=600" }, 9);
      await new Promise((r) => setTimeout(r, 100));
      await a.deps.queue.complete(job.id, "w", {});
      const ended = await ending;
      assert.equal(ended.headers.get("preference-applied"), "wait=10");
      assert.equal(JSON.parse(ended.text()).status, 2);

      // A committing build is held until its commit job changes status.
      const b = (await call("POST", "/api/v1/build", token, { repo: "stable" }))
        .json();
      const commit = await a.deps.queue.enqueue("commit", { build: b.id });
      await db.query(
        "UPDATE builds SET repo_state = 1, commit_job_id = $2 WHERE id = $1",
        [b.id, commit.id],
      );
      let extAnswered = false;
      const ext = call(
        "GET",
        `/api/v1/build/${b.id}/extended`,
        token,
        undefined,
        {
          Prefer: "wait=8",
        },
      ).then((r) => {
        extAnswered = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(extAnswered, false, "a committing build is held");
      await a.deps.queue.claim("w", ["commit"], 30);
      await db.query("UPDATE builds SET repo_state = 2 WHERE id = $1", [b.id]);
      await a.deps.queue.complete(commit.id, "w", {});
      const extDone = await ext;
      assert.equal(extDone.headers.get("preference-applied"), "wait=8");
      assert.equal(extDone.json().build.repo_state, 2);

      // A shutdown ends a hold at once rather than waiting out its 10 s.
      const other = await a.deps.queue.enqueue("update-repo", { repo: "x" });
      const heldAtShutdown = rawRequest(
        server.port,
        "GET",
        `/api/v1/job/${other.id}`,
        { Authorization: `Bearer ${token}`, Prefer: "wait=10" },
      );
      await new Promise((r) => setTimeout(r, 200));
      const began = Date.now();
      await server.shutdown();
      const last = await heldAtShutdown;
      assert.equal(last.status, 200);
      assert.equal(JSON.parse(last.text()).status, 0);
      assert.ok(
        Date.now() - began < 5_000,
        "the hold ended with the shutdown, not with its wait",
      );
    } finally {
      await server.shutdown();
      await a.close();
    }
  },
);
