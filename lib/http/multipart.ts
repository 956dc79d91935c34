/**
 * @module Streaming parser of `multipart/*` request bodies (RFC 2046 §5.1, RFC 7578) under
 * flat-manager's upload acceptance rules (`specs/flat-manager-api.md` §5.3): parts are handed
 * out one at a time as streams, and the body is read no further ahead than their consumer.
 */

/** A malformed, truncated or refused multipart body. */
export class MultipartError extends Error {
  override name = "MultipartError";
}

function bad(message: string): never {
  throw new MultipartError(message);
}

/** One part of a multipart body. */
export interface MultipartPart {
  headers: Headers;
  /** From Content-Disposition `filename*=` (RFC 8187), else `filename=`. */
  filename: string | undefined;
  /** The Content-Disposition type in lowercase (`attachment`, `form-data`), if the header is there. */
  disposition: string | undefined;
  /** The Content-Disposition `name=` (the form-data field name). */
  name: string | undefined;
  /**
   * The part's content. Drain or cancel it before the handler returns: what is left is then
   * skipped, and the stream errors if read later.
   */
  body: ReadableStream<Uint8Array>;
}

// flat-manager's vendored actix-multipart refuses more than 32 headers per part (§5.3); the
// header block size and the transport padding are capped so no line can grow without bound.
const MAX_HEADERS = 32, MAX_HEADER_BYTES = 16 << 10, MAX_PADDING = 1024;
const CR = 13, LF = 10, DASH = 45, SP = 32, HT = 9;
const CRLFCRLF = new Uint8Array([CR, LF, CR, LF]);
const TCHARS = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const HEADER_LINE = new RegExp(`^(${TCHARS}):[ \\t]*(.*?)[ \\t]*$`);
const PARAM = new RegExp(
  `^[ \\t]*;[ \\t]*(${TCHARS})[ \\t]*=[ \\t]*(?:(${TCHARS})|"((?:[^"\\\\]|\\\\.)*)")[ \\t]*`,
);
// RFC 2046 §5.1.1 bchars: 1 to 70 of them, not ending in a space.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/**
 * Parses a `multipart/*` body, calling `onPart` for each part in order and waiting for it
 * before reading on. Resolves with the number of parts; rejects with a {@link MultipartError}
 * on a malformed or truncated body, or with what `onPart` threw.
 */
export async function parseMultipart(
  body: ReadableStream<Uint8Array>,
  contentType: string,
  onPart: (part: MultipartPart) => Promise<void>,
): Promise<number> {
  const { type, params } = parseHeaderValue(contentType, "Content-Type");
  if (!/^multipart\/[^/]+$/i.test(type)) {
    bad(`Expected a multipart Content-Type, found "${type}"`);
  }
  const boundary = params.get("boundary");
  if (boundary === undefined) bad("Multipart Content-Type has no boundary");
  if (!BOUNDARY.test(boundary)) {
    bad(`Multipart boundary "${boundary}" is not 1 to 70 valid characters`);
  }
  const reader = body.getReader();
  const formData = type.toLowerCase() === "multipart/form-data";
  try {
    return await new Parser(reader, boundary, formData).run(onPart);
  } catch (e) {
    await reader.cancel(e).catch(() => {});
    throw e;
  } finally {
    reader.releaseLock();
  }
}

class Parser {
  #s: Scanner;
  #delimiter: Uint8Array;
  #fatal: unknown;
  /** Whether the delimiter ending the current part (or the preamble) has been consumed. */
  #partDone = false;
  constructor(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    readonly boundary: string,
    readonly formData: boolean,
  ) {
    this.#delimiter = new TextEncoder().encode(`\r\n--${boundary}`);
    // The body is scanned as if it began with CRLF, so a first boundary on the very first line
    // (no preamble) is found like every later one, which must follow a CRLF (RFC 2046 §5.1.1).
    this.#s = new Scanner(reader, new Uint8Array([CR, LF]));
  }

  async run(onPart: (part: MultipartPart) => Promise<void>): Promise<number> {
    await this.#skipToDelimiter(
      `Multipart body has no boundary "${this.boundary}"`,
    );
    let count = 0;
    while (await this.#afterDelimiter()) {
      const part = await this.#readPart(++count);
      this.#partDone = false;
      let open = true, pulling = Promise.resolve();
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start: (c) => void (controller = c),
        pull: (c) =>
          pulling = this.#next().then((chunk) => {
            if (!open) return;
            if (chunk) return c.enqueue(chunk);
            open = false;
            c.close();
          }, (e) => {
            this.#fatal ??= e;
            throw e;
          }),
        cancel: () => void (open = false),
      }, { highWaterMark: 0 }); // nothing is read before the consumer asks for it
      try {
        await onPart({ ...part, body });
      } catch (e) {
        throw this.#fatal ?? e; // a body error, not how the handler reported it
      } finally {
        await pulling.catch(() => {});
        // Later reads would race the parser for the body: the part is over for its consumer.
        if (open) {
          controller.error(
            new MultipartError(`Multipart part ${count} read too late`),
          );
        }
        open = false;
      }
      if (this.#fatal) throw this.#fatal;
      await this.#skipToDelimiter(); // whatever the handler left unread
    }
    return count;
  }

  async #skipToDelimiter(truncated?: string): Promise<void> {
    while (!this.#partDone) await this.#next(truncated);
  }

  /** Content up to the next delimiter; undefined once the delimiter is consumed. */
  async #next(truncated?: string): Promise<Uint8Array | undefined> {
    const s = this.#s, d = this.#delimiter;
    for (;;) {
      const at = s.find(d);
      if (at === 0) {
        s.skip(d.length);
        this.#partDone = true;
        return undefined;
      }
      if (at > 0) return s.take(at);
      // Keep only what could be the start of a delimiter split across chunks: usually nothing,
      // so the next chunk is used as it comes instead of copied behind a kept tail.
      if (s.size >= d.length) return s.take(s.size - s.tailPrefix(d));
      if (!await s.more()) {
        bad(truncated ?? "Multipart body ends before its closing boundary");
      }
    }
  }

  /** After a delimiter: true for CRLF (a part follows), false for `--` (the close delimiter). */
  async #afterDelimiter(): Promise<boolean> {
    const s = this.#s;
    for (let padding = 0;;) {
      while (s.size < 2) {
        if (!await s.more()) bad("Multipart body ends inside a boundary line");
      }
      const [a, b] = [s.at(0), s.at(1)];
      if (a === DASH && b === DASH) return false; // the epilogue is ignored (RFC 2046 §5.1.1)
      if (a === CR && b === LF) return s.skip(2), true;
      if ((a !== SP && a !== HT) || padding++ >= MAX_PADDING) {
        bad(`Multipart boundary "${this.boundary}" is followed by junk`);
      }
      s.skip(1); // transport padding
    }
  }

  async #readPart(n: number): Promise<Omit<MultipartPart, "body">> {
    const s = this.#s;
    let end = -1, skip = 4; // a part without headers has a lone CRLF for header block
    for (let from = 0; end < 0;) {
      if (s.at(0) === CR && s.at(1) === LF) [end, skip] = [0, 2];
      else if ((end = s.find(CRLFCRLF, from)) >= 0) break;
      else if (s.size > MAX_HEADER_BYTES + 3) break;
      // Resume where a CRLFCRLF split across chunks could start, not from the top (1-byte chunks).
      from = Math.max(0, s.size - 3);
      if (end < 0 && !await s.more()) {
        bad(`Multipart part ${n} ends in its headers`);
      }
    }
    if (end < 0 || end > MAX_HEADER_BYTES) {
      bad(`Multipart part ${n} has more than 16 KiB of headers`);
    }
    // Header bytes are taken as ISO-8859-1, as `Headers` wants; filenames are re-read as UTF-8.
    const block = String.fromCharCode(...s.take(end));
    s.skip(skip);
    const fields: [string, string][] = [];
    for (const line of end ? block.split("\r\n") : []) {
      const m = HEADER_LINE.exec(line), last = fields.at(-1);
      if (/^[ \t]/.test(line) && last) last[1] += ` ${line.trim()}`; // obs-fold
      else if (m) fields.push([m[1]!, m[2]!]);
      else bad(`Multipart part ${n} has a malformed header line`);
    }
    if (fields.length > MAX_HEADERS) {
      bad(`Multipart part ${n} has more than ${MAX_HEADERS} headers`);
    }
    const headers = new Headers();
    for (const [k, v] of fields) {
      try {
        headers.append(k, v);
      } catch {
        bad(`Multipart part ${n} has an invalid "${k}" header`);
      }
    }
    return { headers, ...describe(n, fields, this.formData) };
  }
}

/** Disposition, name and filename of part `n`; refuses nested multipart (§5.3). */
function describe(n: number, fields: [string, string][], formData: boolean) {
  const values = (name: string) =>
    fields.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
  if (values("content-type").some((t) => /^multipart\//i.test(t))) {
    bad(`Multipart part ${n} is itself multipart, which is not accepted`);
  }
  const cds = values("content-disposition");
  if (cds.length > 1) {
    bad(`Multipart part ${n} has more than one Content-Disposition`);
  }
  const cd = cds[0] === undefined
    ? undefined
    : parseHeaderValue(cds[0], "Content-Disposition");
  const disposition = cd?.type.toLowerCase(), name = cd?.params.get("name");
  // Only form-data requires its own disposition; for other subtypes flat-manager reads the raw
  // header whatever its type (§5.3).
  if (formData && (disposition !== "form-data" || name === undefined)) {
    bad(`Multipart form-data part ${n} has no "form-data" disposition name`);
  }
  const star = cd?.params.get("filename*"), plain = cd?.params.get("filename");
  const filename = star !== undefined
    ? extValue(star, n)
    : plain && utf8(plain);
  return { disposition, name, filename };
}

/** `type *(; name=value)` with quoted-string values (RFC 9110 §5.6.6); names in lowercase. */
function parseHeaderValue(value: string, header: string) {
  const fail = (why: string) =>
    bad(`Cannot parse ${header} "${value}": ${why}`);
  const head = /^[ \t]*([^;\s]+)[ \t]*/.exec(value) ?? fail("it has no type");
  const params = new Map<string, string>();
  for (let rest = value.slice(head[0].length); !/^[ \t;]*$/.test(rest);) {
    const m = PARAM.exec(rest) ?? fail("a parameter is malformed");
    const key = m[1]!.toLowerCase();
    // A repeated parameter is ambiguous, and parsers that disagree on it are a smuggling vector.
    if (params.has(key)) fail(`parameter "${key}" appears twice`);
    params.set(key, m[2] ?? m[3]!.replace(/\\(.)/g, "$1"));
    rest = rest.slice(m[0].length);
  }
  return { type: head[1]!, params };
}

/** An RFC 8187 ext-value, `charset'language'percent-encoded`: UTF-8 or ISO-8859-1. */
function extValue(value: string, n: number): string {
  const m = /^(utf-8|iso-8859-1)'[^']*'(.*)$/i.exec(value);
  try {
    if (m?.[1]?.toLowerCase() === "utf-8") return decodeURIComponent(m[2]!);
    if (m && !/%(?![0-9A-Fa-f]{2})/.test(m[2]!)) {
      return m[2]!.replace(
        /%(..)/g,
        (_, h) => String.fromCharCode(parseInt(h, 16)),
      );
    }
  } catch { /* falls through to the error below */ }
  bad(`Multipart part ${n} has an invalid filename*`);
}

/** Header text (ISO-8859-1 characters) re-read as UTF-8, which is what clients send. */
function utf8(latin1: string): string {
  // ASCII reads the same either way (object names always are).
  if (!/[\u0080-\uffff]/.test(latin1)) return latin1;
  try {
    const bytes = Uint8Array.from(latin1, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return latin1;
  }
}

const skipTables = new WeakMap<Uint8Array, Uint16Array>();

/** For each byte, how far a window may move when it is under the window's last position. */
function skipTable(needle: Uint8Array): Uint16Array {
  let t = skipTables.get(needle);
  if (!t) {
    const m = needle.length;
    t = new Uint16Array(256).fill(m);
    for (let k = 0; k < m - 1; k++) t[needle[k]!] = m - 1 - k;
    skipTables.set(needle, t);
  }
  return t;
}

/** A read buffer over the body: it holds the unconsumed rest of at most one more chunk. */
class Scanner {
  #buf: Uint8Array;
  #pos = 0;
  constructor(
    readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    initial: Uint8Array,
  ) {
    this.#buf = initial;
  }
  get size(): number {
    return this.#buf.length - this.#pos;
  }
  at(i: number): number | undefined {
    return this.#buf[this.#pos + i];
  }
  /** Reads one more chunk of the body; false at its end. */
  async more(): Promise<boolean> {
    const { done, value } = await this.reader.read();
    if (done) return false;
    const rest = this.#buf.subarray(this.#pos);
    // Never written into after this: chunks handed out are views of these buffers.
    this.#buf = rest.length === 0
      ? value
      : new Uint8Array(rest.length + value.length);
    if (rest.length > 0) this.#buf.set(rest), this.#buf.set(value, rest.length);
    this.#pos = 0;
    return true;
  }
  /**
   * Offset of `needle` in the unread bytes, searching from `from`; -1 if absent. Horspool's
   * search: the byte under a window's last position says how far the window can move, nearly
   * the needle's length on object data, so most bytes of a part are never looked at.
   */
  find(needle: Uint8Array, from = 0): number {
    const b = this.#buf, m = needle.length, skip = skipTable(needle);
    const lastByte = needle[m - 1]!;
    for (let i = this.#pos + from; i <= b.length - m;) {
      const c = b[i + m - 1]!;
      if (c === lastByte) {
        let k = m - 2;
        while (k >= 0 && b[i + k] === needle[k]) k--;
        if (k < 0) return i - this.#pos;
      }
      i += skip[c]!;
    }
    return -1;
  }
  /** The length of the longest end of the unread bytes that `needle` starts with (< its length). */
  tailPrefix(needle: Uint8Array): number {
    const b = this.#buf, end = b.length;
    for (let k = Math.min(needle.length - 1, this.size); k > 0; k--) {
      if (b[end - k] !== needle[0]) continue;
      let i = 1;
      while (i < k && b[end - k + i] === needle[i]) i++;
      if (i === k) return k;
    }
    return 0;
  }
  take(n: number): Uint8Array {
    return this.#buf.subarray(this.#pos, this.#pos += n);
  }
  skip(n: number): void {
    this.#pos += n;
  }
}
