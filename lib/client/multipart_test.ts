/** The upload body is byte for byte the Python client's `multipart/mixed` format (§5.3). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseMultipart as serverParse } from "../http/multipart.ts";
import type { UploadFile } from "./local_repo.ts";
import {
  CHUNK_SIZE,
  multipartBody,
  multipartBoundary,
  multipartContentType,
  multipartLength,
} from "./multipart.ts";

const enc = new TextEncoder();
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const collect = async (it: AsyncIterable<Uint8Array>) =>
  concat(await Array.fromAsync(it));
const latin1 = (b: Uint8Array) =>
  Array.from(b, (c) => String.fromCharCode(c)).join("");

/** Parses a multipart body back into parts: headers (lower-cased names) and bytes. */
function parseMultipart(body: Uint8Array, boundary: string) {
  const text = latin1(body);
  const delimiter = `--${boundary}`;
  assert.ok(text.endsWith(`${delimiter}--\r\n`), "closing delimiter");
  const chunks = text.slice(0, -`${delimiter}--\r\n`.length).split(
    `${delimiter}\r\n`,
  );
  assert.equal(chunks.shift(), "", "no preamble");
  return chunks.map((chunk) => {
    const end = chunk.indexOf("\r\n\r\n");
    const headers = new Map(
      chunk.slice(0, end).split("\r\n").map((l) => {
        const i = l.indexOf(": ");
        return [l.slice(0, i).toLowerCase(), l.slice(i + 2)] as const;
      }),
    );
    assert.ok(chunk.endsWith("\r\n"), "part ends with CRLF");
    const data = Uint8Array.from(
      chunk.slice(end + 4, -2),
      (c) => c.charCodeAt(0),
    );
    return { headers, data };
  });
}

Deno.test("the multipart body of 3 files is the Python client's wire format", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-multipart-" });
  try {
    // A file with CRLF and a fake delimiter inside, an empty one, and one over a chunk.
    const contents = [
      enc.encode("hello\r\n--not-a-boundary\r\n\x00\xff"),
      new Uint8Array(0),
      Uint8Array.from({ length: CHUNK_SIZE + 1000 }, (_, i) => (i * 31) % 256),
    ];
    const names = [
      `${"a".repeat(64)}.filez`,
      `${"b".repeat(64)}.dirmeta`,
      `${"c".repeat(43)}.superblock.delta`,
    ];
    const files: UploadFile[] = [];
    for (const [i, data] of contents.entries()) {
      const path = join(dir, `f${i}`);
      await Deno.writeFile(path, data);
      files.push({ name: names[i]!, path, size: data.length });
    }
    const boundary = "0123456789abcdef0123456789abcdef";
    const body = await collect(multipartBody(boundary, files));

    await t.step("bytes equal the §5.3 layout", () => {
      const want = concat([
        ...files.flatMap((f, i) => [
          enc.encode(
            `--${boundary}\r\nContent-Type: application/octet-stream\r\n` +
              `Content-Disposition: attachment; filename="${f.name}"\r\n` +
              `Content-Length: ${f.size}\r\n\r\n`,
          ),
          contents[i]!,
          enc.encode("\r\n"),
        ]),
        enc.encode(`--${boundary}--\r\n`),
      ]);
      assert.deepEqual(body, want);
      assert.equal(multipartLength(boundary, files), body.length);
      assert.equal(
        multipartContentType(boundary),
        "multipart/mixed; boundary=0123456789abcdef0123456789abcdef",
      );
    });

    await t.step(
      "parsed back, each part has its name, length and bytes",
      () => {
        const parts = parseMultipart(body, boundary);
        assert.equal(parts.length, 3);
        for (const [i, p] of parts.entries()) {
          assert.deepEqual([...p.headers.keys()], [
            "content-type",
            "content-disposition",
            "content-length",
          ]);
          assert.equal(
            p.headers.get("content-type"),
            "application/octet-stream",
          );
          assert.equal(
            p.headers.get("content-disposition"),
            `attachment; filename="${names[i]}"`,
          );
          assert.equal(
            p.headers.get("content-length"),
            String(contents[i]!.length),
          );
          assert.deepEqual(p.data, contents[i]);
        }
      },
    );

    await t.step(
      "the body comes in full 256 KiB chunks (the last one shorter), reporting bytes sent",
      async () => {
        const seen: number[] = [];
        const chunks = await Array.fromAsync(
          multipartBody(boundary, files, (n) => seen.push(n)),
        );
        assert.ok(chunks.length > 1);
        assert.ok(chunks.slice(0, -1).every((c) => c.length === CHUNK_SIZE));
        assert.ok(chunks.at(-1)!.length <= CHUNK_SIZE);
        const total = contents.reduce((n, c) => n + c.length, 0);
        assert.equal(seen.at(-1), total);
        assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
      },
    );

    await t.step(
      "Flatyard's server-side multipart parser reads the same parts",
      async () => {
        const got: { filename?: string; data: Uint8Array }[] = [];
        const n = await serverParse(
          new Blob([body]).stream(),
          multipartContentType(boundary),
          async (part) => {
            const data = new Uint8Array(
              await new Response(part.body).arrayBuffer(),
            );
            got.push({
              ...(part.filename ? { filename: part.filename } : {}),
              data,
            });
          },
        );
        assert.equal(n, 3);
        assert.deepEqual(
          got,
          names.map((filename, i) => ({ filename, data: contents[i] })),
        );
      },
    );

    await t.step("a file whose size changed fails the body", async () => {
      const wrong = [{ ...files[0]!, size: files[0]!.size + 1 }];
      await assert.rejects(
        collect(multipartBody(boundary, wrong)),
        /its size changed/,
      );
      const short = [{ ...files[2]!, size: 10 }];
      await assert.rejects(
        collect(multipartBody(boundary, short)),
        /its size changed/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boundaries are 32 fresh lowercase hex digits", () => {
  const a = multipartBoundary();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, multipartBoundary());
});
