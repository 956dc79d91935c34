/**
 * @module {@link Bus} on Redis pub/sub: one connection publishes, a duplicate subscribes (a Redis
 * connection in subscriber mode can do nothing else). Channels are prefixed per installation.
 */
import { createClient } from "redis";
import type { Bus, BusHandler } from "./bus.ts";

/** Connects to `url`; `prefix` keeps several installations on one Redis apart. */
export async function createRedisBus(
  url: string,
  prefix = "flatyard:",
): Promise<Bus> {
  const pub = createClient({ url });
  // Without a listener, a connection error is thrown as an unhandled event and kills the process;
  // the client reconnects by itself, and a lost message is only a late wake-up (see bus.ts).
  pub.on("error", () => {});
  await pub.connect();
  const sub = pub.duplicate();
  sub.on("error", () => {});
  await sub.connect();
  const handlers = new Map<
    string,
    { set: Set<BusHandler>; ready: Promise<void> }
  >();
  return {
    kind: "redis",
    async publish(channel, message) {
      await pub.publish(prefix + channel, message);
    },
    async subscribe(channel, handler) {
      const entry: BusHandler = (m) => handler(m);
      let slot = handlers.get(channel);
      if (!slot) {
        const set = new Set<BusHandler>();
        // A second subscriber to the same channel waits for the same SUBSCRIBE to be live.
        const ready = sub.subscribe(prefix + channel, (message: string) => {
          for (const h of set) h(message);
        }).then(() => {});
        handlers.set(channel, slot = { set, ready });
      }
      slot.set.add(entry);
      await slot.ready;
      const mine = slot;
      return async () => {
        mine.set.delete(entry);
        if (mine.set.size === 0 && handlers.get(channel) === mine) {
          handlers.delete(channel);
          await sub.unsubscribe(prefix + channel);
        }
      };
    },
    async close() {
      handlers.clear();
      await Promise.allSettled([sub.quit(), pub.quit()]);
    },
  };
}
