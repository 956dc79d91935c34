/**
 * POST /api/v1/build/{id}/upload with the wire formats of both clients (§5.3): every object of
 * a real fixture repository verified and stored; corrupted, misnamed and oversize parts refused
 * with nothing of them kept; re-uploads harmless.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { expectJson, testApp } from "./support/app.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { serveApp } from "../lib/http/node_server.ts";
import { pythonMultipart } from "./support/wire.ts";

async function objectsOf(
  repo: string,
): Promise<{ name: string; path: string }[]> {
  const out: { name: string; path: string }[] = [];
  for await (const d of Deno.readDir(join(repo, "objects"))) {
    for await (const f of Deno.readDir(join(repo, "objects", d.name))) {
      if (/\.(filez|dirtree|dirmeta|commit)$/.test(f.name)) {
        out.push({
          name: d.name + f.name,
          path: join(repo, "objects", d.name, f.name),
        });
      }
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

dbTest(
  "upload stores verified objects from both clients' formats and refuses bad parts",
  async (db, t) => {
    const a = await testApp(db, {
      env: { FLATYARD_MAX_OBJECT_BYTES: String(512 * 1024) },
    });
    const server = await serveApp(a.app, { hostname: "127.0.0.1", port: 0 });
    const base = `http://127.0.0.1:${server.port}`;
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      await a.user("root", "admin");
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: await a.login("root"),
          body: { name: "stable" },
        }),
        201,
      );
      const token = await a.token();
      const build = await (await fetch(`${base}/api/v1/build`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${token}`,
          "Content-Type": "application/json",
        },
        body: JSON.stringify({ repo: "stable" }),
      })).json();
      const upload = join(
        a.deps.config.dataDir,
        "builds",
        String(build.id),
        "upload",
      );
      const post = (body: BodyInit, type: string, tok = token) =>
        fetch(`${base}/api/v1/build/${build.id}/upload`, {
          method: "POST",
          headers: { Authorization: `Bearer ${tok}`, "Content-Type": type },
          body,
        });
      const objects = (await objectsOf(fixture.repo)).filter((o) =>
        Deno.statSync(o.path).size <= 512 * 1024
      );
      const half = Math.ceil(objects.length / 2);

      await t.step(
        "multipart/mixed, as the Python client sends it",
        async () => {
          const files = objects.slice(0, half).map((o) => ({
            name: o.name,
            bytes: Deno.readFileSync(o.path),
          }));
          const { body, type } = pythonMultipart(files);
          const res = await post(body as Uint8Array<ArrayBuffer>, type);
          assert.equal(res.status, 200, await res.clone().text());
          assert.deepEqual(await res.json(), files.map((f) => f.bytes.length));
        },
      );
      await t.step(
        "multipart/form-data, as the Rust client sends it",
        async () => {
          const form = new FormData();
          objects.slice(half).forEach((o, i) =>
            form.append(
              `file${i}`,
              new Blob([Deno.readFileSync(o.path)], {
                type: "application/octet-stream",
              }),
              o.name,
            )
          );
          const req = new Request("http://x/", { method: "POST", body: form });
          const res = await post(
            await req.arrayBuffer(),
            req.headers.get("content-type")!,
          );
          assert.equal(res.status, 200, await res.clone().text());
          assert.equal((await res.json()).length, objects.length - half);
        },
      );
      await t.step("every object landed byte for byte", async () => {
        for (const o of objects) {
          const stored = join(
            upload,
            "objects",
            o.name.slice(0, 2),
            o.name.slice(2),
          );
          assert.deepEqual(
            await Deno.readFile(stored),
            await Deno.readFile(o.path),
            o.name,
          );
        }
      });
      await t.step("re-uploading an object is harmless", async () => {
        const o = objects[0]!;
        const { body, type } = pythonMultipart([{
          name: o.name,
          bytes: Deno.readFileSync(o.path),
        }]);
        assert.equal(
          (await post(body as Uint8Array<ArrayBuffer>, type)).status,
          200,
        );
      });
      const filez = objects.find((o) => o.name.endsWith(".filez"))!;
      const refused: [
        string,
        () => { name: string; bytes: Uint8Array },
        number,
        RegExp,
      ][] = [
        [
          "a corrupted .filez",
          () => {
            const b = Deno.readFileSync(filez.path);
            b[b.length - 3] = b[b.length - 3]! ^ 0xff;
            return { name: "0".repeat(64) + ".filez", bytes: b };
          },
          400,
          /./,
        ],
        [
          "another object's bytes under this name",
          () => ({
            name: "1".repeat(64) + ".filez",
            bytes: Deno.readFileSync(filez.path),
          }),
          400,
          /./,
        ],
        [
          "a traversal name",
          () => ({ name: "../../config", bytes: new Uint8Array(3) }),
          400,
          /Invalid upload filename/,
        ],
        [
          "an upper-case name",
          () => ({
            name: "A".repeat(64) + ".commit",
            bytes: new Uint8Array(3),
          }),
          400,
          /Invalid upload filename/,
        ],
        [
          "a .commitmeta",
          () => ({
            name: "2".repeat(64) + ".commitmeta",
            bytes: new Uint8Array(3),
          }),
          400,
          /Invalid upload filename/,
        ],
        [
          "an oversize part",
          () => ({
            name: "3".repeat(64) + ".filez",
            bytes: new Uint8Array(600 * 1024),
          }),
          413,
          /larger than the limit/,
        ],
      ];
      for (const [what, make, status, message] of refused) {
        await t.step(`${what} → ${status}, nothing kept`, async () => {
          const f = make();
          const { body, type } = pythonMultipart([f]);
          const res = await post(body as Uint8Array<ArrayBuffer>, type);
          const text = await res.text();
          assert.equal(res.status, status, text);
          assert.match(text, message);
          const tmp = join(upload, "tmp", "flatyard-upload");
          assert.deepEqual(
            await Array.fromAsync(Deno.readDir(tmp)),
            [],
            "no temporary file left",
          );
          if (!f.name.includes("/")) {
            await assert.rejects(
              Deno.stat(
                join(upload, "objects", f.name.slice(0, 2), f.name.slice(2)),
              ),
              Deno.errors.NotFound,
            );
          }
        });
      }
      await t.step("a truncated body is refused", async () => {
        const { body, type } = pythonMultipart([{
          name: objects[1]!.name,
          bytes: Deno.readFileSync(objects[1]!.path),
        }]);
        const res = await post(
          body.slice(0, body.length - 20) as Uint8Array<ArrayBuffer>,
          type,
        );
        assert.equal(res.status, 400);
      });
      await t.step("a token without upload scope may not upload", async () => {
        const { body, type } = pythonMultipart([{
          name: objects[0]!.name,
          bytes: Deno.readFileSync(objects[0]!.path),
        }]);
        const res = await post(
          body as Uint8Array<ArrayBuffer>,
          type,
          await a.token({ scope: ["build"] }),
        );
        assert.equal(res.status, 403);
        await res.body?.cancel();
      });
    } finally {
      await server.shutdown();
      await a.close();
    }
  },
);
