/**
 * @module The Kubernetes runner: runs one build task as a `batch/v1` Job (one pod, no retries),
 * follows its pod's log into the task log and classifies how it ended. The upload token travels
 * in a short-lived Secret that the Job owns, so it is deleted with the Job even if this process
 * dies; the runner also deletes it itself at the end of every run. The objects it sends are built
 * in kubernetes_objects.ts.
 */

import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  type V1Job,
} from "@kubernetes/client-node";
import {
  buildJob,
  buildSecret,
  describeApiError,
  type KubernetesRunnerOptions,
  loadKubeConfig,
  runName,
} from "./kubernetes_objects.ts";
import { JobFollower } from "./kubernetes_follow.ts";
import { type Runner, type RunRequest, type RunResult } from "./runner.ts";

export * from "./kubernetes_objects.ts";
export { stuckReason } from "./kubernetes_follow.ts";

/** Runs build tasks as Kubernetes Jobs. */
export class KubernetesRunner implements Runner {
  readonly name = "kubernetes" as const;
  readonly #kc: KubeConfig;
  readonly #batch: BatchV1Api;
  readonly #core: CoreV1Api;

  constructor(readonly options: KubernetesRunnerOptions) {
    this.#kc = loadKubeConfig(options.kubeConfig);
    this.#batch = this.#kc.makeApiClient(BatchV1Api);
    this.#core = this.#kc.makeApiClient(CoreV1Api);
  }

  /** Runs one task to its end; never throws (every failure is a {@link RunResult}). */
  async run(req: RunRequest): Promise<RunResult> {
    if (req.signal.aborted) {
      return { outcome: "cancelled", message: "Cancelled before start" };
    }
    const namespace = this.options.namespace;
    let job: V1Job;
    try {
      job = buildJob(
        req,
        runName(req.spec.taskId, req.spec.arch),
        this.options,
      );
    } catch (err) {
      return { outcome: "infrastructure", message: describeApiError(err) };
    }
    const name = job.metadata!.name!;
    try {
      await this.#core.createNamespacedSecret({
        namespace,
        body: buildSecret(req, name, namespace),
      });
    } catch (err) {
      return {
        outcome: "infrastructure",
        message: `Cannot create Secret "${name}" in namespace "${namespace}": ${
          describeApiError(err)
        }`,
      };
    }
    try {
      let created: V1Job;
      try {
        created = await this.#batch.createNamespacedJob({
          namespace,
          body: job,
        });
      } catch (err) {
        return {
          outcome: "infrastructure",
          message: `Cannot create Job "${name}" in namespace "${namespace}": ${
            describeApiError(err)
          }`,
        };
      }
      await this.#adoptSecret(name, created);
      return await new JobFollower(
        this.#kc,
        this.#batch,
        this.#core,
        this.options,
        name,
        req,
      )
        .follow();
    } finally {
      await this.#deleteSecret(name);
    }
  }

  /** Makes the Job own the Secret, so Kubernetes deletes it with the Job if we never do. */
  async #adoptSecret(name: string, job: V1Job): Promise<void> {
    const uid = job.metadata?.uid;
    if (!uid) return;
    try {
      await this.#core.patchNamespacedSecret({
        name,
        namespace: this.options.namespace,
        body: [{
          op: "add",
          path: "/metadata/ownerReferences",
          value: [{ apiVersion: "batch/v1", kind: "Job", name, uid }],
        }],
      });
    } catch (err) {
      this.options.logger?.warn("Cannot make the Job own its Secret", {
        job: name,
        error: describeApiError(err),
      });
    }
  }

  async #deleteSecret(name: string): Promise<void> {
    try {
      await this.#core.deleteNamespacedSecret({
        name,
        namespace: this.options.namespace,
      });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return;
      this.options.logger?.error("Cannot delete the upload token Secret", {
        secret: name,
        error: describeApiError(err),
      });
    }
  }
}
