/**
 * @module Request bodies exactly as flat-manager's clients write them (specs/flat-manager-api.md
 * §5.3), for tests that drive the server over raw HTTP.
 */

/** The Python client's multipart/mixed body (§5.3), byte for byte. */
export function pythonMultipart(
  files: { name: string; bytes: Uint8Array }[],
): { body: Uint8Array; type: string } {
  const boundary = crypto.randomUUID().replaceAll("-", "");
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const f of files) {
    parts.push(enc.encode(
      `--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${f.name}"\r\nContent-Length: ${f.bytes.length}\r\n\r\n`,
    ));
    parts.push(f.bytes, enc.encode("\r\n"));
  }
  parts.push(enc.encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    body.set(p, at);
    at += p.length;
  }
  return { body, type: `multipart/mixed; boundary=${boundary}` };
}
