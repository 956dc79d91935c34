/** @module {@link Bus} within one process: handlers run on a later microtask, like a real bus. */
import type { Bus, BusHandler } from "./bus.ts";

/** Creates an in-process bus. */
export function createMemoryBus(): Bus {
  const channels = new Map<string, Set<BusHandler>>();
  let closed = false;
  return {
    kind: "memory",
    publish(channel, message) {
      if (closed) {
        return Promise.reject(new Error("Cannot publish on a closed bus"));
      }
      for (const handler of channels.get(channel) ?? []) {
        queueMicrotask(() => handler(message));
      }
      return Promise.resolve();
    },
    subscribe(channel, handler) {
      if (closed) {
        return Promise.reject(new Error("Cannot subscribe on a closed bus"));
      }
      // Wrap so the same function may subscribe twice and unsubscribe each independently.
      const entry: BusHandler = (m) => handler(m);
      let set = channels.get(channel);
      if (!set) channels.set(channel, set = new Set());
      set.add(entry);
      return Promise.resolve(() => {
        set.delete(entry);
        if (set.size === 0) channels.delete(channel);
        return Promise.resolve();
      });
    },
    close() {
      closed = true;
      channels.clear();
      return Promise.resolve();
    },
  };
}
