/** The request counters and latency histogram of the exposition text. */
import assert from "node:assert/strict";
import { Metrics } from "./metrics.ts";

Deno.test("request counts and cumulative latency buckets", async () => {
  const m = new Metrics();
  m.observeRequest("GET", "/repo/:name/*", 200, 0.002);
  m.observeRequest("GET", "/repo/:name/*", 200, 0.03);
  m.observeRequest("GET", "/repo/:name/*", 404, 0.3);
  m.observeRequest("HEAD", "/repo/:name/*", 200, 20);
  m.observeRequest("GET", "/api/v1/repos", 200, 0.005);
  const lines = (await m.render()).split("\n");
  const value = (prefix: string) => {
    const l = lines.find((x) => x.startsWith(prefix + " "));
    assert.ok(l, `no line ${prefix}`);
    return Number(l.slice(prefix.length + 1));
  };
  const req = (method: string, route: string, status: number) =>
    value(
      `flatyard_http_requests_total{method="${method}",route="${route}",status="${status}"}`,
    );
  assert.equal(req("GET", "/repo/:name/*", 200), 2);
  assert.equal(req("GET", "/repo/:name/*", 404), 1);
  assert.equal(req("HEAD", "/repo/:name/*", 200), 1);
  assert.equal(req("GET", "/api/v1/repos", 200), 1);
  const bucket = (method: string, route: string, le: string) =>
    value(
      `flatyard_http_request_duration_seconds_bucket{method="${method}",route="${route}",le="${le}"}`,
    );
  const wanted: [string, number][] = [
    ["0.005", 1],
    ["0.01", 1],
    ["0.025", 1],
    ["0.05", 2],
    ["0.25", 2],
    ["0.5", 3],
    ["10", 3],
    ["+Inf", 3],
  ];
  for (const [le, n] of wanted) {
    assert.equal(bucket("GET", "/repo/:name/*", le), n, `le=${le}`);
  }
  // A bucket's bound is inclusive; over the largest bound only +Inf counts it.
  assert.equal(bucket("GET", "/api/v1/repos", "0.005"), 1);
  assert.equal(bucket("HEAD", "/repo/:name/*", "10"), 0);
  assert.equal(bucket("HEAD", "/repo/:name/*", "+Inf"), 1);
  assert.equal(
    value(
      'flatyard_http_request_duration_seconds_count{method="GET",route="/repo/:name/*"}',
    ),
    3,
  );
});
