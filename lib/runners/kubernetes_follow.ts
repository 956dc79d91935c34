/**
 * @module Following one Kubernetes Job of the runner (lib/runners/kubernetes.ts) until it ends:
 * list+watch loops on the Job and its pod that resume after a dropped watch, the pod's log copied
 * into the task log, and how the run ended (succeeded, build failed, stuck, infrastructure).
 */

import http from "node:http";
import https from "node:https";
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  type V1Job,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import {
  BUILDER_CONTAINER,
  describeApiError,
  type KubernetesRunnerOptions,
  STUCK_REASONS,
} from "./kubernetes_objects.ts";
import {
  BUILD_FAILED_EXIT,
  type RunRequest,
  type RunResult,
} from "./runner.ts";

/** Container waiting reason (with its message) of a builder that will not start by itself. */
export function stuckReason(pod: V1Pod): string | undefined {
  const status = builderStatus(pod);
  const waiting = status?.state?.waiting;
  if (!waiting?.reason || !STUCK_REASONS.has(waiting.reason)) return undefined;
  return waiting.message
    ? `${waiting.reason}: ${waiting.message}`
    : waiting.reason;
}

function builderStatus(pod: V1Pod) {
  return pod.status?.containerStatuses?.find((c) =>
    c.name === BUILDER_CONTAINER
  );
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
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

const DEFAULT_RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000];

interface WatchSession {
  /** Events other than ERROR received. */
  events: number;
  /** The server said our resourceVersion is too old (410): list again. */
  gone: boolean;
  error?: unknown;
}

/**
 * Follows one Job until it ends. Two list+watch loops (the Job, and its pod by the
 * `flatyard.io/run` label) feed one state; the first conclusive fact settles the result.
 * A dropped watch resumes from the last resourceVersion seen, or lists again when the server
 * answers 410 Gone, so no state change is missed: the decision reads the objects' current
 * conditions, not the events, and a re-list replays them.
 */
export class JobFollower {
  readonly #watch: Watch;
  readonly #stop = new AbortController();
  readonly #logStop = new AbortController();
  readonly #pods = new Map<string, V1Pod>();
  readonly #result: Promise<RunResult>;
  #resolve!: (r: RunResult) => void;
  #settled = false;
  #deleteJob = false;
  #stuck = 0;
  #logTask: Promise<void> | undefined;

  constructor(
    readonly kc: KubeConfig,
    readonly batch: BatchV1Api,
    readonly core: CoreV1Api,
    readonly opts: KubernetesRunnerOptions,
    readonly name: string,
    readonly req: RunRequest,
  ) {
    this.#watch = new Watch(kc);
    this.#result = new Promise((resolve) => this.#resolve = resolve);
  }

  async follow(): Promise<RunResult> {
    const onAbort = () => {
      this.#deleteJob = true;
      this.#finish({ outcome: "cancelled", message: "Cancelled" });
    };
    this.req.signal.addEventListener("abort", onAbort, { once: true });
    const loops = [this.#watchLoop("job"), this.#watchLoop("pod")];
    let result = await this.#result;
    this.req.signal.removeEventListener("abort", onAbort);
    if (this.#deleteJob) {
      this.#logStop.abort();
      result = await this.#deleteTheJob(result);
    } else {
      // The Job can end before the pod watch told us the builder started: look once more.
      if (!this.#logTask) await this.#startLogsFromFreshPod();
      if (this.#logTask) {
        await Promise.race([
          this.#logTask,
          sleep(this.opts.logDrainMs ?? 30_000, this.#stop.signal),
        ]);
      }
    }
    this.#stop.abort();
    this.#logStop.abort();
    await Promise.all([...loops, this.#logTask]);
    return result;
  }

  #finish(result: RunResult): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#resolve(result);
  }

  #infrastructure(message: string, deleteJob = false): void {
    if (deleteJob && !this.#settled) this.#deleteJob = true;
    this.#finish({ outcome: "infrastructure", message });
  }

  async #deleteTheJob(result: RunResult): Promise<RunResult> {
    try {
      // Background: the Job goes at once and the garbage collector removes its pod after.
      await this.batch.deleteNamespacedJob({
        name: this.name,
        namespace: this.opts.namespace,
        propagationPolicy: "Background",
      });
      return result;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return result;
      return {
        ...result,
        message: `${result.message}; cannot delete Job "${this.name}": ${
          describeApiError(err)
        }`,
      };
    }
  }

  /** Waits after the n-th consecutive failure; false (and the run settled) when out of tries. */
  async #backoff(
    failures: number,
    what: string,
    err: unknown,
  ): Promise<boolean> {
    const delays = this.opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    const delay = delays[failures - 1];
    if (delay === undefined) {
      this.#infrastructure(`${what}: ${describeApiError(err)}`);
      return false;
    }
    await sleep(delay, this.#stop.signal);
    return true;
  }

  async #watchLoop(kind: "job" | "pod"): Promise<void> {
    const namespace = this.opts.namespace;
    const path = kind === "job"
      ? `/apis/batch/v1/namespaces/${namespace}/jobs`
      : `/api/v1/namespaces/${namespace}/pods`;
    const selector = kind === "job"
      ? { fieldSelector: `metadata.name=${this.name}` }
      : { labelSelector: `flatyard.io/run=${this.name}` };
    const what =
      `Cannot watch the ${kind} of Job "${this.name}" in namespace "${namespace}"`;
    let resourceVersion: string | undefined;
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      if (resourceVersion === undefined) {
        try {
          resourceVersion = kind === "job"
            ? await this.#listJob()
            : await this.#listPods();
          failures = 0;
        } catch (err) {
          if (!await this.#backoff(++failures, what, err)) return;
          continue;
        }
      }
      const session = await this.#watchOnce(
        path,
        { ...selector, resourceVersion, allowWatchBookmarks: true },
        kind,
        (rv) => resourceVersion = rv,
      );
      if (this.#stop.signal.aborted) return;
      if (session.gone) {
        resourceVersion = undefined;
      } else if (
        session.error instanceof Error && session.error.name === "TimeoutError"
      ) {
        // The client's inactivity timer: a quiet Job, not a failure. Resume where we were.
      } else if (session.events > 0) {
        failures = 0;
      } else if (
        !await this.#backoff(++failures, what, session.error ?? "closed")
      ) {
        return;
      }
    }
  }

  async #listJob(): Promise<string> {
    const list = await this.batch.listNamespacedJob({
      namespace: this.opts.namespace,
      fieldSelector: `metadata.name=${this.name}`,
    });
    const job = list.items[0];
    if (job) this.#onJob("ADDED", job);
    else {this.#infrastructure(
        `Job "${this.name}" was deleted before it finished`,
      );}
    return list.metadata?.resourceVersion ?? "";
  }

  async #listPods(): Promise<string> {
    const list = await this.core.listNamespacedPod({
      namespace: this.opts.namespace,
      labelSelector: `flatyard.io/run=${this.name}`,
    });
    for (const pod of list.items) this.#onPod("ADDED", pod);
    return list.metadata?.resourceVersion ?? "";
  }

  #watchOnce(
    path: string,
    query: Record<string, string | boolean | undefined>,
    kind: "job" | "pod",
    setVersion: (rv: string) => void,
  ): Promise<WatchSession> {
    return new Promise((resolve) => {
      const session: WatchSession = { events: 0, gone: false };
      let controller: AbortController | undefined;
      let done = false;
      // The client does not call `done` when its controller is aborted: end the session here.
      const onStop = () => {
        controller?.abort();
        end(undefined);
      };
      this.#stop.signal.addEventListener("abort", onStop, { once: true });
      const end = (err: unknown) => {
        if (done) return;
        done = true;
        this.#stop.signal.removeEventListener("abort", onStop);
        if (err && session.error === undefined) session.error = err;
        resolve(session);
      };
      const onEvent = (type: string, obj: unknown) => {
        const o = obj as {
          code?: number;
          message?: string;
          metadata?: { resourceVersion?: string };
        };
        if (type === "ERROR") {
          if (o.code === 410) session.gone = true;
          else session.error = new Error(o.message ?? "watch error");
          return;
        }
        session.events++;
        if (o.metadata?.resourceVersion) setVersion(o.metadata.resourceVersion);
        if (type === "BOOKMARK") return;
        if (kind === "job") this.#onJob(type, obj as V1Job);
        else this.#onPod(type, obj as V1Pod);
      };
      this.#watch.watch(path, query, onEvent, end).then((c) => {
        controller = c;
        if (this.#stop.signal.aborted) c.abort();
      }, end);
    });
  }

  #onJob(type: string, job: V1Job): void {
    if (this.#settled) return;
    if (type === "DELETED") {
      return this.#infrastructure(
        `Job "${this.name}" was deleted before it finished`,
      );
    }
    const ended = job.status?.conditions?.find((c) =>
      (c.type === "Complete" || c.type === "Failed") && c.status === "True"
    );
    if (!ended) return;
    if (ended.type === "Complete") {
      return this.#finish({
        outcome: "succeeded",
        message: "Build succeeded",
        exitCode: 0,
      });
    }
    if (ended.reason === "DeadlineExceeded") {
      return this.#finish({
        outcome: "timeout",
        message:
          `Build exceeded its time limit of ${this.req.resources.timeoutSeconds} s`,
      });
    }
    void this.#classifyFailure(
      `${ended.reason ?? "Failed"}: ${ended.message ?? ""}`.trim(),
    );
  }

  /** A failed Job: the pod tells whether the build failed or something under it did. */
  async #classifyFailure(jobReason: string): Promise<void> {
    let pods = [...this.#pods.values()];
    if (
      !pods.some((p) => builderStatus(p)?.state?.terminated || p.status?.reason)
    ) {
      try {
        pods = (await this.core.listNamespacedPod({
          namespace: this.opts.namespace,
          labelSelector: `flatyard.io/run=${this.name}`,
        })).items;
      } catch (err) {
        return this.#infrastructure(
          `Job "${this.name}" failed (${jobReason}); cannot read its pod: ${
            describeApiError(err)
          }`,
        );
      }
    }
    for (const pod of pods) {
      if (pod.status?.reason === "Evicted") {
        return this.#infrastructure(
          `Builder pod was evicted: ${pod.status.message ?? ""}`.trim(),
        );
      }
      const t = builderStatus(pod)?.state?.terminated;
      if (!t) continue;
      const detail = (t.message ?? "").trim();
      if (t.exitCode === BUILD_FAILED_EXIT) {
        return this.#finish({
          outcome: "failed",
          message: detail ? `Build failed: ${detail}` : "Build failed",
          exitCode: t.exitCode,
        });
      }
      return this.#finish({
        outcome: "infrastructure",
        message: `Builder exited with code ${t.exitCode}${
          t.reason ? ` (${t.reason})` : ""
        }${detail ? `: ${detail}` : ""}`,
        exitCode: t.exitCode,
      });
    }
    this.#infrastructure(`Job "${this.name}" failed: ${jobReason}`);
  }

  #onPod(type: string, pod: V1Pod): void {
    const podName = pod.metadata?.name;
    if (!podName) return;
    this.#pods.set(podName, pod);
    if (type === "DELETED") return;
    const state = builderStatus(pod)?.state;
    if (state?.running || state?.terminated) this.#startLogs(podName);
    const stuck = stuckReason(pod);
    if (stuck && ++this.#stuck > (this.opts.waitingFailureLimit ?? 4)) {
      this.#infrastructure(
        `Builder pod "${podName}" cannot start: ${stuck}`,
        true,
      );
    }
  }

  async #startLogsFromFreshPod(): Promise<void> {
    try {
      const pods = await this.core.listNamespacedPod({
        namespace: this.opts.namespace,
        labelSelector: `flatyard.io/run=${this.name}`,
      });
      for (const pod of pods.items) this.#onPod("ADDED", pod);
    } catch {
      // no pod to read: the result already says why
    }
  }

  #startLogs(podName: string): void {
    if (this.#logTask) return;
    this.#logTask = new LogFollower(this, podName).run().catch((err) => {
      this.opts.logger?.warn("Builder log follower failed", {
        job: this.name,
        error: describeApiError(err),
      });
    });
  }

  get logSignal(): AbortSignal {
    return this.#logStop.signal;
  }

  /** Reads the pod now (not from the watch): has the builder container exited? */
  async builderExited(podName: string): Promise<boolean> {
    const pod = await this.core.readNamespacedPod({
      name: podName,
      namespace: this.opts.namespace,
    });
    this.#onPod("MODIFIED", pod);
    return Boolean(builderStatus(pod)?.state?.terminated) ||
      pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
  }
}

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
class LogFollower {
  #last: string | undefined;
  #seenAtLast = 0;

  constructor(readonly job: JobFollower, readonly podName: string) {}

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
