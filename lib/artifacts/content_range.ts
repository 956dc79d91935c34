/**
 * @module The `Content-Range` of a chunk upload (RFC 9110 §14.4): `bytes START-END/TOTAL`, both
 * ends inclusive. Only the grammar is checked here; whether the range fits the artifact is the
 * route's business, because each misfit has its own status code.
 */

/** A parsed byte range; `end` is inclusive. */
export interface ContentRange {
  start: number;
  end: number;
  total: number;
}

// At most 16 digits keeps every value a safe integer (well past any artifact size).
const CONTENT_RANGE = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/;

/** The grammar, for the OpenAPI header schema. */
export const CONTENT_RANGE_PATTERN = CONTENT_RANGE.source;

/** Parses `value`; undefined when it is not `bytes START-END/TOTAL` with START ≤ END. */
export function parseContentRange(value: string): ContentRange | undefined {
  const m = CONTENT_RANGE.exec(value.trim());
  if (!m) return undefined;
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (start > end) return undefined;
  return { start, end, total };
}

/** `Content-Range` of one chunk of a `total`-byte file. */
export function formatContentRange(
  start: number,
  end: number,
  total: number,
): string {
  return `bytes ${start}-${end}/${total}`;
}
