/**
 * @module A raw HTTP/1.1 request over TCP, for what `fetch` refuses to send: flat-manager clients
 * put JSON bodies on GET requests (specs/flat-manager-api.md §0.3).
 */

/** Sends one request (Connection: close) and returns the status, headers and body bytes. */
export async function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Uint8Array | string,
): Promise<
  { status: number; headers: Headers; body: Uint8Array; text(): string }
> {
  const bytes = typeof body === "string"
    ? new TextEncoder().encode(body)
    : body;
  const head = [
    `${method} ${path} HTTP/1.1`,
    ...(Object.keys(headers).some((k) => k.toLowerCase() === "host")
      ? []
      : ["Host: 127.0.0.1"]),
    "Connection: close",
  ];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  if (bytes) head.push(`Content-Length: ${bytes.length}`);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head.join("\r\n") + "\r\n\r\n"));
    // Written in the background: a server may answer (413) before it has read the whole body.
    const writing = bytes
      ? writeAll(conn, bytes).catch(() => {})
      : Promise.resolve();
    const raw = await readAll(conn);
    await writing;
    const split = raw.findIndex((_, i) =>
      raw[i] === 13 && raw[i + 1] === 10 && raw[i + 2] === 13 &&
      raw[i + 3] === 10
    );
    const lines = new TextDecoder().decode(raw.subarray(0, split)).split(
      "\r\n",
    );
    const status = Number(lines[0]!.split(" ")[1]);
    const h = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      h.append(l.slice(0, i), l.slice(i + 1).trim());
    }
    let payload: Uint8Array = raw.subarray(split + 4);
    if (h.get("transfer-encoding") === "chunked") payload = dechunk(payload);
    return {
      status,
      headers: h,
      body: payload,
      text: () => new TextDecoder().decode(payload),
    };
  } finally {
    try {
      conn.close();
    } catch { /* already closed by the server */ }
  }
}

function dechunk(b: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  for (;;) {
    let j = i;
    while (!(b[j] === 13 && b[j + 1] === 10)) j++;
    const size = parseInt(new TextDecoder().decode(b.subarray(i, j)), 16);
    if (!size) break;
    out.push(...b.subarray(j + 2, j + 2 + size));
    i = j + 2 + size + 2;
  }
  return Uint8Array.from(out);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at, at + 65536));
  }
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      parts.push(buf.slice(0, n));
    }
  } catch { /* a reset after the response: keep what arrived */ }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
