/**
 * @module Retries with capped exponential backoff and jitter, bounded by a total time, as the
 * flat-manager clients retry server errors and lost connections (specs/flat-manager-api.md §5.5).
 */

/** How long and how often to retry. Defaults follow the Python client's tenacity settings. */
export interface RetryOptions {
  /** Give up once this much time has passed since the first attempt (default 300 s). */
  maxElapsedMs?: number;
  /** Upper bound of the first delay; it doubles per attempt (default 1 s). */
  initialDelayMs?: number;
  /** Cap on any one delay (default 60 s). */
  maxDelayMs?: number;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Injectable for tests; returns [0, 1). */
  random?: () => number;
  /** Injectable for tests; milliseconds. */
  now?: () => number;
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` until it succeeds, throws an error `retryable` rejects, or the next delay would
 * pass `maxElapsedMs`; then the last error is thrown as it is. Delays are drawn from
 * [cap/2, cap) with cap = min(maxDelay, initialDelay × 2^n): like tenacity's
 * `wait_random_exponential(multiplier=1, max=60)`, but never a near-zero wait.
 */
export async function withRetry<T>(
  attempt: () => Promise<T>,
  retryable: (e: unknown) => boolean,
  opts: RetryOptions = {},
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  const maxElapsed = opts.maxElapsedMs ?? 300_000;
  const initial = opts.initialDelayMs ?? 1000;
  const maxDelay = opts.maxDelayMs ?? 60_000;
  const now = opts.now ?? (() => performance.now());
  const random = opts.random ?? Math.random;
  const start = now();
  for (let n = 0;; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (!retryable(e)) throw e;
      const cap = Math.min(maxDelay, initial * 2 ** n);
      const delay = cap / 2 + random() * cap / 2;
      if (now() - start + delay > maxElapsed) throw e;
      onRetry?.(e, n + 1, delay);
      await (opts.sleep ?? sleep)(delay);
    }
  }
}
