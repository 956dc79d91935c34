/**
 * @module Following a job's log live, for the SSE and WebSocket streams (routes/live_logs.ts).
 *
 * A follower subscribes to the job's bus channels first, then reads the backlog from the
 * database, then passes on live chunks. Every chunk carries its byte offset (`JobQueue.appendLog`
 * stores it before publishing it), so a live chunk already covered by the backlog is dropped and
 * a gap (a bus message lost, or one overtaken) is filled from the database: nothing is lost or
 * repeated.
 */
import type { Bus } from "../bus/bus.ts";
import { sliceFromByte } from "./job_log.ts";
import {
  channels,
  type JobQueue,
  type JobStatus,
  terminalStatuses,
} from "./queue.ts";

/** What a stream sends: a piece of log (`offset`: the byte offset just past it), or the end. */
export type LiveLogEvent =
  | { type: "log"; offset: number; text: string }
  | { type: "end"; status: JobStatus };

const encoder = new TextEncoder();
const isTerminal = (s: string) => (terminalStatuses as string[]).includes(s);

type Inbound =
  | { kind: "log"; offset: number; text: string }
  | { kind: "status"; status: string }
  | { kind: "unreadable" };

function parseLogMessage(message: string): Inbound {
  try {
    const m = JSON.parse(message) as { offset?: unknown; text?: unknown };
    if (typeof m.offset === "number" && typeof m.text === "string") {
      return { kind: "log", offset: m.offset, text: m.text };
    }
  } catch { /* fall through */ }
  return { kind: "unreadable" };
}

/**
 * Follows job `id`'s log from byte `from` until the job ends (`end` is then the last event) or
 * `signal` aborts. Call `return()` on the generator when done with it early.
 */
export async function* followJobLog(
  queue: JobQueue,
  bus: Bus,
  id: number,
  from: number,
  signal: AbortSignal,
  resyncMs: number,
): AsyncGenerator<LiveLogEvent, void> {
  const inbox: Inbound[] = [];
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const push = (m: Inbound) => {
    inbox.push(m);
    notify();
  };
  signal.addEventListener("abort", notify);
  const unsubscribe: (() => Promise<void>)[] = [];
  try {
    // Subscribe before reading the backlog: a line appended in between is then both in the
    // backlog and in the inbox, and its offset tells which copy to drop.
    unsubscribe.push(
      await bus.subscribe(channels.log(id), (m) => push(parseLogMessage(m))),
      await bus.subscribe(
        channels.status(id),
        (status) => push({ kind: "status", status }),
      ),
    );
    let sent = from;
    // Read the database next round: at the start, after a gap, when the job ends, and now and
    // then on a quiet stream (a lost bus message must not stall it).
    let resync = true;
    while (!signal.aborted) {
      if (resync) {
        resync = false;
        // The status is read before the log: a job seen ended has all of its log stored, since
        // a worker's appends complete before it records the end.
        const job = await queue.get(id);
        if (!job) return;
        const log = await queue.readLog(id, sent);
        if (log.text !== "") {
          yield { type: "log", offset: log.next, text: log.text };
          sent = log.next;
        } else {
          // Nothing past `sent`: an offset beyond the end goes back to the end.
          sent = log.next;
        }
        if (isTerminal(job.status)) {
          yield { type: "end", status: job.status };
          return;
        }
        continue;
      }
      if (inbox.length === 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(() => {
            resync = true;
            notify();
          }, resyncMs);
        });
        clearTimeout(timer);
        continue;
      }
      for (const m of inbox.splice(0)) {
        if (m.kind === "status") {
          if (isTerminal(m.status)) resync = true;
          continue;
        }
        // A database read is coming: it covers every chunk published before it.
        if (resync) continue;
        if (m.kind === "unreadable") {
          resync = true;
          continue;
        }
        const end = m.offset + encoder.encode(m.text).length;
        if (end <= sent) continue;
        if (m.offset > sent) {
          resync = true;
          continue;
        }
        const text = m.offset === sent
          ? m.text
          : sliceFromByte(m.text, sent - m.offset).text;
        yield { type: "log", offset: end, text };
        sent = end;
      }
    }
  } finally {
    signal.removeEventListener("abort", notify);
    await Promise.allSettled(unsubscribe.map((off) => off()));
  }
}
