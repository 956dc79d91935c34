/**
 * @module Errors of the flat-manager client: the server's JSON error body as a typed error
 * (specs/flat-manager-api.md §0.4), and which failures are worth retrying (§5.5).
 */
import { ConnectionError, type HttpResponse } from "./http_transport.ts";

/** flat-manager's error body (§0.4); non-JSON errors are wrapped the Python client's way. */
export interface ApiErrorBody {
  status: number;
  "error-type": string;
  message: string;
  "current-state"?: string;
  "expected-state"?: string;
  [key: string]: unknown;
}

/** A non-2xx answer from the server, with flat-manager's error body. */
export class FlatManagerApiError extends Error {
  override name = "FlatManagerApiError";
  constructor(
    readonly url: string,
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(`API call to ${url} failed with status ${status}: ${body.message}`);
  }
  /** `error-type`, e.g. `wrong-published-state`; `no-error` for a non-JSON body. */
  get errorType(): string {
    return this.body["error-type"];
  }
  /** `current-state` of a wrong-state error. */
  get currentState(): string | undefined {
    const s = this.body["current-state"];
    return typeof s === "string" ? s : undefined;
  }

  /** Parses an error response; a body that is not flat-manager's JSON becomes a message. */
  static from(url: string, res: HttpResponse): FlatManagerApiError {
    const text = new TextDecoder().decode(res.body);
    try {
      const b = JSON.parse(text);
      if (b && typeof b === "object" && typeof b.message === "string") {
        return new FlatManagerApiError(url, res.status, {
          ...b,
          status: typeof b.status === "number" ? b.status : res.status,
          "error-type": typeof b["error-type"] === "string"
            ? b["error-type"]
            : "no-error",
        });
      }
    } catch { /* not JSON: wrapped below */ }
    return new FlatManagerApiError(url, res.status, {
      status: res.status,
      "error-type": "no-error",
      message: `Non-json error from server: ${text.slice(0, 500)}`,
    });
  }
}

/** The server's answer to an upload had a different number of entries than parts sent. */
export class IncompleteUploadError extends Error {
  override name = "IncompleteUploadError";
}

/** 5xx, lost connections and short upload answers are retried; 4xx never are (§5.5). */
export function isRetryable(e: unknown): boolean {
  return e instanceof ConnectionError || e instanceof IncompleteUploadError ||
    (e instanceof FlatManagerApiError && e.status >= 500);
}
