/**
 * GVariant serialization: known encodings, round trips, byte-for-byte agreement with
 * `shared/tools/gvariant-reference.py` and with the objects and summaries that real `ostree`
 * 2022.7 writes, and rejection of malformed input.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ostreeRepo, run, utf8 } from "../../tests/support/ostree_fixture.ts";
import {
  bswap32,
  bswap64,
  decode,
  encode,
  GVariantError,
  type Value,
  Variant,
} from "./gvariant.ts";

const REFERENCE = "/work/shared/tools/gvariant-reference.py";
const COMMIT = "(a{sv}aya(say)sstayay)";
const bytes = (...b: number[]) => new Uint8Array(b);
const hex = (b: Uint8Array) =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (h: string) =>
  new Uint8Array(
    h.replaceAll(" ", "").match(/../g)?.map((x) => parseInt(x, 16)) ?? [],
  );
const sha256 = async (b: Uint8Array<ArrayBuffer>) =>
  hex(new Uint8Array(await crypto.subtle.digest("SHA-256", b)));
const filled = (n: number, seed = 0) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) % 251);

/** Values of every supported type, nested containers, empties, UTF-8 and each offset width. */
// deno-fmt-ignore
const cases: [string, Value][] = [
  ["y", 0], ["y", 255], ["b", true], ["b", false], ["n", -32768], ["n", 32767], ["q", 65535],
  ["i", -2147483648], ["i", 2147483647], ["u", 4294967295], ["h", 3],
  ["x", -(2n ** 63n)], ["x", 2n ** 63n - 1n], ["t", 0n], ["t", 2n ** 64n - 1n],
  ["d", 1.5], ["d", -2.25e-300],
  ["s", ""], ["s", utf8], ["o", "/"], ["o", "/org/example/Obj_1"], ["g", ""], ["g", "a{sv}(ii)as"],
  ["v", new Variant("s", "foo")], ["v", new Variant("()", [])],
  ["v", new Variant("v", new Variant("ay", bytes(1, 2, 3)))],
  ["ay", bytes()], ["ay", bytes(0, 1, 255)], ["ai", []], ["ai", [1, -1]], ["at", [1n, 2n ** 40n]],
  ["ab", [true, false]], ["ad", [0.5, -8]], ["as", []], ["as", ["", "a", utf8]],
  ["aay", [bytes(), bytes(1)]], ["aas", [[], ["x"], []]], ["aav", [[], [new Variant("x", -5n)]]],
  ["av", [new Variant("u", 7), new Variant("as", ["x"]), new Variant("ay", bytes())]],
  ["()", []], ["a()", [[], [], []]], ["(())", [[]]], ["(()u)", [[], 9]],
  ["(y)", [1]], ["(iy)", [1, 2]], ["(yt)", [1, 2n]], ["(ty)", [2n, 1]], ["a(ty)", [[1n, 2], [3n, 4]]],
  ["(sy)", ["ab", 3]], ["(ys)", [1, "ab"]], ["(sss)", ["a", "", "ccc"]], ["(ayay)", [bytes(1), bytes()]],
  ["a(yy)", [[1, 2], [3, 4]]], ["a(say)", [["a", bytes(1)], ["", bytes()]]], ["a(sx)", [["z", -1n]]],
  ["{sv}", ["k", new Variant("b", true)]], ["{yy}", [1, 2]], ["a{yy}", new Map([[2, 1], [1, 2]])],
  ["a{sv}", new Map()], ["a{sv}", new Map([["b", new Variant("s", "x")], ["a", new Variant("u", 1)]])],
  ["a{ts}", new Map([[5n, "five"]])], ["a{s(tts)}", new Map([["app/x", [1n, 2n, "[Application]"]]])],
  ["a{sa{sv}}", new Map([["", new Map([["k", new Variant("a{sv}", new Map())]])]])],
  ["(uuua(ayay))", [0, 0, 0xed410000, [[bytes(1, 2), bytes()], [bytes(), bytes(3)]]]],
  [COMMIT, [
    new Map([["ostree.ref-binding", new Variant("as", ["test/x"])]]),
    filled(32), [["r", filled(32, 1)]], "subject", utf8, 0x1122334455667788n, filled(32, 2), filled(32, 3),
  ]],
  ["(a(s(taya{sv}))a{sv})", [
    [["test/x", [620n, filled(32), new Map([["ostree.commit.timestamp", new Variant("t", 1n)]])]]],
    new Map([["ostree.summary.mode", new Variant("s", "archive-z2")]]),
  ]],
  // Offset widths: 1 byte up to a 255-byte container, 2 up to 65535, then 4.
  ["aay", [filled(254)]], ["aay", [filled(255)]], ["aay", [filled(65533)]], ["aay", [filled(65534)]],
  ["aay", [filled(70_000), bytes(1), bytes()]], ["(ayay)", [filled(300), filled(2)]],
  ["as", Array.from({ length: 10_000 }, (_, i) => `element-${i}`)], ["ay", filled(70_000)],
];

Deno.test("encode matches the GVariant specification's worked examples", async (t) => {
  const table: [string, Value, string][] = [
    ["s", "hello world", "68656c6c6f20776f726c6400"],
    [
      "as",
      ["i", "can", "has", "strings?"],
      "6900 63616e00 68617300 7374 72696e67733f00 02060a13",
    ],
    ["(si)", ["foo", -1], "666f6f00 ffffffff 04"],
    [
      "a(si)",
      [["foo", -1], ["bar", -1]],
      "666f6f00ffffffff04 000000 62617200ffffffff04 0915",
    ],
    ["(iy)", [1, 2], "01000000 02000000"],
    ["v", new Variant("s", "foo"), "666f6f00 00 73"],
    [
      "a{sv}",
      new Map([["k", new Variant("y", 1)]]),
      "6b00 000000000000 010079 02 0c",
    ],
    ["()", [], "00"],
    ["a()", [[], []], "0000"],
    ["x", -2n, "feffffffffffffff"],
    ["d", 1.5, "000000000000f83f"],
  ];
  for (const [type, value, expected] of table) {
    await t.step(`${type} ${hex(encode(type, value))}`, () => {
      assert.equal(hex(encode(type, value)), hex(unhex(expected)));
      assert.deepEqual(decode(type, unhex(expected)), value);
    });
  }
});

Deno.test("decode(encode(v)) gives v back for every supported type", async (t) => {
  const extra: [string, Value][] = [["d", -0], ["d", Infinity], ["d", NaN]];
  for (const [type, value] of [...cases, ...extra]) {
    await t.step(`${type} ${hex(encode(type, value)).slice(0, 40)}`, () => {
      assert.deepEqual(decode(type, encode(type, value)), value);
    });
  }
  await t.step(
    "a repeated dict key keeps its first value, as g_variant_lookup",
    () => {
      // a{sv} and a(sv) serialize alike, and only the tuple form can repeat a key.
      const pairs = [["k", new Variant("u", 1)], ["k", new Variant("u", 2)]];
      const map = decode("a{sv}", encode("a(sv)", pairs));
      assert.deepEqual(map, new Map([["k", new Variant("u", 1)]]));
    },
  );
  await t.step("x and t also take safe integers", () => {
    assert.deepEqual(encode("(xt)", [-5, 7]), encode("(xt)", [-5n, 7n]));
  });
});

Deno.test("framing offsets take 1, 2 or 4 bytes by the container's whole size", async (t) => {
  const table: [number, number][] = [
    [254, 1],
    [255, 2],
    [65533, 2],
    [65534, 4],
    [70_000, 4],
  ];
  for (const [n, width] of table) {
    await t.step(
      `an ay of ${n} bytes inside aay has ${width}-byte offsets`,
      () => {
        const out = encode("aay", [filled(n)]);
        assert.equal(out.length, n + width);
        const end = out.subarray(n).reduceRight((acc, b) => acc * 256 + b, 0);
        assert.equal(end, n);
      },
    );
  }
});

Deno.test({
  name: "encode agrees byte for byte with gvariant-reference.py",
  // The reference lives in the shared workspace, not in this repository.
  ignore: !existsSync(REFERENCE),
}, async () => {
  const toPy = (v: Value): unknown => {
    if (v instanceof Uint8Array) return [...v];
    if (typeof v === "bigint") return v.toString(); // the reference applies int() to integers
    if (v instanceof Map) return [...v].map(([k, x]) => [toPy(k), toPy(x)]);
    if (v instanceof Variant) return [v.type, toPy(v.value)];
    return Array.isArray(v) ? v.map(toPy) : v;
  };
  const script = [
    "import importlib.util, json, sys",
    `spec = importlib.util.spec_from_file_location("ref", ${
      JSON.stringify(REFERENCE)
    })`,
    "ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)",
    "for t, v in json.load(sys.stdin): print(ref.ser(t, v).hex())",
  ].join("\n");
  const stdin = JSON.stringify(
    cases.map(([type, value]) => [type, toPy(value)]),
  );
  const lines = (await run("python3", ["-c", script], { stdin })).trim().split(
    "\n",
  );
  assert.equal(lines.length, cases.length);
  cases.forEach(([type, value], i) => {
    assert.equal(hex(encode(type, value)), lines[i], `case ${i}: ${type}`);
  });
});

Deno.test("bswap32 and bswap64 reverse byte order", () => {
  assert.equal(bswap32(0x01020304), 0x04030201);
  assert.equal(bswap32(0x000041ed), 0xed410000);
  assert.equal(bswap64(0x0102030405060708n), 0x0807060504030201n);
  assert.equal(bswap64(bswap64(2n ** 64n - 2n)), 2n ** 64n - 2n);
});

Deno.test("objects written by ostree decode, and re-encode to the same bytes", async (t) => {
  await using r = await ostreeRepo();
  const commitBytes = await Deno.readFile(r.object(r.commit, "commit"));
  const fields = decode(COMMIT, commitBytes) as Value[];
  const [meta, parent, related, subject, body, ts] = fields as [
    Map<string, Variant>,
    Uint8Array,
    Value[],
    string,
    string,
    bigint,
  ];
  const [rootTree, rootMeta] = fields.slice(6) as Uint8Array[] as [
    Uint8Array,
    Uint8Array,
  ];

  await t.step("the .commit object", async () => {
    assert.equal(await sha256(commitBytes), r.commit);
    assert.deepEqual([subject, body, parent.length, related], [
      "subj",
      utf8,
      0,
      [],
    ]);
    assert.ok(
      Math.abs(Number(bswap64(ts)) - Date.now() / 1000) < 300,
      `timestamp ${bswap64(ts)}`,
    );
    assert.deepEqual(meta.get("version"), new Variant("s", "1.0"));
    assert.deepEqual(
      meta.get("ostree.ref-binding"),
      new Variant("as", ["test/x"]),
    );
    assert.deepEqual(encode(COMMIT, fields), commitBytes);
  });

  await t.step(
    "the root .dirtree object lists files and subdirectories by name",
    async () => {
      const raw = await Deno.readFile(r.object(hex(rootTree), "dirtree"));
      assert.equal(await sha256(raw), hex(rootTree));
      const [files, dirs] = decode("(a(say)a(sayay))", raw) as [
        [string, Uint8Array][],
        [string, Uint8Array, Uint8Array][],
      ];
      assert.deepEqual(files.map(([name]) => name), ["hello.txt", "link"]);
      for (const [, csum] of files) {
        await Deno.stat(r.object(hex(csum), "filez"));
      }
      assert.deepEqual(dirs.map(([name]) => name), ["sub"]);
      await Deno.stat(r.object(hex(dirs[0]![1]), "dirtree"));
      assert.deepEqual(encode("(a(say)a(sayay))", [files, dirs]), raw);
    },
  );

  await t.step(
    "the root .dirmeta object has the tree's owner and mode, big-endian",
    async () => {
      const raw = await Deno.readFile(r.object(hex(rootMeta), "dirmeta"));
      assert.equal(await sha256(raw), hex(rootMeta));
      const [uid, gid, mode, xattrs] = decode("(uuua(ayay))", raw) as [
        number,
        number,
        number,
        Value[],
      ];
      const st = await Deno.stat(r.tree);
      assert.deepEqual([bswap32(uid), bswap32(gid), bswap32(mode)], [
        st.uid,
        st.gid,
        st.mode,
      ]);
      assert.deepEqual(encode("(uuua(ayay))", [uid, gid, mode, xattrs]), raw);
    },
  );

  await t.step(
    "the summary from ostree summary -u lists test/x at this commit",
    async () => {
      await run("ostree", ["summary", "-u", `--repo=${r.repo}`]);
      const raw = await Deno.readFile(join(r.repo, "summary"));
      const summaryType = "(a(s(taya{sv}))a{sv})";
      const [refs, global] = decode(summaryType, raw) as [
        [string, [bigint, Uint8Array, Map<string, Variant>]][],
        Map<string, Variant>,
      ];
      const [name, [size, csum, refMeta]] = refs.find(([ref]) =>
        ref === "test/x"
      )!;
      assert.equal(name, "test/x");
      assert.equal(hex(csum), r.commit);
      assert.equal(size, BigInt(commitBytes.length)); // little-endian, unlike the timestamps
      assert.deepEqual(
        refMeta.get("ostree.commit.timestamp"),
        new Variant("t", ts),
      );
      assert.deepEqual(
        global.get("ostree.summary.mode"),
        new Variant("s", "archive-z2"),
      );
      assert.deepEqual(encode(summaryType, [refs, global]), raw);
    },
  );
});

Deno.test("decode rejects malformed input with a GVariantError", async (t) => {
  const deepVariant = [0, 0, 0x28, 0x29]; // <()>
  for (let i = 0; i < 1000; i++) deepVariant.push(0, 0x76); // wrapped in 1000 more variants
  const table: [string, string, Uint8Array, RegExp][] = [
    ["a truncated u", "u", bytes(1, 2, 3), /expected 4 bytes, found 3/],
    [
      "a truncated fixed tuple",
      "(ut)",
      new Uint8Array(12),
      /expected 16 bytes/,
    ],
    ["an empty string", "s", bytes(), /NUL/],
    [
      "a string without NUL",
      "s",
      unhex("616263"),
      /does not end at its only NUL/,
    ],
    ["a string with an inner NUL", "s", unhex("61006200"), /only NUL/],
    ["a string of invalid UTF-8", "s", unhex("ff00"), /not valid UTF-8/],
    ["an invalid object path", "o", unhex("6100"), /not an object path/],
    ["an invalid signature", "g", unhex("7b7d00"), /not a signature/],
    [
      "an array offset past the end",
      "as",
      unhex("610005"),
      /framing offset 5 is out of range/,
    ],
    [
      "an offset table that is not a whole number of 2-byte offsets",
      "aay",
      new Uint8Array([...filled(298), 0x29, 0x01]), // last offset 297: 3 bytes of table
      /framing offset 297 is out of range for 300 bytes/,
    ],
    [
      "an array element ending inside the offsets",
      "aay",
      unhex("6162 03 02"),
      /element 0 ends at 3, out of range/,
    ],
    [
      "array offsets going backwards",
      "aay",
      unhex("61626364 03 01 04"),
      /element 1 ends at 1/,
    ],
    [
      "a tuple offset past the end",
      "(say)",
      unhex("6100ff"),
      /member 0 ends at 255/,
    ],
    [
      "a tuple too short for its offsets",
      "(sss)",
      bytes(),
      /cannot hold 2 framing offsets/,
    ],
    ["a variant without NUL", "v", bytes(1, 2), /no NUL/],
    [
      "a variant with an invalid type string",
      "v",
      unhex("01007a"),
      /type string "z"/,
    ],
    [
      "a variant with an empty type string",
      "v",
      unhex("0100"),
      /type string ""/,
    ],
    [
      "a variant with two types",
      "v",
      unhex("01000000007575"),
      /type string "uu"/,
    ],
    [
      "a variant with a non-basic dict key",
      "v",
      unhex("00617b76737d"),
      /type string "a\{vs\}"/,
    ],
    [
      "a variant whose value has the wrong size",
      "v",
      unhex("0102 00 75"),
      /expected 4 bytes, found 2/,
    ],
    [
      "a fixed-size array of the wrong size",
      "ai",
      new Uint8Array(5),
      /5 bytes is not a multiple of 4/,
    ],
    [
      "a fixed-size tuple array of the wrong size",
      "a(yi)",
      new Uint8Array(12),
      /multiple of 8/,
    ],
    [
      "variants nested 1000 deep",
      "v",
      new Uint8Array(deepVariant),
      /nested deeper than 128/,
    ],
    [
      "a type string nested 1000 deep",
      "v",
      unhex(`00${"61".repeat(1000)}79`),
      /Invalid or unsupported type string/,
    ],
    ["a maybe type", "v", unhex("006d79"), /type string "my"/],
  ];
  for (const [name, type, input, message] of table) {
    await t.step(name, () => {
      assert.throws(
        () => decode(type, input),
        (e) => e instanceof GVariantError && message.test(e.message),
      );
    });
  }
  await t.step("invalid type strings from the caller", () => {
    for (const type of ["", "(", "a", "{sv}s", "a{vs}", "{s}", "z", "mi"]) {
      assert.throws(() => decode(type, bytes()), GVariantError, type);
    }
  });
});

Deno.test("decode never fails other than with GVariantError on truncated or corrupted bytes", () => {
  let seed = 42; // mulberry32: the same corruptions on every run
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), seed | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
  let rejected = 0, accepted = 0;
  for (
    const [type, value] of cases.filter(([, v]) =>
      !(v instanceof Uint8Array && v.length > 1000)
    )
  ) {
    const good = encode(type, value);
    if (good.length > 1000) continue;
    for (let round = 0; round < 60; round++) {
      const bad = round < 20
        ? good.slice(0, Math.floor(random() * good.length))
        : good.slice();
      if (round >= 20 && bad.length > 0) {
        bad[Math.floor(random() * bad.length)] = Math.floor(random() * 256);
      }
      try {
        const back = decode(type, bad);
        encode(type, back); // whatever decode accepts must be writable again
        accepted++;
      } catch (e) {
        if (!(e instanceof GVariantError)) {
          throw new Error(`${type} ${hex(bad)}: ${e}`);
        }
        rejected++;
      }
    }
  }
  assert.ok(
    rejected > 500 && accepted > 500,
    `${rejected} rejected, ${accepted} accepted`,
  );
});

Deno.test("encode rejects values that do not fit the type", async (t) => {
  const table: [string, Value, RegExp][] = [
    [
      "y",
      256,
      /Cannot encode number 256 as "y": expected an integer from 0 to 255/,
    ],
    ["i", 1.5, /expected an integer/],
    ["t", -1n, /from 0 to 18446744073709551615/],
    ["x", 2 ** 60, /expected an integer/],
    ["b", 1, /expected a boolean/],
    ["s", "a\0b", /contains a NUL character/],
    ["s", "\ud800", /not well-formed Unicode/],
    ["o", "relative/path", /not an object path/],
    ["ay", [1, 2], /expected a Uint8Array/],
    ["(ii)", [1], /expected an array of 2 members/],
    ["a{sv}", [["k", new Variant("s", "v")]], /expected a Map/],
    ["a{sv}", new Map([["k", "v"]]), /expected a Variant/],
    [
      "v",
      new Variant("a{vs}", new Map()),
      /Invalid or unsupported type string "a\{vs\}"/,
    ],
    ["as", "abc", /expected an array/],
  ];
  for (const [type, value, message] of table) {
    await t.step(`${type} ${String(value)}`, () => {
      assert.throws(
        () => encode(type, value),
        (e) => e instanceof GVariantError && message.test(e.message),
      );
    });
  }
});
