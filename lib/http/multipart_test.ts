/**
 * The streaming multipart parser against the wire formats of flat-manager's clients
 * (`specs/flat-manager-api.md` §5.3): the Python client's `multipart/mixed` byte for byte, and a
 * reqwest-style `multipart/form-data` as the web `FormData` encodes it; chunking down to single
 * bytes, truncation, the acceptance limits, and back-pressure.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  MultipartError,
  type MultipartPart,
  parseMultipart,
} from "./multipart.ts";

const enc = new TextEncoder();
const BOUNDARY = "0123456789abcdef0123456789abcdef"; // the Python client's 32 hex digits
const MIXED = `multipart/mixed; boundary=${BOUNDARY}`;

/** A stream of `bytes` in pieces of `size`, counting the pieces read. */
function chunked(bytes: Uint8Array, size: number, stats = { pulled: 0 }) {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= bytes.length) return c.close();
      stats.pulled++;
      c.enqueue(bytes.slice(at, at += size));
    },
  }, { highWaterMark: 0 });
}

function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const bytes = parts.map((p) => typeof p === "string" ? enc.encode(p) : p);
  const out = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  bytes.reduce((at, b) => (out.set(b, at), at + b.length), 0);
  return out;
}

/** The Python client's body (§5.3): one part per file, then the close delimiter and CRLF. */
function pythonBody(files: [string, Uint8Array][], boundary = BOUNDARY) {
  return concat(
    ...files.flatMap(([name, data]) => [
      `--${boundary}\r\n`,
      "Content-Type: application/octet-stream\r\n",
      `Content-Disposition: attachment; filename="${name}"\r\n`,
      `Content-Length: ${data.length}\r\n`,
      "\r\n",
      data,
      "\r\n",
    ]),
    `--${boundary}--\r\n`,
  );
}

type Parsed = Omit<MultipartPart, "body"> & { bytes: Uint8Array };

/** Parses `body` fed in `size`-byte chunks; returns every part with its content. */
async function parse(
  body: Uint8Array,
  contentType = MIXED,
  size = 65536,
): Promise<Parsed[]> {
  const parts: Parsed[] = [];
  const count = await parseMultipart(
    chunked(body, size),
    contentType,
    async ({ body, ...part }) => {
      parts.push({ ...part, bytes: await new Response(body).bytes() });
    },
  );
  assert.equal(count, parts.length);
  return parts;
}

const random = (n: number) => new Uint8Array(randomBytes(n));
const OBJECT = `${"ab".repeat(32)}.filez`;

Deno.test("the Python client's multipart/mixed body parses byte for byte in any chunking", async () => {
  const files: [string, Uint8Array][] = [
    [OBJECT, random(70000)],
    [`${"cd".repeat(32)}.dirtree`, new Uint8Array()],
    [
      "r4WpEemdaxuIBF6BExibsSRITKHrGXvpM9vmbZs33ao.superblock.delta",
      random(300),
    ],
  ];
  const body = pythonBody(files);
  for (const size of [1, 2, 3, 37, 4096, 65536, body.length]) {
    const parts = await parse(body, MIXED, size);
    assert.equal(parts.length, 3, `chunks of ${size}`);
    for (const [i, [name, data]] of files.entries()) {
      const part = parts[i]!;
      assert.equal(part.filename, name);
      assert.equal(part.disposition, "attachment");
      assert.equal(part.name, undefined);
      assert.equal(
        part.headers.get("content-type"),
        "application/octet-stream",
      );
      assert.equal(part.headers.get("content-length"), `${data.length}`);
      assert.deepEqual(part.bytes, data, `part ${i} in chunks of ${size}`);
    }
  }
});

Deno.test("a reqwest-style multipart/form-data body from FormData parses", async () => {
  const a = random(100000), b = enc.encode("second\r\n--not-a-boundary\r\n");
  const form = new FormData();
  form.append(
    "file0",
    new Blob([a], { type: "application/octet-stream" }),
    OBJECT,
  );
  form.append(
    "file1",
    new Blob([b], { type: "application/octet-stream" }),
    "x.commit",
  );
  const request = new Request("http://x/upload", {
    method: "POST",
    body: form,
  });
  const type = request.headers.get("content-type")!;
  assert.match(type, /^multipart\/form-data; boundary=/);
  const body = await request.bytes();
  for (const size of [1, 1000, body.length]) {
    const parts = await parse(body, type, size);
    assert.deepEqual(parts.map((p) => [p.disposition, p.name, p.filename]), [
      ["form-data", "file0", OBJECT],
      ["form-data", "file1", "x.commit"],
    ]);
    assert.equal(
      parts[0]!.headers.get("content-type"),
      "application/octet-stream",
    );
    assert.deepEqual(parts[0]!.bytes, a);
    assert.deepEqual(parts[1]!.bytes, b);
  }
});

Deno.test("content with CRLF and dashes that are not the delimiter passes through intact", async () => {
  const tricky = [
    concat("\r\n--", random(1000), "\r\n--", BOUNDARY.slice(0, 31), "\r\n"),
    concat("--", BOUNDARY, "\r\n", "\r\n-", "\r\r\n--", BOUNDARY.slice(0, 5)),
    concat(random(5000), "\r\n--\r\n--", BOUNDARY.toUpperCase(), "\r\n\r\n"),
  ];
  const body = pythonBody(tricky.map((t, i) => [`${i}`, t]));
  for (const size of [1, 5, 33, 34, 35, 65536]) {
    const parts = await parse(body, MIXED, size);
    assert.deepEqual(parts.map((p) => p.bytes), tricky, `chunks of ${size}`);
  }
});

Deno.test("random contents full of near-delimiters parse back exactly, in random chunkings", async () => {
  // Contents made of the delimiter's own bytes and pieces of it: what a skipping search could
  // get wrong (a match straddling a chunk, a near-match just before a real one).
  const delimiter = `\r\n--${BOUNDARY}`;
  const pieces = [
    "\r",
    "\n",
    "-",
    "--",
    "\r\n",
    "\r\n--",
    BOUNDARY.slice(0, 7),
  ];
  let seed = 7;
  const next = (n: number) =>
    (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let round = 0; round < 60; round++) {
    const files: [string, Uint8Array][] = [];
    for (let f = 0; f < 1 + next(4); f++) {
      let text = "";
      for (let i = 0; i < next(40); i++) {
        const r = next(10);
        text += r < 7
          ? pieces[r]!
          : r === 7
          ? delimiter.slice(0, 1 + next(delimiter.length - 1))
          : BOUNDARY.slice(next(BOUNDARY.length));
      }
      // A content never holds its delimiter (the client picks a boundary that way).
      while (text.includes(delimiter)) {
        text = text.replace(delimiter, delimiter.slice(0, -1));
      }
      files.push([`f${f}`, enc.encode(text)]);
    }
    const body = pythonBody(files);
    const size = 1 + next(80);
    const parts = await parse(body, MIXED, size);
    assert.deepEqual(
      parts.map((p) => p.bytes),
      files.map(([, b]) => b),
      `round ${round}, chunks of ${size}`,
    );
  }
});

Deno.test("a body that ends before its closing boundary is refused, wherever it is cut", async () => {
  const body = pythonBody([["a", enc.encode("first")], ["b", random(100)]]);
  const close = body.length - 2; // the trailing CRLF after `--boundary--` is optional
  for (let cut = 0; cut < close; cut++) {
    await assert.rejects(
      parse(body.slice(0, cut), MIXED, 7),
      MultipartError,
      `cut at ${cut}`,
    );
  }
  assert.equal((await parse(body.slice(0, close))).length, 2);
});

Deno.test("preamble, epilogue, transport padding and an empty body parse", async () => {
  const body = concat(
    "This is the preamble.\r\n",
    `--${BOUNDARY} \t\r\nContent-Type: text/plain\r\n\r\nhello\r\n`,
    `--${BOUNDARY}\r\n\r\nno headers\r\n`,
    `--${BOUNDARY}--  \r\nThis is the epilogue.\r\n--${BOUNDARY}\r\n`,
  );
  const parts = await parse(body, `multipart/mixed; boundary="${BOUNDARY}"`, 3);
  assert.deepEqual(parts.map((p) => new TextDecoder().decode(p.bytes)), [
    "hello",
    "no headers",
  ]);
  assert.equal(parts[1]!.disposition, undefined);
  assert.equal(parts[1]!.filename, undefined);
  assert.equal([...parts[1]!.headers].length, 0);
  assert.deepEqual(await parse(enc.encode(`--${BOUNDARY}--`)), []);
});

Deno.test("Content-Type boundaries are parsed and checked", async (t) => {
  const ok: [string, string][] = [
    ['multipart/mixed; boundary="a b:c?"', "a b:c?"],
    ["Multipart/Mixed;BOUNDARY=xyz ; charset=utf-8", "xyz"],
    [`multipart/related; boundary="${"x".repeat(70)}"`, "x".repeat(70)],
  ];
  for (const [type, boundary] of ok) {
    await t.step(`accepts ${type}`, async () => {
      const body = enc.encode(`--${boundary}\r\n\r\nok\r\n--${boundary}--`);
      assert.equal((await parse(body, type, 1)).length, 1);
    });
  }
  const refused: [string, RegExp][] = [
    ["multipart/mixed", /has no boundary/],
    ["multipart/mixed; charset=utf-8", /has no boundary/],
    ['multipart/mixed; boundary=""', /not 1 to 70/],
    [`multipart/mixed; boundary=${"x".repeat(71)}`, /not 1 to 70/],
    ['multipart/mixed; boundary="ends in space "', /not 1 to 70/],
    ['multipart/mixed; boundary="a\\"b"', /not 1 to 70/],
    ["multipart/mixed; boundary=a; boundary=b", /appears twice/],
    ["multipart/mixed; boundary=a b", /malformed/],
    [
      "application/octet-stream; boundary=a",
      /Expected a multipart Content-Type/,
    ],
    ["", /no type/],
  ];
  for (const [type, why] of refused) {
    await t.step(`refuses ${JSON.stringify(type)}`, async () => {
      await assert.rejects(
        parse(enc.encode("--a--"), type),
        (e) => e instanceof MultipartError && why.test(e.message),
      );
    });
  }
});

Deno.test("parts that break the acceptance rules are refused", async (t) => {
  const headers = (n: number) =>
    Array.from({ length: n }, (_, i) => `X-H${i}: ${i}\r\n`).join("");
  const part = (head: string, type = MIXED, boundary = BOUNDARY) =>
    [
      enc.encode(`--${boundary}\r\n${head}\r\ndata\r\n--${boundary}--\r\n`),
      type,
    ] as const;
  const form = `multipart/form-data; boundary=${BOUNDARY}`;
  const cases: [string, readonly [Uint8Array, string], RegExp][] = [
    ["33 headers", part(headers(33)), /more than 32 headers/],
    [
      "over 16 KiB of headers",
      part(`X-Big: ${"x".repeat(17000)}\r\n`),
      /16 KiB of headers/,
    ],
    [
      "a nested multipart part",
      part("Content-Type: multipart/mixed; boundary=inner\r\n"),
      /itself multipart/,
    ],
    [
      "a form-data part without a name",
      part('Content-Disposition: form-data; filename="f"\r\n', form),
      /disposition name/,
    ],
    [
      "a form-data part without a disposition",
      part("Content-Type: text/plain\r\n", form),
      /disposition name/,
    ],
    [
      "a form-data part with an attachment disposition",
      part('Content-Disposition: attachment; name="f"\r\n', form),
      /disposition name/,
    ],
    [
      "two Content-Dispositions",
      part(
        "Content-Disposition: attachment\r\nContent-Disposition: inline\r\n",
      ),
      /more than one/,
    ],
    [
      "a header line without a colon",
      part("Not a header\r\n"),
      /malformed header line/,
    ],
    [
      "an unparsable disposition",
      part("Content-Disposition: attachment; filename\r\n"),
      /Cannot parse Content-Disposition/,
    ],
    ["junk after a boundary", [
      enc.encode(`--${BOUNDARY}junk\r\n\r\n--${BOUNDARY}--`),
      MIXED,
    ], /followed by junk/],
    [
      "a body without its boundary",
      [enc.encode("no boundary here\r\n"), MIXED],
      /has no boundary "0123/,
    ],
    ["a delimiter not at a line start", [
      enc.encode(`x--${BOUNDARY}\r\n\r\n`),
      MIXED,
    ], /has no boundary "0123/],
  ];
  for (const [what, [body, type], why] of cases) {
    await t.step(`refuses ${what}`, async () => {
      for (const size of [1, 65536]) {
        await assert.rejects(
          parse(body, type, size),
          (e) => e instanceof MultipartError && why.test(e.message),
        );
      }
    });
  }
  await t.step("accepts 32 headers and a 16 KiB header block", async () => {
    assert.equal(
      (await parse(...part(headers(32))))[0]!.headers.get("x-h31"),
      "31",
    );
    const big = `X-Big: ${"x".repeat((16 << 10) - 10)}\r\n`;
    assert.equal(
      (await parse(...part(big), 1))[0]!.headers.get("x-big")!.length,
      (16 << 10) - 10,
    );
  });
  await t.step(
    "accepts a mixed part with any disposition or none",
    async () => {
      for (
        const head of [
          "",
          "Content-Disposition: inline\r\n",
          "Content-Type: text/plain\r\n",
        ]
      ) {
        assert.equal((await parse(...part(head))).length, 1);
      }
    },
  );
});

Deno.test("filenames are read from quoted strings, tokens and filename*", async () => {
  const cases: [string, string | undefined][] = [
    ['attachment; filename="a\\"b\\\\c.txt"', 'a"b\\c.txt'],
    ["attachment; filename=plain.filez", "plain.filez"],
    [
      "attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt; filename=\"ete.txt\"",
      "été.txt",
    ],
    ["attachment; filename*=iso-8859-1'en'%E9t%E9.txt", "été.txt"],
    ['attachment; filename="été.txt"', "été.txt"], // raw UTF-8 bytes, as browsers send them
    ['form-data; name="file0"', undefined],
  ];
  for (const [cd, filename] of cases) {
    const body = concat(
      `--${BOUNDARY}\r\nContent-Disposition: ${cd}\r\n\r\nx\r\n--${BOUNDARY}--`,
    );
    assert.equal((await parse(body))[0]!.filename, filename, cd);
  }
  const bad = concat(
    `--${BOUNDARY}\r\nContent-Disposition: attachment; filename*=UTF-8''%ZZ\r\n\r\nx\r\n--${BOUNDARY}--`,
  );
  await assert.rejects(parse(bad), /invalid filename\*/);
});

Deno.test("a slow consumer sees every byte in order, and the body is read no further ahead than it", async () => {
  const data = random(256 << 10);
  const body = pythonBody([["slow", data], ["next", enc.encode("after")]]);
  const stats = { pulled: 0 };
  let maxAhead = 0, received = 0;
  const seen: Uint8Array[] = [];
  await parseMultipart(chunked(body, 1024, stats), MIXED, async (part) => {
    for await (const chunk of part.body) {
      if (part.filename === "slow") {
        // Chunks pulled from the body beyond those whose bytes the consumer has had.
        maxAhead = Math.max(
          maxAhead,
          stats.pulled - Math.ceil(received / 1024),
        );
        received += chunk.length;
        await new Promise((r) => setTimeout(r, received % 32768 === 0 ? 5 : 0));
      }
      seen.push(chunk);
    }
  });
  assert.deepEqual(concat(...seen), concat(data, "after"));
  assert.ok(maxAhead <= 2, `read ${maxAhead} chunks ahead of the consumer`);
});

Deno.test("parts a handler leaves unread or cancels are skipped, and a throw stops the parse", async (t) => {
  const body = pythonBody([["a", random(50000)], ["b", enc.encode("kept")]]);
  await t.step("unread, then read too late", async () => {
    let first: ReadableStream<Uint8Array> | undefined;
    const texts: string[] = [];
    await parseMultipart(chunked(body, 100), MIXED, async (part) => {
      if (part.filename === "a") first = part.body;
      else texts.push(await new Response(part.body).text());
    });
    assert.deepEqual(texts, ["kept"]);
    await assert.rejects(new Response(first).bytes(), /read too late/);
  });
  await t.step("cancelled after one chunk", async () => {
    const texts: string[] = [];
    await parseMultipart(chunked(body, 100), MIXED, async (part) => {
      if (part.filename === "b") {
        return void texts.push(await new Response(part.body).text());
      }
      const reader = part.body.getReader();
      await reader.read();
      await reader.cancel();
    });
    assert.deepEqual(texts, ["kept"]);
  });
  await t.step(
    "a handler's error is the parse's, and the body is cancelled",
    async () => {
      let cancelled = false;
      const source = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(body.slice(0, 1000));
        },
        cancel() {
          cancelled = true;
        },
      });
      await assert.rejects(
        parseMultipart(
          source,
          MIXED,
          () => Promise.reject(new Error("Invalid upload filename")),
        ),
        /Invalid upload filename/,
      );
      assert.ok(cancelled);
    },
  );
  await t.step(
    "a truncated part reports the truncation, however the handler words it",
    async () => {
      await assert.rejects(
        parseMultipart(
          chunked(body.slice(0, 3000), 100),
          MIXED,
          async (part) => {
            await new Response(part.body).bytes().catch(() => {
              throw new Error("write failed");
            });
          },
        ),
        (e) =>
          e instanceof MultipartError &&
          /before its closing boundary/.test(e.message),
      );
    },
  );
});
