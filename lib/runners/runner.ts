/**
 * @module The runner interface: how one build task (one manifest, one architecture) is executed.
 * Two implementations, chosen by FLATYARD_RUNNER: `local` runs the builder entrypoint
 * (`flatyard builder`) as a subprocess; `kubernetes` runs it as a `batch/v1` Job. Either way the
 * builder fetches the sources, runs flatpak-builder and uploads the result into the task's
 * flat-manager build with a short-lived token scoped to that build: it never sees signing keys
 * or the repository volume.
 */

/** Where the builder gets the sources from. */
export type TaskSource =
  | { kind: "git"; url: string; commit: string }
  /** A source archive uploaded as an artifact; `url` is its download URL (the token reads it). */
  | { kind: "archive"; url: string; sha256: string };

/** Everything the builder entrypoint needs, as JSON (env `FLATYARD_BUILD_SPEC`). */
export interface BuilderSpec {
  /** The build task id (one per architecture). */
  taskId: number;
  arch: string;
  /** The manifest, already parsed and checked, as JSON. */
  manifest: Record<string, unknown>;
  /** The manifest's file name inside the sources, if it came from there (else written out). */
  manifestName: string;
  /** null: the manifest names all its sources itself (URLs, inline). */
  source: TaskSource | null;
  /** The flat-manager build that receives the upload: `<base>/api/v1/build/<id>`. */
  uploadBuildUrl: string;
  /** The branch to build (flatpak-builder `--default-branch`). */
  branch: string;
  /**
   * A `.flatpakrepo` URL to install the runtime and SDK from (flatpak-builder
   * `--install-deps-from`); unset: they must already be installed where the builder runs.
   */
  depsFrom?: string;
}

/** Per-task resources and limits. */
export interface TaskResources {
  /** Kubernetes quantity strings, e.g. "2" and "4Gi". */
  cpu: string;
  memory: string;
  timeoutSeconds: number;
}

/** What a runner is asked to run. */
export interface RunRequest {
  spec: BuilderSpec;
  /**
   * A token with the `upload` scope for `spec.uploadBuildUrl` only, and `download` for its
   * repository (`spec.depsFrom`), expiring soon.
   */
  uploadToken: string;
  resources: TaskResources;
  /** Receives each output line of the builder, in order. */
  log: (line: string) => Promise<void> | void;
  /** Aborted on cancel: the runner stops the builder and leaves nothing running. */
  signal: AbortSignal;
}

/**
 * How a task ended. `failed` is the build's own failure (a compile error: never retried);
 * `infrastructure` is everything else that went wrong (a pod evicted, an image pull, the API
 * unreachable: retried); `timeout` and `cancelled` are what they say.
 */
export interface RunResult {
  outcome: "succeeded" | "failed" | "infrastructure" | "timeout" | "cancelled";
  message: string;
  exitCode?: number;
}

/** A way to run build tasks. */
export interface Runner {
  readonly name: "local" | "kubernetes";
  run(req: RunRequest): Promise<RunResult>;
}

/** The builder's exit code for "the build itself failed" (anything else non-zero: infrastructure). */
export const BUILD_FAILED_EXIT = 3;
