/**
 * The flat-manager client's requests, error parsing and retries, through an in-process transport
 * (the wire itself is covered by push_test.ts against a real HTTP server).
 */
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { apiUrlOf, FlatManagerClient } from "./flat_manager_client.ts";
import {
  FlatManagerApiError,
  IncompleteUploadError,
} from "./flat_manager_errors.ts";
import {
  ConnectionError,
  type HttpRequest,
  type HttpResponse,
} from "./http_transport.ts";
import { withRetry } from "./retry.ts";

const BUILD = "http://fm.test/api/v1/build/7";
const enc = new TextEncoder();

const reply = (
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => ({
  status,
  headers: new Headers({
    "content-type": typeof body === "string"
      ? "text/plain"
      : "application/json",
    ...headers,
  }),
  body: enc.encode(typeof body === "string" ? body : JSON.stringify(body)),
});
const JOB = { id: 1, kind: 0, status: 0, contents: "{}", log: "" };
const BUILD_JSON = { id: 7, repo_state: 0, published_state: 0, repo: "stable" };

type Answer = HttpResponse | Error | ((req: HttpRequest) => HttpResponse);

/** A client whose transport answers from `answers` in turn (the last one repeats). */
function fakeClient(answers: Answer[], opts: { managerUrl?: string } = {}) {
  const requests: HttpRequest[] = [];
  const sleeps: number[] = [];
  const client = new FlatManagerClient({
    token: "tok",
    ...opts,
    retry: {
      initialDelayMs: 10,
      maxDelayMs: 40,
      maxElapsedMs: 1000,
      // Time passes only by sleeping, so the give-up point is exact.
      now: () => sleeps.reduce((a, b) => a + b, 0),
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
      random: () => 0.5,
    },
    transport: (req) => {
      requests.push(req);
      const a = answers[Math.min(requests.length - 1, answers.length - 1)]!;
      if (a instanceof Error) return Promise.reject(a);
      return Promise.resolve(typeof a === "function" ? a(req) : a);
    },
  });
  const json = (i: number) => {
    const body = requests[i]!.body as Uint8Array;
    const gz = requests[i]!.headers["Content-Encoding"] === "gzip";
    return JSON.parse(new TextDecoder().decode(gz ? gunzipSync(body) : body));
  };
  return { client, requests, sleeps, json };
}

Deno.test("requests carry the bodies and headers flat-manager expects", async (t) => {
  await t.step(
    "createBuild posts kebab-case and returns the Location",
    async () => {
      const { client, requests, json } = fakeClient([
        reply(200, BUILD_JSON, { location: "/api/v1/build/7" }),
      ], { managerUrl: "http://fm.test/" });
      const { value, location } = await client.createBuild("stable", {
        appId: "org.example.App",
        publicDownload: false,
        buildLogUrl: "http://log",
      });
      assert.equal(value.id, 7);
      assert.equal(location, BUILD);
      assert.equal(requests[0]!.url, "http://fm.test/api/v1/build");
      assert.equal(requests[0]!.headers.Authorization, "Bearer tok");
      assert.deepEqual(json(0), {
        repo: "stable",
        "app-id": "org.example.App",
        "public-download": false,
        "build-log-url": "http://log",
      });
      await assert.rejects(
        fakeClient([]).client.createBuild("stable"),
        /without a manager URL/,
      );
    },
  );

  await t.step(
    "missingObjects sends gzip JSON GETs of 2000 names",
    async () => {
      const names = Array.from(
        { length: 4500 },
        (_, i) => `${i}`.padStart(64, "0") + ".filez",
      );
      const { client, requests, json } = fakeClient([
        (req) => {
          const wanted: string[] = JSON.parse(
            new TextDecoder().decode(gunzipSync(req.body as Uint8Array)),
          ).wanted;
          return reply(200, {
            missing: wanted.filter((_, i) => i % 2 === 0),
          });
        },
      ]);
      const missing = await client.missingObjects(BUILD, names);
      assert.deepEqual(missing, names.filter((_, i) => i % 2 === 0));
      assert.deepEqual(requests.map((_, i) => json(i).wanted.length), [
        2000,
        2000,
        500,
      ]);
      for (const r of requests) {
        assert.equal(r.method, "GET");
        assert.equal(r.url, `${BUILD}/missing_objects`);
        assert.equal(r.headers["Content-Encoding"], "gzip");
        assert.equal(r.headers["Content-Type"], "application/json");
      }
      assert.deepEqual(await client.missingObjects(BUILD, []), []);
    },
  );

  await t.step(
    "build_ref, extra ids, commit, publish, job and purge bodies",
    async () => {
      const { client, requests, json } = fakeClient([
        reply(200, {
          id: 1,
          build_id: 7,
          ref_name: "app/a.b.C/x86_64/master",
          commit: "c",
        }),
        reply(200, BUILD_JSON),
        reply(200, JOB, { location: `${BUILD}/commit` }),
        reply(200, JOB),
        reply(200, JOB, { location: `${BUILD}/publish` }),
        reply(200, JOB),
        reply(200, JOB),
      ]);
      await client.createBuildRef(BUILD, "app/a.b.C/x86_64/master", "c");
      await client.addExtraIds(BUILD, ["a.b.C.Locale"]);
      const commit = await client.commit(BUILD, {
        endoflife: "old",
        tokenType: 1,
      });
      await client.commit(BUILD);
      const publish = await client.publish(BUILD);
      await client.getJob(`${BUILD}/commit`, 12);
      await client.getJob("http://fm.test/api/v1/job/3");
      assert.deepEqual(json(0), {
        ref: "app/a.b.C/x86_64/master",
        commit: "c",
        "build-log-url": null,
      });
      assert.deepEqual(json(1), { ids: ["a.b.C.Locale"] });
      assert.deepEqual(json(2), {
        endoflife: "old",
        endoflife_rebase: null,
        token_type: 1,
      });
      assert.deepEqual(json(3), { endoflife: null, endoflife_rebase: null });
      assert.deepEqual(json(4), {});
      assert.deepEqual([requests[5]!.method, json(5)], ["GET", {
        "log-offset": 12,
      }]);
      assert.deepEqual([requests[6]!.method, json(6)], ["GET", {}]);
      assert.equal(requests[6]!.headers["Content-Type"], "application/json");
      assert.equal(commit.location, `${BUILD}/commit`);
      assert.equal(publish.location, `${BUILD}/publish`);
    },
  );

  await t.step(
    "purge in use and extended on an old server are not errors",
    async () => {
      const inUse = {
        status: 400,
        "error-type": "generic-error",
        message: "Can't prune build while in use",
      };
      const { client } = fakeClient([
        reply(400, inUse),
        reply(404, {
          status: 404,
          "error-type": "not-found",
          message: "Not found",
        }),
      ]);
      assert.equal(await client.purge(BUILD), null);
      assert.equal(await client.getBuildExtended(BUILD), null);
    },
  );

  await t.step(
    "the API root of a build URL drops its last two segments",
    () => {
      assert.equal(apiUrlOf("https://h/api/v1/build/7"), "https://h/api/v1");
      assert.equal(
        apiUrlOf("https://h/prefix/api/v1/build/7/"),
        "https://h/prefix/api/v1",
      );
    },
  );
});

Deno.test("errors are parsed from flat-manager's JSON body or wrapped", async (t) => {
  await t.step("a wrong-state error keeps its type and states", async () => {
    const { client, requests } = fakeClient([reply(400, {
      status: 400,
      "error-type": "wrong-published-state",
      message: "Build has already been published",
      "current-state": "published",
      "expected-state": "unpublished",
    })]);
    const e = await client.publish(BUILD).then(() => null, (e) => e);
    assert.ok(e instanceof FlatManagerApiError);
    assert.equal(e.status, 400);
    assert.equal(e.errorType, "wrong-published-state");
    assert.equal(e.currentState, "published");
    assert.equal(e.body["expected-state"], "unpublished");
    assert.equal(e.url, `${BUILD}/publish`);
    assert.equal(requests.length, 1, "4xx is never retried");
  });

  await t.step("a plain-text error becomes a no-error message", async () => {
    const { client } = fakeClient([reply(413, "Payload too large")]);
    const e = await client.getBuild(BUILD).then(() => null, (e) => e);
    assert.ok(e instanceof FlatManagerApiError);
    assert.equal(e.errorType, "no-error");
    assert.equal(
      e.body.message,
      "Non-json error from server: Payload too large",
    );
  });

  await t.step("a 200 that is not the expected JSON is an error", async () => {
    const { client } = fakeClient([reply(200, "<html>")]);
    await assert.rejects(
      client.getBuild(BUILD),
      /Cannot parse the response of/,
    );
  });
});

Deno.test("retries: 5xx and lost connections with backoff, capped in time", async (t) => {
  await t.step("a 503 and a reset are retried until success", async () => {
    const { client, requests, sleeps } = fakeClient([
      reply(503, "busy"),
      new ConnectionError("reset", "ECONNRESET"),
      reply(200, BUILD_JSON),
    ]);
    assert.equal((await client.getBuild(BUILD)).id, 7);
    assert.equal(requests.length, 3);
    // random() = 0.5: delays are 3/4 of a cap that doubles from 10 ms.
    assert.deepEqual(sleeps, [7.5, 15]);
  });

  await t.step(
    "delays stay under the cap and the retries stop at the time limit",
    async () => {
      const { client, requests, sleeps } = fakeClient([
        reply(502, "bad gateway"),
      ]);
      const e = await client.getBuild(BUILD).then(() => null, (e) => e);
      assert.ok(e instanceof FlatManagerApiError && e.status === 502);
      assert.ok(sleeps.every((s) => s <= 40));
      assert.deepEqual(sleeps.slice(0, 4), [7.5, 15, 30, 30]);
      const total = sleeps.reduce((a, b) => a + b, 0);
      assert.ok(total <= 1000 && total + 30 > 1000, `${total}`);
      assert.equal(requests.length, sleeps.length + 1);
    },
  );

  await t.step(
    "an upload answer with the wrong count is retried, then fails",
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "flatyard-client-" });
      try {
        const path = `${dir}/o`;
        await Deno.writeTextFile(path, "data");
        const file = { name: `${"a".repeat(64)}.filez`, path, size: 4 };
        const { client, requests } = fakeClient([
          reply(200, []),
          reply(200, [4]),
        ]);
        assert.deepEqual(await client.upload(BUILD, [file]), [4]);
        assert.equal(requests.length, 2);
        const stuck = fakeClient([reply(200, [])]);
        await assert.rejects(
          stuck.client.upload(BUILD, [file]),
          IncompleteUploadError,
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  );

  await t.step("other errors are not retried", async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(() => {
        calls++;
        return Promise.reject(new TypeError("bug"));
      }, () => false),
      TypeError,
    );
    assert.equal(calls, 1);
  });
});
