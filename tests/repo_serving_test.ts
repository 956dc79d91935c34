/**
 * Serving real repositories over HTTP (node:http, as in production): content types, validators,
 * conditional GET, Range, HEAD, keep-alive, caching classes, retired deltas, the download
 * statistics hook, and no way to any file the repository does not serve.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { dbTest } from "./support/db.ts";
import { expectJson, testApp } from "./support/app.ts";
import { rawRequest } from "./support/raw_http.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { serveApp } from "../lib/http/node_server.ts";
import { createFastPath } from "../lib/app.ts";
import { RECHECK_MS } from "../lib/http/small_file_cache.ts";
import { ostree, run } from "../lib/ostree/cli.ts";
import { signCommit } from "../lib/ostree/sign.ts";

const IMMUTABLE = "public, max-age=31536000, immutable";
const DAY = "public, max-age=86400";
const SHORT = "public, max-age=300";
const OCTET = "application/octet-stream";
const SECRETS = ["TOP-SECRET-OUTSIDE", "TMP-SECRET", "HIDDEN-SECRET"];

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await walk(p));
    else if (e.isFile) out.push(p);
  }
  return out;
}

/** Sends two requests on one connection; returns both status lines. */
async function twoOnOneConnection(
  port: number,
  paths: [string, string],
): Promise<string[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const statuses: string[] = [];
  let buf = new Uint8Array(0);
  const readMore = async () => {
    const chunk = new Uint8Array(65536);
    const n = await conn.read(chunk);
    if (n === null) throw new Error("Connection closed early");
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
  };
  try {
    for (const [i, path] of paths.entries()) {
      const close = i === paths.length - 1 ? "close" : "keep-alive";
      await conn.write(
        enc.encode(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: ${close}\r\n\r\n`,
        ),
      );
      let end = -1;
      while ((end = dec.decode(buf).indexOf("\r\n\r\n")) < 0) await readMore();
      const head = dec.decode(buf).slice(0, end);
      const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? "0");
      while (buf.length < end + 4 + length) await readMore();
      statuses.push(head.split("\r\n")[0]!);
      buf = buf.slice(end + 4 + length);
    }
  } finally {
    conn.close();
  }
  return statuses;
}

/** Response headers that differ between two answers by design, or are the transport's framing. */
const PER_RESPONSE = new Set([
  "date",
  "x-request-id",
  "connection",
  "keep-alive",
  "transfer-encoding",
]);

function comparable(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((v, k) => {
    if (!PER_RESPONSE.has(k)) out[k] = v;
  });
  return out;
}

// Every step runs twice: through the app alone, and with the fast path main.ts serves with
// (routes/repo_files.ts), which must answer exactly as the app does.
for (const mode of ["app", "fast path"] as const) {
  dbTest(
    `GET /repo/<name>/<path> answers with correct HTTP and never another file (${mode})`,
    async (db, t) => {
      // Objects looked at again as often as other files: the pruning steps wait that long.
      const a = await testApp(db, {
        env: { FLATYARD_OBJECT_RECHECK_SECONDS: String(RECHECK_MS / 1000) },
      });
      let fastAnswers = 0;
      const fast = createFastPath(a.deps);
      const server = await serveApp(a.app, {
        hostname: "127.0.0.1",
        port: 0,
        ...(mode === "fast path"
          ? {
            fastPath: async (req, res) => {
              const done = await fast(req, res);
              if (done) fastAnswers++;
              return done;
            },
          }
          : {}),
      });
      const base = `http://127.0.0.1:${server.port}`;
      await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
      const observed: [string, string][] = [];
      a.deps.downloads = {
        observe: (repo, path) => observed.push([repo, path]),
      };
      try {
        await a.user("root", "admin");
        const s = await a.login("root");
        for (
          const body of [{ name: "main" }, { name: "hidden", public: false }]
        ) {
          await expectJson(
            await a.req("POST", "/api/v1/repos", { token: s, body }),
            201,
          );
        }
        const key = await expectJson(
          await a.req("POST", "/api/v1/repos/main/keys", {
            token: s,
            body: { generate: { algorithm: "eddsa-legacy" } },
          }),
          201,
        );
        assert.ok(key.fingerprint);
        const data = a.deps.config.dataDir;
        const repo = join(data, "repos", "main");
        const hidden = join(data, "repos", "hidden");
        const repoId = (await db.query<{ id: number }>(
          "SELECT id FROM repos WHERE name = 'main'",
        ))[0]!.id;
        const signer = (await a.deps.repoKeys.signer(repoId, "repo"))!;
        await ostree(repo, ["pull-local", fixture.repo, ...fixture.refs]);
        // Signed before the deltas are made: superblocks embed the detached metadata.
        for (const ref of fixture.refs) {
          await signCommit(repo, fixture.commits[ref]!, signer);
        }
        await run("flatpak", [
          "build-update-repo",
          "--no-update-appstream",
          "--generate-static-deltas",
          repo,
        ]);
        const appRef = fixture.refs.find((r) => r.startsWith("app/"))!;
        await ostree(hidden, ["pull-local", fixture.repo, appRef]);

        const files = (await walk(repo)).map((f) => relative(repo, f));
        const find = (re: RegExp) => {
          const f = files.find((p) => re.test(p));
          assert.ok(f, `the repository has a file matching ${re}`);
          return f;
        };
        const tip = fixture.commits[appRef]!;
        const commit = `objects/${tip.slice(0, 2)}/${tip.slice(2)}.commit`;
        const superblock = find(/^deltas\/.+\/superblock$/);
        const sizes = await Promise.all(
          files.map(async (f) =>
            [f, (await Deno.stat(join(repo, f))).size] as const
          ),
        );
        const served = sizes.filter(([f]) => /^(objects|deltas)\//.test(f));
        const [large, largeSize] = served.reduce((
          x,
          y,
        ) => (y[1] > x[1] ? y : x));
        const [small, smallSize] = served.find(([, n]) => n > 200 && n < 4096)!;
        assert.ok(
          largeSize > 200_000,
          `${large} is large (${largeSize} bytes)`,
        );

        // Secrets the server must never hand out, each in a place a path could try to reach.
        await Deno.writeTextFile(
          join(data, "secret.txt"),
          "TOP-SECRET-OUTSIDE",
        );
        await Deno.mkdir(join(data, "outdir"));
        await Deno.writeTextFile(
          join(data, "outdir", "secret.txt"),
          "TOP-SECRET-OUTSIDE",
        );
        await Deno.symlink(
          join(data, "secret.txt"),
          join(repo, "refs/heads/escape"),
        );
        await Deno.symlink(join(data, "outdir"), join(repo, "objects/zz"));
        await Deno.symlink(
          join(data, "outdir"),
          join(repo, "summaries/escdir"),
        );
        await Deno.writeTextFile(
          join(repo, "tmp", "secret-in-tmp"),
          "TMP-SECRET",
        );
        await Deno.symlink(
          join(repo, "tmp", "secret-in-tmp"),
          join(repo, "refs/heads/to-tmp"),
        );
        await Deno.writeTextFile(
          join(repo, "objects", ".hidden"),
          "HIDDEN-SECRET",
        );
        await Deno.mkdir(join(repo, "tmp", "refs", "heads"), {
          recursive: true,
        });
        await Deno.writeTextFile(
          join(repo, "tmp", "refs", "heads", "only-in-tmp"),
          "TMP-SECRET",
        );

        await t.step(
          "every class of file: type, caching class, validators and exact bytes",
          async () => {
            const table: [string, string][] = [
              [commit, IMMUTABLE],
              [find(/\.dirtree$/), IMMUTABLE],
              [find(/\.dirmeta$/), IMMUTABLE],
              [find(/\.filez$/), IMMUTABLE],
              [find(/\.commitmeta$/), DAY],
              [find(/^summaries\/[0-9a-f]{64}\.gz$/), IMMUTABLE],
              [superblock, IMMUTABLE],
              [find(/^deltas\/.+\/0$/), IMMUTABLE],
              [find(/^delta-indexes\/.+\.index$/), SHORT],
              ["summary", SHORT],
              ["summary.idx", SHORT],
              ["config", SHORT],
              [`refs/heads/${appRef}`, SHORT],
            ];
            for (const [path, cache] of table) {
              // Clients that accept gzip still get the bytes as stored.
              const res = await fetch(`${base}/repo/main/${path}`, {
                headers: { "Accept-Encoding": "gzip, br, zstd" },
              });
              const body = new Uint8Array(await res.arrayBuffer());
              const info = await Deno.stat(join(repo, path));
              assert.equal(res.status, 200, path);
              assert.equal(res.headers.get("content-type"), OCTET, path);
              assert.equal(res.headers.get("cache-control"), cache, path);
              assert.equal(res.headers.get("content-encoding"), null, path);
              assert.equal(
                res.headers.get("content-length"),
                String(info.size),
                path,
              );
              assert.equal(res.headers.get("accept-ranges"), "bytes", path);
              assert.match(
                res.headers.get("etag") ?? "",
                /^"[0-9a-f-]+"$/,
                path,
              );
              assert.equal(
                res.headers.get("last-modified"),
                info.mtime!.toUTCString(),
                path,
              );
              assert.deepEqual(
                body,
                await Deno.readFile(join(repo, path)),
                path,
              );
            }
          },
        );

        await t.step("a different file has a different ETag", async () => {
          const one = await fetch(`${base}/repo/main/summary`);
          const two = await fetch(`${base}/repo/main/config`);
          await one.body?.cancel();
          await two.body?.cancel();
          assert.notEqual(one.headers.get("etag"), two.headers.get("etag"));
        });

        const first = await fetch(`${base}/repo/main/summary`);
        await first.body?.cancel();
        const etag = first.headers.get("etag")!;
        const lastModified = first.headers.get("last-modified")!;
        const conditionals: [string, Record<string, string>, number][] = [
          ["matching If-None-Match", { "If-None-Match": etag }, 304],
          ["weak form of the ETag", { "If-None-Match": `W/${etag}` }, 304],
          ["If-None-Match in a list", { "If-None-Match": `"x", ${etag}` }, 304],
          ["If-None-Match: *", { "If-None-Match": "*" }, 304],
          ["other ETag", { "If-None-Match": '"other"' }, 200],
          ["If-Modified-Since the Last-Modified", {
            "If-Modified-Since": lastModified,
          }, 304],
          ["If-Modified-Since later", {
            "If-Modified-Since": new Date(Date.now() + 86400_000).toUTCString(),
          }, 304],
          ["If-Modified-Since earlier", {
            "If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT",
          }, 200],
          [
            "If-None-Match wins over If-Modified-Since",
            { "If-None-Match": '"other"', "If-Modified-Since": lastModified },
            200,
          ],
        ];
        for (const [name, headers, status] of conditionals) {
          await t.step(`conditional GET: ${name} -> ${status}`, async () => {
            const res = await rawRequest(
              server.port,
              "GET",
              "/repo/main/summary",
              headers,
            );
            assert.equal(res.status, status);
            if (status === 304) {
              assert.equal(res.body.length, 0);
              assert.equal(res.headers.get("etag"), etag);
              assert.equal(res.headers.get("cache-control"), SHORT);
            } else {
              assert.deepEqual(
                res.body,
                await Deno.readFile(join(repo, "summary")),
              );
            }
          });
        }

        for (
          const [path, size] of [[large, largeSize], [
            small,
            smallSize,
          ]] as const
        ) {
          const bytes = await Deno.readFile(join(repo, path));
          const ranges: [string, number, [number, number] | undefined][] = [
            ["bytes=0-99", 206, [0, 99]],
            ["bytes=100-", 206, [100, size - 1]],
            ["bytes=-100", 206, [size - 100, size - 1]],
            [`bytes=${size - 150}-${size + 1000}`, 206, [size - 150, size - 1]],
            ["bytes=0-0", 206, [0, 0]],
            [`bytes=${size}-`, 416, undefined],
            [`bytes=${size + 10}-${size + 20}`, 416, undefined],
            ["bytes=0-9,50-59", 200, undefined],
            ["bytes=abc", 200, undefined],
            ["items=0-9", 200, undefined],
          ];
          if (size > 150_000) {
            ranges.push(["bytes=70000-140000", 206, [70000, 140000]]);
          }
          for (const [range, status, span] of ranges) {
            await t.step(
              `Range ${range} on ${size} bytes -> ${status}`,
              async () => {
                const res = await rawRequest(
                  server.port,
                  "GET",
                  `/repo/main/${path}`,
                  { Range: range },
                );
                assert.equal(res.status, status);
                if (status === 416) {
                  assert.equal(
                    res.headers.get("content-range"),
                    `bytes */${size}`,
                  );
                  assert.equal(res.body.length, 0);
                } else if (span) {
                  assert.equal(
                    res.headers.get("content-range"),
                    `bytes ${span[0]}-${span[1]}/${size}`,
                  );
                  assert.equal(
                    res.headers.get("content-length"),
                    String(span[1] - span[0] + 1),
                  );
                  assert.deepEqual(
                    res.body,
                    bytes.subarray(span[0], span[1] + 1),
                  );
                } else {
                  assert.equal(res.headers.get("content-range"), null);
                  assert.deepEqual(res.body, bytes);
                }
              },
            );
          }
        }

        await t.step(
          "If-Range: a matching ETag keeps the Range, another one gets the whole file",
          async () => {
            const head = await fetch(`${base}/repo/main/${small}`, {
              method: "HEAD",
            });
            const tag = head.headers.get("etag")!;
            const hit = await rawRequest(
              server.port,
              "GET",
              `/repo/main/${small}`,
              {
                Range: "bytes=0-9",
                "If-Range": tag,
              },
            );
            assert.equal(hit.status, 206);
            assert.equal(hit.body.length, 10);
            const miss = await rawRequest(
              server.port,
              "GET",
              `/repo/main/${small}`,
              {
                Range: "bytes=0-9",
                "If-Range": '"stale"',
              },
            );
            assert.equal(miss.status, 200);
            assert.equal(miss.body.length, smallSize);
          },
        );

        await t.step(
          "HEAD answers the headers with Content-Length and no body",
          async () => {
            const res = await rawRequest(
              server.port,
              "HEAD",
              `/repo/main/${large}`,
              {},
            );
            assert.equal(res.status, 200);
            assert.equal(res.headers.get("content-length"), String(largeSize));
            assert.equal(res.headers.get("cache-control"), IMMUTABLE);
            assert.ok(res.headers.get("etag"));
            assert.equal(res.body.length, 0);
            const ranged = await rawRequest(
              server.port,
              "HEAD",
              `/repo/main/${large}`,
              { Range: "bytes=-10" },
            );
            assert.equal(ranged.status, 206);
            assert.equal(ranged.headers.get("content-length"), "10");
            assert.equal(ranged.body.length, 0);
          },
        );

        await t.step("a connection is kept alive across requests", async () => {
          const statuses = await twoOnOneConnection(server.port, [
            `/repo/main/${small}`,
            "/repo/main/config",
          ]);
          assert.deepEqual(statuses, ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
        });

        await t.step(
          "a private repository's files keep their class, made private",
          async () => {
            const token = await a.token({
              scope: ["download"],
              repos: ["hidden"],
            });
            const table: [string, string][] = [
              ["config", "private, max-age=300"],
              [commit, "private, max-age=31536000, immutable"],
            ];
            for (const [path, cache] of table) {
              const res = await fetch(`${base}/repo/hidden/${path}`, {
                headers: { Authorization: `Bearer ${token}` },
              });
              await res.body?.cancel();
              assert.equal(res.status, 200, path);
              assert.equal(res.headers.get("cache-control"), cache, path);
            }
            const anon = await fetch(`${base}/repo/hidden/config`);
            await anon.body?.cancel();
            assert.equal(anon.status, 401);
          },
        );

        const refused: [string, string][] = [
          ["dot-dot", "/repo/main/../../secret.txt"],
          ["dot-dot under objects", "/repo/main/objects/../../../secret.txt"],
          [
            "dot-dot under refs",
            "/repo/main/refs/heads/../../../../secret.txt",
          ],
          ["encoded dot-dot", "/repo/main/%2e%2e/%2e%2e/secret.txt"],
          [
            "encoded dot-dot under objects",
            "/repo/main/objects/%2e%2e/%2e%2e/%2e%2e/secret.txt",
          ],
          ["encoded slashes", "/repo/main/..%2f..%2fsecret.txt"],
          [
            "encoded slash after a top entry",
            "/repo/main/objects%2f..%2f..%2f..%2fsecret.txt",
          ],
          ["upper-case encoding", "/repo/main/%2E%2E%2F%2E%2E%2Fsecret.txt"],
          [
            "double-encoded dots",
            "/repo/main/%252e%252e/%252e%252e/secret.txt",
          ],
          ["double-encoded slashes", "/repo/main/..%252f..%252fsecret.txt"],
          ["backslashes", "/repo/main/..\\..\\secret.txt"],
          [
            "backslashes under objects",
            "/repo/main/objects\\..\\..\\..\\secret.txt",
          ],
          ["encoded backslashes", "/repo/main/%5c..%5c..%5csecret.txt"],
          ["encoded NUL", "/repo/main/config%00"],
          [
            "encoded NUL before a suffix",
            "/repo/main/refs/heads/escape%00.txt",
          ],
          ["raw NUL", "/repo/main/config\u0000"],
          ["symlink to a file outside", "/repo/main/refs/heads/escape"],
          ["symlinked directory outside", "/repo/main/objects/zz/secret.txt"],
          [
            "another symlinked directory",
            "/repo/main/summaries/escdir/secret.txt",
          ],
          ["symlink into tmp/", "/repo/main/refs/heads/to-tmp"],
          ["hidden file", "/repo/main/objects/.hidden"],
          ["tmp/", "/repo/main/tmp/secret-in-tmp"],
          ["tmp/ deltas directly", `/repo/main/tmp/${superblock}`],
          ["state/", "/repo/main/state/x"],
          [".lock", "/repo/main/.lock"],
          ["a directory", "/repo/main/objects"],
          ["a directory with a slash", "/repo/main/objects/"],
          ["a nested directory", `/repo/main/${commit.slice(0, 10)}`],
          ["the deltas directory", "/repo/main/deltas/"],
          ["empty segment", "/repo/main//etc/passwd"],
          ["absolute path in a segment", "/repo/main/%2fetc%2fpasswd"],
          ["over-long path", `/repo/main/objects/${"a/".repeat(700)}x`],
          ["over-long segment", `/repo/main/objects/${"a".repeat(5000)}`],
          [
            "non-delta path never falls back to tmp/",
            "/repo/main/refs/heads/only-in-tmp",
          ],
          ["unknown top-level entry", "/repo/main/secret.txt"],
        ];
        assert.ok(refused.length >= 20);
        for (const [name, path] of refused) {
          await t.step(`refused: ${name}`, async () => {
            const res = await rawRequest(server.port, "GET", path, {});
            const text = res.text();
            assert.ok(
              [400, 404].includes(res.status),
              `${path}: ${res.status}`,
            );
            for (const secret of SECRETS) {
              assert.ok(!text.includes(secret), path);
            }
            assert.ok(!text.includes("root:x:"), path);
            assert.ok(!text.includes("[core]"), path);
          });
        }

        await t.step(
          "a retired delta is served from tmp/deltas for its hour",
          async () => {
            const dir = superblock.replace(/\/superblock$/, "");
            const rel = dir.slice("deltas/".length);
            const before = await Deno.readFile(join(repo, superblock));
            // As update-repo does (lib/builds/deltas.ts): deltas/<rel> -> tmp/deltas/<rel>.
            await Deno.mkdir(join(repo, "tmp", "deltas", rel, ".."), {
              recursive: true,
            });
            await Deno.rename(
              join(repo, dir),
              join(repo, "tmp", "deltas", rel),
            );
            const res = await fetch(`${base}/repo/main/${superblock}`);
            assert.equal(res.status, 200);
            assert.equal(res.headers.get("cache-control"), IMMUTABLE);
            assert.deepEqual(new Uint8Array(await res.arrayBuffer()), before);
            const ranged = await rawRequest(
              server.port,
              "GET",
              `/repo/main/${superblock}`,
              { Range: "bytes=0-3" },
            );
            assert.equal(ranged.status, 206);
            assert.deepEqual(ranged.body, before.subarray(0, 4));
            const gone = await fetch(
              `${base}/repo/main/deltas/${rel}-nope/superblock`,
            );
            await gone.body?.cancel();
            assert.equal(gone.status, 404);
          },
        );

        await t.step(
          "downloads are observed for GET 200 and 206 only",
          async () => {
            observed.length = 0;
            const get = async (
              method: string,
              headers: Record<string, string> = {},
              path = "config",
            ) => {
              const res = await rawRequest(
                server.port,
                method,
                `/repo/main/${path}`,
                headers,
              );
              return res.status;
            };
            assert.equal(await get("GET"), 200);
            assert.equal(await get("GET", { Range: "bytes=0-3" }), 206);
            assert.equal(await get("HEAD"), 200);
            assert.equal(await get("GET", { "If-None-Match": "*" }), 304);
            assert.equal(await get("GET", { Range: "bytes=99999999-" }), 416);
            assert.equal(await get("GET", {}, "refs/heads/nope"), 404);
            const token = await a.token({
              scope: ["download"],
              repos: ["hidden"],
            });
            const res = await rawRequest(
              server.port,
              "GET",
              "/repo/hidden/config",
              {
                Authorization: `Bearer ${token}`,
              },
            );
            assert.equal(res.status, 200);
            assert.deepEqual(observed, [
              ["main", "config"],
              ["main", "config"],
              [
                "hidden",
                "config",
              ],
            ]);
          },
        );

        await t.step(
          "the same headers as the app's own answer, and the client's request ID",
          async () => {
            const token = await a.token({
              scope: ["download"],
              repos: ["hidden"],
            });
            const cases: [string, Record<string, string>][] = [
              ["/repo/main/config", {}],
              [`/repo/main/${commit}`, {}],
              [`/repo/main/${small}`, { Range: "bytes=1-2" }],
              [`/repo/main/${large}`, {}],
              ["/repo/main/config", { "If-None-Match": "*" }],
              ["/repo/main/config", { Range: "bytes=99999999-" }],
              ["/repo/hidden/config", { Authorization: `Bearer ${token}` }],
              ["/repo/hidden/config", {}],
              ["/repo/main/refs/heads/nope", {}],
            ];
            for (const [path, headers] of cases) {
              const viaServer = await fetch(`${base}${path}`, { headers });
              const viaApp = await a.app.request(path, { headers });
              const label = `${path} ${JSON.stringify(headers)}`;
              assert.equal(viaServer.status, viaApp.status, label);
              assert.deepEqual(
                comparable(viaServer.headers),
                comparable(viaApp.headers),
                label,
              );
              assert.deepEqual(
                new Uint8Array(await viaServer.arrayBuffer()),
                new Uint8Array(await viaApp.arrayBuffer()),
                label,
              );
            }
            const res = await fetch(`${base}/repo/main/config`, {
              headers: { "X-Request-Id": "ci-run-42" },
            });
            await res.body?.cancel();
            assert.equal(res.headers.get("x-request-id"), "ci-run-42");
            assert.equal(res.headers.get("x-content-type-options"), "nosniff");
          },
        );

        await t.step(
          "a change of visibility or a deletion applies to the next download",
          async () => {
            const status = async (path: string) => {
              const res = await fetch(`${base}${path}`);
              await res.body?.cancel();
              return res.status;
            };
            // Warm the row cache first: the change must reach it at once, not after its TTL.
            assert.equal(await status("/repo/hidden/config"), 401);
            assert.equal(await status("/repo/main/config"), 200);
            for (
              const [visible, expected] of [[true, 200], [false, 401]] as const
            ) {
              await expectJson(
                await a.req("PATCH", "/api/v1/repos/hidden", {
                  token: s,
                  body: { public: visible },
                }),
                200,
              );
              assert.equal(await status("/repo/hidden/config"), expected);
            }
            await expectJson(
              await a.req("DELETE", "/api/v1/repos/hidden?confirm=hidden", {
                token: s,
              }),
              202,
            );
            assert.equal(await status("/repo/hidden/config"), 404);
          },
        );

        await t.step(
          "a repeated plain GET gets the same answer, which ends with its file or visibility",
          async () => {
            const object = find(/^objects\/.+\.dirtree$/);
            const path = `/repo/main/${object}`;
            const viaApp = await a.app.request(path);
            const want = {
              headers: comparable(viaApp.headers),
              body: new Uint8Array(await viaApp.arrayBuffer()),
            };
            // The third GET onwards is written from the answer kept by the fast path.
            for (let i = 0; i < 4; i++) {
              const res = await fetch(`${base}${path}`);
              assert.equal(res.status, 200);
              assert.deepEqual(
                comparable(res.headers),
                want.headers,
                `GET ${i}`,
              );
              assert.deepEqual(
                new Uint8Array(await res.arrayBuffer()),
                want.body,
              );
              assert.match(
                res.headers.get("x-request-id") ?? "",
                /^[0-9a-f-]{36}$/,
              );
            }
            const ranged = await rawRequest(server.port, "GET", path, {
              Range: "bytes=0-1",
            });
            assert.equal(ranged.status, 206);
            assert.deepEqual(ranged.body, want.body.subarray(0, 2));
            const etag = want.headers["etag"]!;
            const fresh = await rawRequest(server.port, "GET", path, {
              "If-None-Match": etag,
            });
            assert.equal(fresh.status, 304);
            const head = await rawRequest(server.port, "HEAD", path, {});
            assert.equal(head.status, 200);
            assert.equal(head.body.length, 0);
            assert.equal(
              head.headers.get("content-length"),
              String(want.body.length),
            );
            const commitGets = observed.length;
            for (let i = 0; i < 3; i++) {
              const res = await fetch(`${base}/repo/main/${commit}`);
              await res.body?.cancel();
            }
            assert.equal(
              observed.length - commitGets,
              3,
              "every GET of a commit object reaches the download statistics",
            );
            const status = async () => {
              const res = await fetch(`${base}${path}`);
              await res.body?.cancel();
              return res.status;
            };
            for (
              const [visible, expected] of [[false, 401], [true, 200]] as const
            ) {
              await expectJson(
                await a.req("PATCH", "/api/v1/repos/main", {
                  token: s,
                  body: { public: visible },
                }),
                200,
              );
              assert.equal(await status(), expected, `public: ${visible}`);
            }
            // Pruned: no longer answered once its file is due for a look.
            await Deno.rename(join(repo, object), join(data, "pruned-object"));
            try {
              await new Promise((r) => setTimeout(r, RECHECK_MS + 50));
              assert.equal(await status(), 404);
            } finally {
              await Deno.rename(
                join(data, "pruned-object"),
                join(repo, object),
              );
            }
            assert.equal(await status(), 200);
          },
        );

        await t.step(
          "small objects are served from memory while they are the file on disk",
          async () => {
            const cache = a.deps.fileCache;
            const get = async () => {
              const res = await fetch(`${base}/repo/main/${commit}`);
              return {
                status: res.status,
                etag: res.headers.get("etag"),
                body: new Uint8Array(await res.arrayBuffer()),
              };
            };
            const first = await get();
            const hits = cache.hits;
            const again = await get();
            assert.equal(cache.hits, hits + 1, "the second GET is a hit");
            assert.deepEqual(again, first);
            assert.deepEqual(
              first.body,
              await Deno.readFile(join(repo, commit)),
            );
            // Pruned: gone from memory as soon as it is due for a check.
            await Deno.rename(join(repo, commit), join(data, "pruned"));
            try {
              await new Promise((r) => setTimeout(r, RECHECK_MS + 50));
              assert.equal((await get()).status, 404);
            } finally {
              await Deno.rename(join(data, "pruned"), join(repo, commit));
            }
            assert.deepEqual((await get()).body, first.body);
            assert.ok(cache.size <= 64 * 1024 * 1024);
          },
        );

        if (mode === "fast path") {
          assert.ok(fastAnswers > 50, `the fast path answered ${fastAnswers}`);
        }
      } finally {
        await server.shutdown();
        await a.close();
      }
    },
  );
}
