/**
 * @module What every answered request leaves behind: a metrics sample by route and a `request`
 * log line. Used by the app's middleware and by the repository-file fast path alike.
 */
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";

/** One answered request. `route` is the route pattern, `path` the path asked for. */
export interface AnsweredRequest {
  requestId: string;
  method: string;
  route: string;
  path: string;
  status: number;
  seconds: number;
}

/** Counts the request in the metrics and logs it at info level. */
export function recordRequest(
  out: { metrics: Metrics; logger: Logger },
  r: AnsweredRequest,
): void {
  out.metrics.observeRequest(r.method, r.route, r.status, r.seconds);
  if (!out.logger.enabled("info")) return;
  out.logger.info("request", {
    requestId: r.requestId,
    method: r.method,
    route: r.route,
    path: r.path,
    status: r.status,
    ms: Math.round(r.seconds * 10_000) / 10,
  });
}
