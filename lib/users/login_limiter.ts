/**
 * @module Slows password guessing: after `max` failed logins for one username from one address
 * within `windowMs`, further attempts are refused until the window passes. In memory, per
 * process: a coarse brake, not an account lockout (which would let anyone lock anyone out).
 */
import type { Clock } from "../clock.ts";

export class LoginLimiter {
  private failures = new Map<string, number[]>();

  constructor(
    private readonly clock: Clock,
    private readonly max = 10,
    private readonly windowMs = 15 * 60_000,
  ) {}

  /** Seconds to wait before trying again, or 0 when an attempt is allowed. */
  retryAfter(username: string, ip: string): number {
    const now = this.clock.now().getTime();
    const recent = (this.failures.get(`${username}\0${ip}`) ?? []).filter((t) =>
      now - t < this.windowMs
    );
    if (recent.length < this.max) return 0;
    return Math.ceil((recent[0]! + this.windowMs - now) / 1000);
  }

  fail(username: string, ip: string): void {
    const key = `${username}\0${ip}`;
    const now = this.clock.now().getTime();
    const recent = (this.failures.get(key) ?? []).filter((t) =>
      now - t < this.windowMs
    );
    recent.push(now);
    this.failures.set(key, recent);
    if (this.failures.size > 10_000) {
      this.failures.delete(this.failures.keys().next().value!);
    }
  }

  succeed(username: string, ip: string): void {
    this.failures.delete(`${username}\0${ip}`);
  }
}
