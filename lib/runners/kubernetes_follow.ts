/**
 * @module Following one Kubernetes Job of the runner (lib/runners/kubernetes.ts) until it ends:
 * list+watch loops on the Job and its pod that resume after a dropped watch, and how the run
 * ended (succeeded, build failed, stuck, infrastructure). The pod's log is kubernetes_log.ts's.
 */

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
import {
  DEFAULT_RETRY_DELAYS_MS,
  LogFollower,
  sleep,
} from "./kubernetes_log.ts";

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
