/** @module The clock: injected so token expiry, sessions and leases can be tested without sleeping. */

/** Current time source. */
export interface Clock {
  now(): Date;
}

/** Wall-clock time. */
export const systemClock: Clock = { now: () => new Date() };

/** Unix seconds of a clock's now, as JWT `exp` uses. */
export function unixNow(clock: Clock): number {
  return Math.floor(clock.now().getTime() / 1000);
}
