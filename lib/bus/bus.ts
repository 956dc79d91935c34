/**
 * @module The event bus: publish/subscribe on named channels. It only wakes workers and fans out
 * live events (log lines, revocations); losing a message loses no state (ARCHITECTURE.md §5).
 */

/** Called for each message on a subscribed channel. */
export type BusHandler = (message: string) => void;

/** Publish/subscribe. In-process by default (`memory_bus.ts`), Redis in production (`redis_bus.ts`). */
export interface Bus {
  readonly kind: "memory" | "redis";
  publish(channel: string, message: string): Promise<void>;
  /** Resolves once the subscription is live; the returned function ends it. */
  subscribe(channel: string, handler: BusHandler): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
