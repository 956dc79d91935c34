import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dbTest } from "../../tests/support/db.ts";
import { buildStore } from "../builds/build_store.ts";
import type { Db } from "../db/db.ts";
import { encode, Variant } from "../ostree/gvariant.ts";
import { type Artifact, artifactStore } from "./artifact_store.ts";
import { BUNDLE_TYPE } from "./bundle_header.ts";
import {
  ActiveWriters,
  artifactPaths,
  type ChunkDeps,
  receiveChunk,
} from "./chunk_upload.ts";

const REF = "runtime/org.example.Platform/x86_64/1";
const COMMIT = "ab".repeat(32);

/** A small file shaped like a flatpak bundle, `size` bytes or a little more. */
function fakeBundle(size: number): Uint8Array {
  return encode(BUNDLE_TYPE, [
    new Map([["ref", new Variant("s", REF)]]),
    0n,
    new Uint8Array(0),
    Uint8Array.from({ length: 32 }, () => 0xab),
    [
      new Map(),
      new Uint8Array(0),
      [],
      "",
      "",
      0n,
      new Uint8Array(32),
      new Uint8Array(32),
    ],
    new Uint8Array(size),
    [],
    [],
  ]);
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A body the test feeds by hand, and can leave hanging. */
function handBody() {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => void (ctl = c),
  });
  return {
    stream,
    push: (b: Uint8Array) => ctl.enqueue(b),
    end: () => ctl.close(),
  };
}

const once = (b: Uint8Array) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(b);
      c.close();
    },
  });

async function setup(
  db: Db,
  bytes: Uint8Array,
  timing = { idleMs: 5_000, checkpointMs: 5_000 },
) {
  const dataDir = await Deno.makeTempDir({ prefix: "flatyard-chunks-" });
  const build = await buildStore.create(db, {
    repo: "stable",
    appId: null,
    publicDownload: false,
    buildLogUrl: null,
    tokenName: null,
    tokenType: null,
  });
  const artifact = await artifactStore.create(db, {
    buildId: build.id,
    name: "x.flatpak",
    size: bytes.length,
    sha256: sha256(bytes),
    uploader: "token:test",
  });
  const deps: ChunkDeps = { db, dataDir, writers: new ActiveWriters(), timing };
  const paths = artifactPaths(dataDir, build.id, artifact.id);
  const row = async () => (await artifactStore.get(db, build.id, artifact.id))!;
  const partSize = () => Deno.stat(paths.part).then((s) => s.size, () => 0);
  return {
    deps,
    artifact,
    paths,
    row,
    partSize,
    put: (
      a: Artifact,
      start: number,
      end: number,
      body: ReadableStream<Uint8Array> | null,
      signal = new AbortController().signal,
    ) => receiveChunk(deps, a, { start, end }, body, signal),
    [Symbol.asyncDispose]: () => Deno.remove(dataDir, { recursive: true }),
  };
}

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!await ok()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

dbTest(
  "receiveChunk stores chunks in order and completes a file that matches",
  async (db) => {
    const bytes = fakeBundle(1000);
    await using s = await setup(db, bytes);
    const first = await s.put(s.artifact, 0, 399, once(bytes.slice(0, 400)));
    assert.equal(first.kind, "stored");
    assert.equal(first.artifact.received, 400);
    const last = await s.put(
      await s.row(),
      400,
      bytes.length - 1,
      once(bytes.slice(400)),
    );
    assert.equal(last.kind, "complete");
    assert.equal(last.artifact.status, "complete");
    assert.equal(last.artifact.ref, REF);
    assert.equal(last.artifact.commit, COMMIT);
    assert.deepEqual(await Deno.readFile(s.paths.bundle), bytes);
    await assert.rejects(Deno.stat(s.paths.part), Deno.errors.NotFound);
    const again = await s.put(last.artifact, 0, 9, once(bytes.slice(0, 10)));
    assert.equal(again.kind, "state");
  },
);

dbTest(
  "receiveChunk keeps the bytes of a stalled body and gives the artifact back",
  async (db) => {
    const bytes = fakeBundle(1000);
    await using s = await setup(db, bytes, {
      idleMs: 150,
      checkpointMs: 5_000,
    });
    const body = handBody();
    const pending = s.put(s.artifact, 0, 599, body.stream);
    body.push(bytes.slice(0, 100));
    const out = await pending;
    assert.equal(out.kind, "interrupted");
    assert.equal(out.kind === "interrupted" && out.reason, "idle");
    assert.equal((await s.row()).received, 100);
    assert.equal(await s.partSize(), 100);
    // The lease is free at once: the rest goes on from byte 100.
    const rest = await s.put(
      await s.row(),
      100,
      bytes.length - 1,
      once(bytes.slice(100)),
    );
    assert.equal(rest.kind, "complete");
  },
);

dbTest(
  "receiveChunk records progress inside a long chunk (checkpoints)",
  async (db) => {
    const bytes = fakeBundle(1000);
    await using s = await setup(db, bytes, { idleMs: 5_000, checkpointMs: 0 });
    const body = handBody();
    const pending = s.put(s.artifact, 0, 599, body.stream);
    body.push(bytes.slice(0, 250));
    await until(
      "received 250 while the chunk is still open",
      async () => (await s.row()).received === 250,
    );
    body.push(bytes.slice(250, 600));
    body.end();
    assert.equal((await pending).artifact.received, 600);
  },
);

dbTest(
  "receiveChunk: a new request stops this process's stalled writer and resumes where it stopped",
  async (db) => {
    const bytes = fakeBundle(1000);
    await using s = await setup(db, bytes, {
      idleMs: 60_000,
      checkpointMs: 5_000,
    });
    const stalled = handBody();
    const old = s.put(s.artifact, 0, 599, stalled.stream);
    stalled.push(bytes.slice(0, 50));
    await until("50 bytes on disk", async () => await s.partSize() === 50);
    // The client reconnects and, not knowing better, starts over from 0.
    const retry = await s.put(s.artifact, 0, 599, once(bytes.slice(0, 600)));
    assert.equal(retry.kind, "offset");
    assert.equal(retry.artifact.received, 50);
    const gone = await old;
    assert.equal(gone.kind, "interrupted");
    assert.equal(gone.kind === "interrupted" && gone.reason, "aborted");
    const resumed = await s.put(
      await s.row(),
      50,
      bytes.length - 1,
      once(bytes.slice(50)),
    );
    assert.equal(resumed.kind, "complete");
  },
);

dbTest(
  "receiveChunk refuses a body that does not match its range and keeps none of it",
  async (db) => {
    const bytes = fakeBundle(1000);
    await using s = await setup(db, bytes);
    await s.put(s.artifact, 0, 99, once(bytes.slice(0, 100)));
    for (const body of [bytes.slice(100, 150), bytes.slice(100, 260)]) {
      const out = await s.put(await s.row(), 100, 199, once(body));
      assert.equal(out.kind, "body");
      assert.equal((await s.row()).received, 100);
      assert.equal(await s.partSize(), 100);
    }
    assert.equal((await s.put(await s.row(), 100, 199, null)).kind, "body");
  },
);

dbTest(
  "receiveChunk trusts the file over the row: lost bytes rewind, unrecorded bytes are dropped",
  async (db) => {
    const bytes = fakeBundle(1000);
    await using s = await setup(db, bytes);
    await s.put(s.artifact, 0, 199, once(bytes.slice(0, 200)));
    // Bytes past `received` that no checkpoint recorded (a writer died): overwritten.
    await Deno.writeFile(s.paths.part, new Uint8Array(50), { append: true });
    const next = await s.put(
      await s.row(),
      200,
      299,
      once(bytes.slice(200, 300)),
    );
    assert.equal(next.kind, "stored");
    assert.equal(await s.partSize(), 300);
    // The file lost bytes the row promised: the row follows the file.
    await Deno.truncate(s.paths.part, 120);
    const lost = await s.put(
      await s.row(),
      300,
      399,
      once(bytes.slice(300, 400)),
    );
    assert.equal(lost.kind, "offset");
    assert.equal(lost.artifact.received, 120);
    const done = await s.put(
      await s.row(),
      120,
      bytes.length - 1,
      once(bytes.slice(120)),
    );
    assert.equal(done.kind, "complete");
    assert.deepEqual(await Deno.readFile(s.paths.bundle), bytes);
  },
);

dbTest(
  "receiveChunk fails an artifact whose bytes do not match, and deletes them",
  async (db, t) => {
    for (
      const [name, declared, sent] of [
        [
          "a wrong sha256",
          fakeBundle(500),
          fakeBundle(500).map((b, i) => i === 300 ? b ^ 1 : b),
        ],
        [
          "not a bundle",
          new Uint8Array(700).fill(7),
          new Uint8Array(700).fill(7),
        ],
      ] as const
    ) {
      await t.step(name, async () => {
        await using s = await setup(db, declared);
        const out = await s.put(s.artifact, 0, sent.length - 1, once(sent));
        assert.equal(out.kind, "rejected");
        assert.equal(out.artifact.status, "failed");
        assert.equal(out.artifact.received, 0);
        assert.ok(out.artifact.error);
        assert.deepEqual([...Deno.readDirSync(s.paths.dir)], []);
      });
    }
  },
);
