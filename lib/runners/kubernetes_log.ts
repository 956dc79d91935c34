/**
 * @module The log of a build's pod copied into its task log (lib/runners/kubernetes_follow.ts):
 * followed with timestamps, resumed after a dropped stream from the last line's second without
 * repeating lines, until the builder container has exited.
 */
import http from "node:http";
import https from "node:https";
import { ApiException, type KubeConfig } from "@kubernetes/client-node";
import {
  BUILDER_CONTAINER,
  describeApiError,
  type KubernetesRunnerOptions,
} from "./kubernetes_objects.ts";
import type { RunRequest } from "./runner.ts";

/** What the log follower needs of the Job it belongs to. */
export interface LogSource {
  readonly kc: KubeConfig;
  readonly opts: KubernetesRunnerOptions;
  readonly req: Pick<RunRequest, "log">;
  /** Aborted when the log is no longer wanted. */
  readonly logSignal: AbortSignal;
  builderExited(podName: string): Promise<boolean>;
}

/** Waits `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Waits between retries of a dropped watch or log stream. */
export const DEFAULT_RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000];

/** An RFC 3339 timestamp as a fixed-width string that sorts in time order. */
function sortableStamp(ts: string): string | undefined {
  const m =
    /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/
      .exec(ts);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3]}`) / 1000;
  if (!Number.isFinite(seconds)) return undefined;
  return `${String(seconds).padStart(12, "0")}.${(m[2] ?? "").padEnd(9, "0")}`;
}

/**
 * Follows the builder container's log (`follow=true&timestamps=true`) into `req.log`.
 *
 * What is guaranteed: lines reach `req.log` in order and whole (a line cut by a dropped
 * connection is read again in full). After a drop the stream resumes with `sinceTime` set to the
 * second of the last line seen; lines older than the last one are skipped, and of the lines
 * sharing its exact timestamp as many are skipped as were already delivered, so nothing is lost
 * or repeated as long as the kubelet still has the log (rotation can lose lines) and timestamps
 * do not go backwards. The stream ends when it reaches EOF and the container has exited.
 *
 * The client library's own `Log` helper is not used: it pipes the response into a stream
 * without an error handler, so a dropped connection surfaces as an unhandled error.
 */
export class LogFollower {
  #last: string | undefined;
  #seenAtLast = 0;

  constructor(readonly job: LogSource, readonly podName: string) {}

  async run(): Promise<void> {
    const signal = this.job.logSignal;
    const delays = this.job.opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    let failures = 0;
    while (!signal.aborted) {
      let delivered = 0;
      let ended = false;
      let error: unknown;
      try {
        delivered = await this.#readOnce(signal);
        ended = true;
      } catch (err) {
        error = err;
      }
      if (signal.aborted) return;
      try {
        if (ended && await this.job.builderExited(this.podName)) return;
      } catch (err) {
        error = err;
      }
      failures = delivered > 0 ? 0 : failures + 1;
      const delay = delays[failures - 1];
      if (failures > 0 && delay === undefined) {
        await this.job.req.log(
          `[flatyard] Lost the builder log of pod "${this.podName}": ${
            describeApiError(error ?? "no progress")
          }`,
        );
        return;
      }
      if (delay) await sleep(delay, signal);
    }
  }

  /** One log request; resolves on EOF with the number of new lines delivered. */
  async #readOnce(signal: AbortSignal): Promise<number> {
    const res = await this.#open(signal);
    const resumeAt = this.#last;
    const skip = this.#seenAtLast;
    let atResume = 0;
    let delivered = 0;
    let buffered = "";
    const decoder = new TextDecoder();
    for await (const chunk of res) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const raw = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const space = raw.indexOf(" ");
        const stamp = space > 0
          ? sortableStamp(raw.slice(0, space))
          : undefined;
        const line = stamp === undefined ? raw : raw.slice(space + 1);
        if (stamp !== undefined && resumeAt !== undefined) {
          if (stamp < resumeAt) continue;
          if (stamp === resumeAt && ++atResume <= skip) continue;
        }
        if (stamp !== undefined) {
          if (stamp === this.#last) this.#seenAtLast++;
          else [this.#last, this.#seenAtLast] = [stamp, 1];
        }
        delivered++;
        await this.job.req.log(line);
      }
    }
    // A last line without a newline only counts once the container has exited (see run()).
    if (buffered && await this.job.builderExited(this.podName)) {
      const space = buffered.indexOf(" ");
      const stamped = space > 0 &&
        sortableStamp(buffered.slice(0, space)) !== undefined;
      delivered++;
      await this.job.req.log(stamped ? buffered.slice(space + 1) : buffered);
    }
    return delivered;
  }

  async #open(signal: AbortSignal): Promise<http.IncomingMessage> {
    const kc = this.job.kc;
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new Error("The kubeconfig has no current cluster");
    const url = new URL(
      `${server}/api/v1/namespaces/${this.job.opts.namespace}/pods/${this.podName}/log`,
    );
    url.searchParams.set("container", BUILDER_CONTAINER);
    url.searchParams.set("follow", "true");
    url.searchParams.set("timestamps", "true");
    if (this.#last !== undefined) {
      // sinceTime is read to the second: resume at the last line's second, skip what we have.
      const seconds = Number(this.#last.split(".")[0]);
      url.searchParams.set(
        "sinceTime",
        new Date(seconds * 1000).toISOString().slice(0, 19) + "Z",
      );
    }
    const options: https.RequestOptions = {};
    // The kubeconfig's credentials and TLS settings, as the client library applies them.
    await kc.applyToHTTPSOptions(options);
    const plain = url.protocol === "http:";
    if (plain) delete options.agent;
    const request = plain ? http.request : https.request;
    return await new Promise((resolve, reject) => {
      const r = request(url, { ...options, method: "GET", signal }, (res) => {
        if (res.statusCode === 200) return resolve(res);
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => body += c);
        res.on(
          "end",
          () =>
            reject(
              new ApiException(
                res.statusCode ?? 0,
                "log request failed",
                body,
                {},
              ),
            ),
        );
        res.on("error", reject);
      });
      r.on("error", reject);
      r.end();
    });
  }
}
