/**
 * Upload verification against objects real `ostree` 2022.7 and `flatpak` write: every object of
 * a flatpak repo, symlinks, xattrs, multi-MiB files in small chunks, delta parts; and refusal of
 * corrupt, truncated, padded or misnamed uploads.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import {
  cachedFixtureRepo,
  hostArch,
} from "../../tests/support/flatpak_fixtures.ts";
import { decode, encode, type Value } from "./gvariant.ts";
import type { ObjectExt } from "./object_names.ts";
import {
  createObjectVerifier,
  type ObjectVerifierOptions,
  ObjectVerifyError,
  type VerifyKind,
} from "./verify.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A stream of `bytes` in pieces of `size`. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at += size));
    },
  });
}

/** Pipes `source` through a verifier; returns the digest and what passed through. */
async function verify(
  kind: VerifyKind,
  source: ReadableStream<Uint8Array> | Uint8Array,
  opts: ObjectVerifierOptions = {},
) {
  const input = source instanceof Uint8Array ? chunked(source, 65536) : source;
  const verifier = createObjectVerifier(kind, opts);
  const out = createHash("sha256");
  let bytes = 0, chunks = 0;
  const piped = input.pipeThrough(verifier).pipeTo(
    new WritableStream({
      write(c) {
        out.update(c), bytes += c.length, chunks++;
      },
    }),
  );
  const [digest] = await Promise.all([verifier.digest(), piped]);
  return { digest, passed: out.digest("hex"), bytes, chunks };
}

/** Every loose object of an archive repository: path, checksum and extension. */
async function objectsOf(repo: string) {
  const found: { path: string; checksum: string; ext: string }[] = [];
  for await (const dir of Deno.readDir(join(repo, "objects"))) {
    for await (const f of Deno.readDir(join(repo, "objects", dir.name))) {
      const [rest, ext] = f.name.split(".") as [string, string];
      const path = join(repo, "objects", dir.name, f.name);
      found.push({ path, checksum: dir.name + rest, ext });
    }
  }
  return found;
}

async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `${cmd} ${args.join(" ")} failed: ${err}`);
  return new TextDecoder().decode(out.stdout);
}

/** Commits `files` (written by the callback) into a new archive repo; returns the repo path. */
async function commitTree(
  dir: string,
  write: (tree: string) => Promise<void>,
): Promise<string> {
  const tree = join(dir, "tree"), repo = join(dir, "repo");
  await Deno.mkdir(tree);
  await write(tree);
  await run("ostree", "init", `--repo=${repo}`, "--mode=archive");
  await run(
    "ostree",
    "commit",
    `--repo=${repo}`,
    "-b",
    "t",
    `--tree=dir=${tree}`,
  );
  return repo;
}

/** Path of the content object of `/<file>` in the commit `t` (from `ostree ls -C`). */
async function filezOf(repo: string, file: string): Promise<string> {
  const line = await run(
    "ostree",
    `--repo=${repo}`,
    "ls",
    "-C",
    "t",
    `/${file}`,
  );
  const sum = line.trim().split(/\s+/)[4]!;
  return join(repo, "objects", sum.slice(0, 2), `${sum.slice(2)}.filez`);
}

Deno.test("every object of a flatpak repo verifies to its own name", async () => {
  await using fx = await cachedFixtureRepo({ arches: [hostArch()] });
  const counts = new Map<string, number>();
  for (const o of await objectsOf(fx.repo)) {
    if (!["filez", "dirtree", "dirmeta", "commit"].includes(o.ext)) continue;
    const bytes = await Deno.readFile(o.path);
    const r = await verify(
      o.ext as ObjectExt,
      (await Deno.open(o.path)).readable,
    );
    assert.equal(r.digest, o.checksum, o.path);
    assert.equal(r.passed, sha256(bytes), "bytes pass through unchanged");
    counts.set(o.ext, (counts.get(o.ext) ?? 0) + 1);
  }
  for (const ext of ["filez", "dirtree", "dirmeta", "commit"]) {
    assert.ok((counts.get(ext) ?? 0) > 0, `the fixture has ${ext} objects`);
  }
});

Deno.test("symlinks, empty files, xattrs and a 3 MiB file verify, in chunks down to 1 byte", async (t) => {
  await using dir = await tempDir();
  const big = new Uint8Array(3 << 20);
  for (let i = 0; i < big.length; i += 65536) {
    crypto.getRandomValues(big.subarray(i, i + 65536));
  }
  const repo = await commitTree(dir.path, async (tree) => {
    await Deno.writeTextFile(join(tree, "hello"), "hello\n".repeat(5000));
    await Deno.writeFile(join(tree, "empty"), new Uint8Array());
    await Deno.writeFile(join(tree, "big"), big);
    await Deno.symlink("hello", join(tree, "rel-link"));
    await Deno.symlink(
      "/usr/share/some/absolute/target",
      join(tree, "abs-link"),
    );
    await Deno.writeTextFile(join(tree, "xattr"), "tagged");
    // Deno has no setxattr; the header's xattr array then has an element to re-serialize.
    await run(
      "python3",
      "-c",
      `import os; os.setxattr(${
        JSON.stringify(join(tree, "xattr"))
      }, "user.flatyard", b"v" * 300)`,
    );
  });
  for (
    const [file, sizes] of [
      ["hello", [1, 7, 65536]],
      ["empty", [1]],
      ["rel-link", [1, 3]],
      ["abs-link", [1]],
      ["xattr", [1, 5]],
      ["big", [4093, 65536]],
    ] as const
  ) {
    await t.step(`${file} in ${sizes.join(", ")}-byte chunks`, async () => {
      const path = await filezOf(repo, file);
      const bytes = await Deno.readFile(path);
      const name = path.split("/").slice(-2).join("").replace(".filez", "");
      for (const size of sizes) {
        const r = await verify("filez", chunked(bytes, size), {
          expected: name,
        });
        assert.equal(r.digest, name);
        assert.equal(r.bytes, bytes.length);
        assert.equal(r.passed, sha256(bytes));
      }
    });
  }
  await t.step(
    "every object of that commit verifies, in 5-byte chunks",
    async () => {
      for (const o of await objectsOf(repo)) {
        if (o.ext === "commitmeta") continue;
        const bytes = await Deno.readFile(o.path);
        const r = await verify(
          o.ext as ObjectExt,
          chunked(bytes, bytes.length > 100_000 ? 65536 : 5),
        );
        assert.equal(r.digest, o.checksum, o.path);
      }
    },
  );
});

Deno.test("delta parts pass through with the sha256 their superblock records", async () => {
  await using dir = await tempDir();
  const repo = await commitTree(dir.path, async (tree) => {
    await Deno.writeTextFile(join(tree, "a"), "delta me\n".repeat(1000));
  });
  await run(
    "ostree",
    `--repo=${repo}`,
    "static-delta",
    "generate",
    "--empty",
    "t",
  );
  const [sub] = await Array.fromAsync(Deno.readDir(join(repo, "deltas")));
  const [rest] = await Array.fromAsync(
    Deno.readDir(join(repo, "deltas", sub!.name)),
  );
  const deltaDir = join(repo, "deltas", sub!.name, rest!.name);
  const superblock = decode(
    "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))",
    await Deno.readFile(join(deltaDir, "superblock")),
  ) as Value[];
  const parts = superblock[6] as Value[][];
  assert.ok(parts.length > 0);
  for (const [i, part] of parts.entries()) {
    const r = await verify(
      "delta",
      await Deno.readFile(join(deltaDir, `${i}`)),
    );
    assert.equal(r.digest, Buffer.from(part[1] as Uint8Array).toString("hex"));
  }
  const junk = new TextEncoder().encode("not checked at upload");
  assert.equal((await verify("delta", junk)).digest, sha256(junk));
});

Deno.test("corrupt, truncated and misnamed uploads are refused", async (t) => {
  await using dir = await tempDir();
  const random = crypto.getRandomValues(new Uint8Array(60000));
  const repo = await commitTree(dir.path, async (tree) => {
    await Deno.writeTextFile(
      join(tree, "text"),
      "some text, line\n".repeat(20000),
    );
    await Deno.writeFile(join(tree, "random"), random);
    await Deno.symlink("text", join(tree, "link"));
  });
  const read = async (f: string) => {
    const path = await filezOf(repo, f);
    const name = path.split("/").slice(-2).join("").replace(".filez", "");
    return { name, bytes: await Deno.readFile(path) };
  };
  const text = await read("text"),
    rnd = await read("random"),
    link = await read("link");
  const headerEnd = (b: Uint8Array) => 8 + new DataView(b.buffer).getUint32(0);
  const flipped = (b: Uint8Array, at: number) => {
    const c = b.slice();
    c[at]! ^= 0x01;
    return c;
  };
  const cases: [string, Uint8Array, string, RegExp][] = [
    [
      "a flipped byte in stored content",
      flipped(rnd.bytes, rnd.bytes.length - 100),
      rnd.name,
      /does not match its name/,
    ],
    [
      "a flipped byte in compressed content",
      flipped(text.bytes, headerEnd(text.bytes) + 20),
      text.name,
      /corrupt|does not match/,
    ],
    [
      "a flipped byte in the header's mode",
      flipped(text.bytes, 8 + 8 + 8 + 3),
      text.name,
      /does not match its name/,
    ],
    [
      "a flipped byte in the header's size",
      flipped(text.bytes, 8 + 7),
      text.name,
      /inflates/,
    ],
    [
      "a truncated deflate stream",
      text.bytes.slice(0, -5),
      text.name,
      /does not inflate/,
    ],
    [
      "bytes after the deflate stream",
      concat(text.bytes, new Uint8Array([0, 1, 2])),
      text.name,
      /bytes after its compressed content/,
    ],
    [
      "another object's bytes under this name",
      rnd.bytes,
      text.name,
      /does not match its name/,
    ],
    [
      "a symlink with content",
      concat(link.bytes, deflateRawSync(new Uint8Array(1))),
      link.name,
      /a symlink has content/,
    ],
    [
      "a file with no compressed content at all",
      text.bytes.slice(0, headerEnd(text.bytes)),
      text.name,
      /does not inflate \(unexpected end of file\)/,
    ],
    [
      "an upload that ends inside its header",
      text.bytes.slice(0, 20),
      text.name,
      /ends inside its header/,
    ],
    [
      "an upload of 3 bytes",
      text.bytes.slice(0, 3),
      text.name,
      /ends inside its header/,
    ],
    ["non-zero padding", flipped(text.bytes, 5), text.name, /padding/],
    [
      "a header over 1 MiB",
      concat(new Uint8Array([0, 0x20, 0, 0, 0, 0, 0, 0]), new Uint8Array(100)),
      text.name,
      /header is over/,
    ],
    [
      "a garbage header",
      concat(new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0, 1, 2, 3, 4])),
      text.name,
      /header does not parse/,
    ],
  ];
  for (const [what, bytes, expected, why] of cases) {
    await t.step(what, async () => {
      const name = `${expected}.filez`;
      for (const size of [1, 65536]) {
        const err = await verify("filez", chunked(bytes, size), {
          expected,
          name,
        }).then(
          () => assert.fail("verified"),
          (e) => e,
        );
        assert.ok(err instanceof ObjectVerifyError, String(err));
        assert.match(err.message, why);
        assert.ok(err.message.includes(`"${name}"`), err.message);
      }
    });
  }
  await t.step(
    "a header seen before is still read with its own size, and refused the same way",
    async () => {
      // The rest of a header is remembered across objects; its size never is.
      assert.equal((await verify("filez", text.bytes)).digest, text.name);
      await assert.rejects(
        verify("filez", flipped(text.bytes, 8 + 7)),
        /inflates/,
      );
      assert.equal((await verify("filez", text.bytes)).digest, text.name);
      const rdev = flipped(text.bytes, 8 + 8 + 12);
      for (let i = 0; i < 2; i++) {
        await assert.rejects(
          verify("filez", rdev),
          /its header has a non-zero rdev/,
        );
      }
    },
  );
  await t.step(
    "a deflate bomb stops at the size its header claims",
    async () => {
      const header = text.bytes.slice(0, headerEnd(text.bytes));
      const bomb = concat(header, deflateRawSync(new Uint8Array(64 << 20)));
      await assert.rejects(
        verify("filez", bomb),
        /inflates beyond its 320000 bytes/,
      );
    },
  );
});

Deno.test("metadata objects that hash to their name but are not metadata are refused", async (t) => {
  const root = new Uint8Array(32).fill(7);
  const commit = (tree: Uint8Array) =>
    encode("(a{sv}aya(say)sstayay)", [
      new Map(),
      new Uint8Array(),
      [],
      "s",
      "b",
      0n,
      tree,
      root,
    ]);
  const dirtree = (name: string) =>
    encode("(a(say)a(sayay))", [[[name, root]], []]);
  const cases: [string, ObjectExt, Uint8Array, RegExp][] = [
    [
      "garbage as a dirtree",
      "dirtree",
      new TextEncoder().encode("garbage with a lucky name"),
      /not a valid dirtree/,
    ],
    ["garbage as a commit", "commit", new Uint8Array(3), /not a valid commit/],
    [
      "garbage as a dirmeta",
      "dirmeta",
      new Uint8Array(17),
      /not a valid dirmeta/,
    ],
    [
      "a dirtree entry named '..'",
      "dirtree",
      dirtree(".."),
      /entry named "\.\."/,
    ],
    [
      "a dirtree entry with a '/'",
      "dirtree",
      dirtree("a/b"),
      /entry named "a\/b"/,
    ],
    [
      "a commit with a 31-byte root",
      "commit",
      commit(new Uint8Array(31)),
      /not 32 bytes/,
    ],
  ];
  for (const [what, ext, bytes, why] of cases) {
    await t.step(what, async () => {
      await assert.rejects(
        verify(ext, bytes, {
          expected: sha256(bytes),
          name: `${sha256(bytes)}.${ext}`,
        }),
        (e) => e instanceof ObjectVerifyError && why.test(e.message),
      );
    });
  }
  await t.step("the same objects, well formed, verify", async () => {
    for (
      const [ext, bytes] of [["commit", commit(root)], [
        "dirtree",
        dirtree("ok"),
      ]] as const
    ) {
      assert.equal((await verify(ext, bytes)).digest, sha256(bytes));
    }
  });
  await t.step(
    "metadata over the limit is refused before its end",
    async () => {
      const big = dirtree("x".repeat(5000));
      await assert.rejects(
        verify("dirtree", big, { maxMetadataSize: 4096 }),
        /4096-byte limit/,
      );
    },
  );
});

Deno.test("a 50 MiB file object verifies streamed from disk in 64 KiB reads", async () => {
  await using dir = await tempDir();
  const repo = await commitTree(dir.path, async (tree) => {
    // Random data does not compress, so the .filez is as large as the file.
    await run(
      "sh",
      "-c",
      `head -c ${50 << 20} /dev/urandom > ${join(tree, "big")}`,
    );
  });
  const path = await filezOf(repo, "big");
  const name = path.split("/").slice(-2).join("").replace(".filez", "");
  using file = await Deno.open(path);
  const size = (await file.stat()).size;
  const r = await verify("filez", file.readable, { expected: name });
  assert.equal(r.digest, name);
  assert.equal(r.bytes, size);
  assert.ok(r.chunks >= size / 65536, `streamed in ${r.chunks} chunks`);
});

Deno.test("a cancelled or aborted upload rejects digest()", async () => {
  const verifier = createObjectVerifier("filez", { name: "x.filez" });
  const writer = verifier.writable.getWriter();
  await writer.abort(new Error("client went away"));
  await assert.rejects(verifier.digest(), /Upload of "x.filez" was cancelled/);
});

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

async function tempDir() {
  const path = await Deno.makeTempDir({ prefix: "flatyard-verify-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}
