/** @module The client's address: the socket peer, or with a trusted proxy the first X-Forwarded-For. */
import type { Context } from "hono";

/** Best-effort client IP; "unknown" when the app runs without a socket (tests). */
export function clientIp(c: Context, trustProxy: boolean): string {
  if (trustProxy) {
    const fwd = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (fwd) return fwd;
  }
  const env = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return env?.remoteAddr?.hostname ?? "unknown";
}
