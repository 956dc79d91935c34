/**
 * @module GVariant normal-form serialization and parsing (little-endian), driven by type strings,
 * for OSTree objects, summaries and detached metadata (`specs/ostree-repos.md` §4.1).
 */

/** Malformed bytes, an invalid type string, or a value that does not fit its type. */
export class GVariantError extends Error {
  override name = "GVariantError";
}

/** A value of type `v`: a value together with its own type string. */
export class Variant {
  constructor(readonly type: string, readonly value: Value) {}
}

/**
 * A GVariant value: `y n q i u h d` → number, `x t` → bigint (encode also takes safe integers),
 * `b` → boolean, `s o g` → string, `ay` → Uint8Array, other arrays and tuples → arrays, arrays of
 * dict entries → Map (serialized in its order), `v` → {@link Variant}.
 */
export type Value =
  | number
  | bigint
  | boolean
  | string
  | Uint8Array
  | Variant
  | Value[]
  | Map<Value, Value>;

/** glib's G_VARIANT_MAX_RECURSION_DEPTH: bounds the stack for hostile nesting. */
const MAX_DEPTH = 128;

interface Shape {
  text: string;
  align: number;
  /** Serialized size if every value of the type has the same size, else null. */
  fixed: number | null;
}
type GType =
  | Shape & { kind: "basic"; code: string }
  | Shape & { kind: "array"; elem: GType }
  | Shape & { kind: "tuple" | "entry"; members: GType[] };

/** Integer types: [size in bytes, signed]. `h` (a D-Bus handle index) is an int32. */
// deno-fmt-ignore
const INTS = new Map<string, [number, boolean]>(Object.entries({
  y: [1, false], n: [2, true], q: [2, false], i: [4, true], h: [4, true],
  u: [4, false], x: [8, true], t: [8, false],
}));
/** Alignment and fixed size of the other basic types. */
// deno-fmt-ignore
const OTHERS = new Map<string, [number, number | null]>(Object.entries({
  b: [1, 1], d: [8, 8], s: [1, null], o: [1, null], g: [1, null], v: [8, null],
}));

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder();
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

function parseType(text: string): GType {
  const [type, end] = parseAt(text, 0, 0);
  if (end !== text.length) throw invalidType(text);
  return type;
}

const invalidType = (text: string) =>
  new GVariantError(
    `Invalid or unsupported type string "${
      text.length > 64 ? `${text.slice(0, 64)}…` : text
    }"`,
  );

function parseAt(text: string, i: number, depth: number): [GType, number] {
  const c = text[i];
  if (c === undefined || depth > MAX_DEPTH) throw invalidType(text);
  const size = INTS.get(c)?.[0];
  const [align, fixed] = size ? [size, size] : OTHERS.get(c) ?? [0, null];
  if (align > 0) {
    return [{ kind: "basic", code: c, text: c, align, fixed }, i + 1];
  }
  if (c === "a") {
    const [elem, j] = parseAt(text, i + 1, depth + 1);
    const type = {
      kind: "array",
      elem,
      align: elem.align,
      fixed: null,
    } as const;
    return [{ ...type, text: text.slice(i, j) }, j];
  }
  if (c !== "(" && c !== "{") throw invalidType(text);
  const members: GType[] = [];
  let j = i + 1;
  while (text[j] !== (c === "(" ? ")" : "}")) {
    const [member, next] = parseAt(text, j, depth + 1);
    members.push(member);
    j = next;
  }
  const [key] = members;
  if (
    c === "{" &&
    (members.length !== 2 || key?.kind !== "basic" || key.code === "v")
  ) {
    throw invalidType(text);
  }
  let maxAlign = 1, end: number | null = 0;
  for (const m of members) {
    maxAlign = Math.max(maxAlign, m.align);
    end = end === null || m.fixed === null
      ? null
      : alignUp(end, m.align) + m.fixed;
  }
  // The unit type `()` takes one byte, so that an array of units has a length.
  const tupleSize = end === null ? null : alignUp(Math.max(end, 1), maxAlign);
  const kind = c === "(" ? "tuple" : "entry";
  const tuple = { kind, members, align: maxAlign, fixed: tupleSize } as const;
  return [{ ...tuple, text: text.slice(i, j + 1) }, j + 1];
}

/** Checks the rules of `s`, `o` and `g` strings; returns what is wrong, if anything. */
function checkString(code: string, s: string): string | undefined {
  if (s.includes("\0")) return "contains a NUL character";
  if (!s.isWellFormed()) return "is not well-formed Unicode";
  if (code === "o" && !/^\/(?:\w+(?:\/\w+)*)?$/.test(s)) {
    return "is not an object path";
  }
  if (code !== "g") return;
  try {
    for (let i = 0; i < s.length;) i = parseAt(s, i, 0)[1];
  } catch {
    return "is not a signature";
  }
}

/** `size` bytes of `n` (taken modulo 2^(8·size)), little-endian. */
function le(n: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0, u = BigInt.asUintN(8 * size, n); i < size; i++, u >>= 8n) {
    out[i] = Number(u & 0xffn);
  }
  return out;
}

/** The unsigned little-endian integer of `size` bytes at `at`. */
function readLE(b: Uint8Array, at: number, size: number): bigint {
  let n = 0n;
  for (let i = size - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[at + i]!);
  return n;
}

// -------------------------------------------------------------------------------------------------
// Encoding

/** A growable byte buffer. Containers start aligned, so absolute alignment is relative alignment. */
class Builder {
  bytes = new Uint8Array(256);
  length = 0;
  /** Makes room for `n` more bytes; bytes past `length` are always still zero. */
  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const grown = new Uint8Array(
      Math.max(2 * this.bytes.length, this.length + n),
    );
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
  push(data: Uint8Array): void {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }
  pad(align: number): void {
    const to = alignUp(this.length, align);
    this.reserve(to - this.length);
    this.length = to;
  }
  /** Appends end offsets (relative to `start`) at the smallest width the whole container fits. */
  frame(start: number, ends: number[]): void {
    const body = this.length - start;
    const width =
      [1, 2, 4].find((w) => body + w * ends.length < 2 ** (8 * w)) ?? 8;
    this.reserve(width * ends.length);
    for (let end of ends) {
      for (let i = 0; i < width; i++, end = Math.floor(end / 256)) {
        this.bytes[this.length++] = end % 256;
      }
    }
  }
}

function write(t: GType, v: Value, out: Builder, depth: number): void {
  const bad = (why: string) =>
    new GVariantError(`Cannot encode ${describe(v)} as "${t.text}": ${why}`);
  if (depth > MAX_DEPTH) throw bad(`nested deeper than ${MAX_DEPTH} levels`);
  if (t.kind === "array") {
    const el = t.elem;
    if (el.kind === "basic" && el.code === "y") {
      if (!(v instanceof Uint8Array)) throw bad("expected a Uint8Array");
      return out.push(v);
    }
    const items = el.kind === "entry"
      ? v instanceof Map && [...v]
      : Array.isArray(v) && v;
    if (!items) {
      throw bad(el.kind === "entry" ? "expected a Map" : "expected an array");
    }
    const start = out.length, ends: number[] = [];
    for (const item of items) {
      out.pad(el.align);
      write(el, item, out, depth + 1);
      ends.push(out.length - start);
    }
    if (el.fixed === null && ends.length > 0) out.frame(start, ends);
  } else if (t.kind !== "basic") {
    const n = t.members.length;
    if (!Array.isArray(v) || v.length !== n) {
      throw bad(`expected an array of ${n} members`);
    }
    const start = out.length, ends: number[] = [];
    t.members.forEach((m, i) => {
      out.pad(m.align);
      write(m, v[i]!, out, depth + 1);
      if (m.fixed === null && i < n - 1) ends.push(out.length - start);
    });
    // Tuples store their framing offsets last member first.
    if (t.fixed === null) out.frame(start, ends.reverse());
    else if (out.length === start) out.push(new Uint8Array(1));
    else out.pad(t.align);
  } else out.push(basicBytes(t.code, v, bad, depth));
}

function basicBytes(
  code: string,
  v: Value,
  bad: (why: string) => GVariantError,
  depth: number,
): Uint8Array {
  const int = INTS.get(code);
  if (int) {
    const [size, signed] = int, bits = BigInt(8 * size);
    const n = typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : v;
    const [min, max] = signed
      ? [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n]
      : [0n, (1n << bits) - 1n];
    if (typeof n !== "bigint" || n < min || n > max) {
      throw bad(`expected an integer from ${min} to ${max}`);
    }
    return le(n, size);
  }
  if (code === "b") {
    if (typeof v !== "boolean") throw bad("expected a boolean");
    return new Uint8Array([v ? 1 : 0]);
  }
  if (code === "d") {
    if (typeof v !== "number") throw bad("expected a number");
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, v, true);
    return new Uint8Array(view.buffer);
  }
  if (code === "v") {
    if (!(v instanceof Variant)) throw bad("expected a Variant");
    const child = new Builder();
    write(parseType(v.type), v.value, child, depth + 1);
    child.push(utf8.encode(`\0${v.type}`));
    return child.bytes.subarray(0, child.length);
  }
  if (typeof v !== "string") throw bad("expected a string");
  const why = checkString(code, v);
  if (why) throw bad(`the string ${why}`);
  return utf8.encode(`${v}\0`);
}

function describe(v: Value): string {
  if (v instanceof Uint8Array) return `a Uint8Array of ${v.length} bytes`;
  if (v instanceof Map) return `a Map of ${v.size} entries`;
  if (v instanceof Variant) return `a Variant of type "${v.type}"`;
  if (Array.isArray(v)) return `an array of ${v.length} items`;
  if (typeof v !== "string") return `${typeof v} ${v}`;
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
}

/** Serializes `value` as `type` in normal form. Throws {@link GVariantError} if it does not fit. */
export function encode(type: string, value: Value): Uint8Array<ArrayBuffer> {
  const out = new Builder();
  write(parseType(type), value, out, 0);
  return out.bytes.slice(0, out.length);
}

// -------------------------------------------------------------------------------------------------
// Decoding: each value is read from the sub-array of exactly its own bytes, so no read can leave it.

function read(t: GType, b: Uint8Array, depth: number): Value {
  const bad = (why: string) =>
    new GVariantError(`Cannot decode "${t.text}": ${why}`);
  if (depth > MAX_DEPTH) throw bad(`nested deeper than ${MAX_DEPTH} levels`);
  if (t.fixed !== null && b.length !== t.fixed) {
    throw bad(`expected ${t.fixed} bytes, found ${b.length}`);
  }
  // Framing offsets are 1, 2, 4 or 8 bytes by the container's size (glib gvs_get_offset_size).
  const width = 2 **
    [0xff, 0xffff, 0xffffffff, Infinity].findIndex((max) => b.length <= max);
  const offsetAt = (at: number) => {
    let n = 0; // exact below 2^53, and anything larger is out of range anyway
    for (let i = width - 1; i >= 0; i--) n = n * 256 + b[at + i]!;
    return n;
  };
  if (t.kind === "array") {
    const el = t.elem;
    if (el.kind === "basic" && el.code === "y") return b.slice();
    const items: Value[] = [];
    if (el.fixed !== null) {
      if (b.length % el.fixed !== 0) {
        throw bad(`${b.length} bytes is not a multiple of ${el.fixed}`);
      }
      for (let at = 0; at < b.length; at += el.fixed) {
        items.push(read(el, b.subarray(at, at + el.fixed), depth + 1));
      }
    } else if (b.length > 0) {
      // The last framing offset is the end of the last element, i.e. where the offsets start.
      const table = offsetAt(b.length - width);
      if (table > b.length - width || (b.length - table) % width !== 0) {
        throw bad(
          `framing offset ${table} is out of range for ${b.length} bytes`,
        );
      }
      for (let at = table, prev = 0; at < b.length; at += width) {
        const start = at === table ? 0 : alignUp(prev, el.align),
          end = offsetAt(at);
        if (start > end || end > table) {
          throw bad(`element ${items.length} ends at ${end}, out of range`);
        }
        items.push(read(el, b.subarray(start, end), depth + 1));
        prev = end;
      }
    }
    if (el.kind !== "entry") return items;
    // A repeated key keeps its first value, as g_variant_lookup finds it.
    const map = new Map<Value, Value>();
    for (const [k, v] of items as [Value, Value][]) {
      if (!map.has(k)) map.set(k, v);
    }
    return map;
  }
  if (t.kind !== "basic") {
    const last = t.members.length - 1;
    const framed = t.members.filter((m, i) =>
      m.fixed === null && i < last
    ).length;
    const bodyEnd = b.length - framed * width;
    if (bodyEnd < 0) {
      throw bad(`${b.length} bytes cannot hold ${framed} framing offsets`);
    }
    let pos = 0, k = 0;
    return t.members.map((m, i) => {
      const start = alignUp(pos, m.align);
      const end = m.fixed !== null
        ? start + m.fixed
        : i === last
        ? bodyEnd
        : offsetAt(b.length - ++k * width);
      if (start > end || end > bodyEnd) {
        throw bad(`member ${i} ends at ${end}, out of range`);
      }
      pos = end;
      return read(m, b.subarray(start, end), depth + 1);
    });
  }
  const int = INTS.get(t.code);
  if (int) {
    const n = int[1]
      ? BigInt.asIntN(8 * int[0], readLE(b, 0, int[0]))
      : readLE(b, 0, int[0]);
    return int[0] === 8 ? n : Number(n);
  }
  if (t.code === "b") return b[0] !== 0; // glib reads any non-zero byte as true
  if (t.code === "d") {
    return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true);
  }
  if (t.code === "v") {
    const nul = b.lastIndexOf(0);
    if (nul < 0) throw bad("no NUL before the type string");
    const text = lenientUtf8.decode(b.subarray(nul + 1)); // parseType rejects non-ASCII
    return new Variant(
      text,
      read(parseType(text), b.subarray(0, nul), depth + 1),
    );
  }
  if (b.length === 0 || b.indexOf(0) !== b.length - 1) {
    throw bad("the string does not end at its only NUL");
  }
  let s: string;
  try {
    s = strictUtf8.decode(b.subarray(0, -1));
  } catch {
    throw bad("the string is not valid UTF-8");
  }
  const why = checkString(t.code, s);
  if (why) throw bad(`the string ${why}`);
  return s;
}

/** Parses normal-form bytes of `type`. Throws {@link GVariantError} on malformed input. */
export function decode(type: string, bytes: Uint8Array): Value {
  return read(parseType(type), bytes, 0);
}

// -------------------------------------------------------------------------------------------------
// Big-endian integers inside little-endian variants (commit timestamps, dirmeta modes, sizes).

/** Reverses the byte order of a 32-bit unsigned integer (`u` fields ostree stores big-endian). */
export function bswap32(n: number): number {
  return Number(readLE(le(BigInt(n), 4).reverse(), 0, 4));
}

/** Reverses the byte order of a 64-bit unsigned integer (`t` fields ostree stores big-endian). */
export function bswap64(n: bigint): bigint {
  return readLE(le(n, 8).reverse(), 0, 8);
}
