/**
 * @module Long polling by RFC 7240's `Prefer: wait=N` (§4.3): a poll of something that is still
 * moving (a running job, a committing build) may be held until it changes, at most N seconds
 * (capped at {@link MAX_WAIT_SECONDS}), and the answer says so with `Preference-Applied`. It is
 * a native extension on flat-manager's poll routes: flat-manager's own clients never send the
 * header and get the immediate answer they always did; Flatyard's CLI sends it and skips its
 * sleep when the server applied it, so it sees a job end when it ends, not a poll interval later.
 */
import type { Context } from "hono";
import type { Bus } from "../bus/bus.ts";
import type { ServerEnv } from "./node_request.ts";

/** The longest hold: short enough not to delay a shutdown much, long enough to save polls. */
export const MAX_WAIT_SECONDS = 10;

/** The header a client sends, and the one that tells it the server held the request. */
export const PREFER_HEADER = "Prefer";
export const PREFERENCE_APPLIED_HEADER = "Preference-Applied";

/**
 * The wait a `Prefer` header asks for, in whole seconds capped at {@link MAX_WAIT_SECONDS}, or
 * undefined when it asks for none. Preferences are comma-separated tokens with optional values
 * and parameters (RFC 7240 §2): `respond-async, wait=5`, `wait="5"`; an unparsable one is
 * ignored, as §2 asks.
 */
export function preferredWait(
  header: string | undefined | null,
): number | undefined {
  if (!header) return undefined;
  for (const pref of header.split(",")) {
    const m = /^\s*wait\s*=\s*"?(\d{1,9})"?\s*(?:;.*)?$/i.exec(pref);
    if (m) {
      const n = Number(m[1]);
      return n > 0 ? Math.min(n, MAX_WAIT_SECONDS) : undefined;
    }
  }
  return undefined;
}

/**
 * Reads with `read` until `settled` says the state moved, holding up to `seconds` for messages
 * on `channels` (or until the client goes away). It subscribes before its first read, so a
 * change between a read and the wait is never missed; each message is followed by a fresh
 * read, and the hold ends with the last read. A lost message costs at most the wait.
 */
export async function waitForChange<T>(
  bus: Bus,
  channels: readonly string[],
  seconds: number,
  read: () => Promise<T>,
  settled: (value: T) => boolean,
  signal?: AbortSignal,
): Promise<T> {
  let heard = false;
  let wake: () => void = () => {};
  const onMessage = () => {
    heard = true;
    wake();
  };
  const offs = await Promise.all(
    channels.map((ch) => bus.subscribe(ch, onMessage)),
  );
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    wake();
  }, seconds * 1000);
  const onAbort = () => wake();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    let value = await read();
    while (!settled(value) && !timedOut && !signal?.aborted) {
      if (!heard) await new Promise<void>((resolve) => (wake = resolve));
      if (!heard) break; // the time is up or the client left
      heard = false;
      value = await read();
    }
    return value;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    await Promise.all(offs.map((off) => off()));
  }
}

/**
 * What ends a hold besides the time: the client going away, or the server shutting down (a
 * held poll must not keep a shutdown waiting for its whole wait).
 */
export function holdSignal(c: Context): AbortSignal {
  const closing = (c.env as Partial<ServerEnv> | undefined)?.closing;
  return closing
    ? AbortSignal.any([c.req.raw.signal, closing])
    : c.req.raw.signal;
}
