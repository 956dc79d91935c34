/**
 * @module Reading job logs from a byte offset. Offsets are UTF-8 byte counts, as flat-manager's
 * `log-offset` (specs/flat-manager-api.md §4.4); an offset inside a multi-byte character is
 * rounded down to its start instead of failing (§5.6: the Python client counts characters).
 */
import type { Queryable } from "../db/db.ts";

/** A piece of a job's log and the byte offset where it starts. */
export interface JobLogChunk {
  offset: number;
  text: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Cuts `text` at byte `skip`, moving back to a character boundary; returns the rest and its start. */
export function sliceFromByte(
  text: string,
  skip: number,
): { text: string; skipped: number } {
  const bytes = encoder.encode(text);
  let at = Math.max(0, Math.min(skip, bytes.length));
  // UTF-8 continuation bytes are 10xxxxxx: step back to the first byte of the character.
  while (at > 0 && at < bytes.length && (bytes[at]! & 0xc0) === 0x80) at--;
  return { text: decoder.decode(bytes.subarray(at)), skipped: at };
}

/** The log of job `id` from byte `offset`, and the offset just past its end. */
export async function readJobLog(
  db: Queryable,
  id: number,
  offset: number,
): Promise<{ text: string; next: number }> {
  const rows = await db.query<{ start_byte: number; text: string }>(
    `SELECT start_byte, text FROM job_logs
     WHERE job_id = $1 AND start_byte + octet_length(text) > $2
     ORDER BY start_byte`,
    [id, Math.max(0, offset)],
  );
  if (rows.length === 0) {
    const [job] = await db.query<{ log_bytes: number }>(
      "SELECT log_bytes FROM jobs WHERE id = $1",
      [id],
    );
    // Nothing past `offset` was read: the next read starts there again, unless the log is
    // shorter (a chunk stored between the two queries must not be skipped).
    return {
      text: "",
      next: Math.min(Math.max(0, offset), job?.log_bytes ?? 0),
    };
  }
  const first = rows[0]!;
  const head = sliceFromByte(first.text, offset - first.start_byte);
  const last = rows[rows.length - 1]!;
  return {
    text: head.text + rows.slice(1).map((r) => r.text).join(""),
    next: last.start_byte + encoder.encode(last.text).length,
  };
}
