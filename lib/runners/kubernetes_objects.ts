/**
 * @module What the Kubernetes runner sends and how it names things: its options, the builder's
 * Secret and `batch/v1` Job (arch selector, resources, deadline, TTL, the sandboxing settings
 * flatpak-builder needs, specs/ecosystem.md §3.4), run names and labels, the flatpak → Kubernetes
 * arch map, kubeconfig loading and one-line API error descriptions. Pure functions: the runner in
 * kubernetes.ts does the calls.
 */
import {
  ApiException,
  KubeConfig,
  type V1Job,
  type V1Secret,
  type V1Toleration,
} from "@kubernetes/client-node";
import type { Logger } from "../logger.ts";
import type { RunRequest } from "./runner.ts";

/** Where the cluster credentials come from. */
export type KubeConfigSource =
  | { kind: "in-cluster" }
  | { kind: "file"; path: string }
  /** An already loaded config (tests point one at the fake API server). */
  | { kind: "object"; config: KubeConfig };

/**
 * How the builder pod is allowed to sandbox. flatpak-builder runs each build step under
 * bubblewrap, which needs unprivileged user namespaces: `userns` (the default) keeps the pod
 * unprivileged and only lifts the seccomp and AppArmor profiles that block them
 * (specs/ecosystem.md §3.4, as Vorarbeiter does); `privileged` is the fallback GitHub's flatpak
 * containers use, for clusters where that is not enough.
 */
export type BuilderSecurity = "userns" | "privileged";

/** Options of {@link KubernetesRunner}; built from config by the caller. */
export interface KubernetesRunnerOptions {
  namespace: string;
  /** The builder image (deploy/builder/Containerfile). */
  image: string;
  kubeConfig: KubeConfigSource;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  tolerations?: V1Toleration[];
  /** Added to the `kubernetes.io/arch` selector the runner sets from the task's arch. */
  nodeSelector?: Record<string, string>;
  /** How long a finished Job (and its pod and log) stays for inspection. Default 3600. */
  ttlSecondsAfterFinished?: number;
  serviceAccountName?: string;
  security?: BuilderSecurity;
  /** Pod status reports of a stuck container (image pull errors…) tolerated before giving up. */
  waitingFailureLimit?: number;
  /** Waits between reconnect attempts to the API; one more failure than entries gives up. */
  retryDelaysMs?: number[];
  /** The longest wait for the log stream to drain once the Job has finished. */
  logDrainMs?: number;
  logger?: Logger;
}

/** flatpak arch → Kubernetes `kubernetes.io/arch` (Go's GOARCH names). */
const K8S_ARCH: Record<string, string> = {
  x86_64: "amd64",
  aarch64: "arm64",
  i386: "386",
  arm: "arm",
  ppc64le: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loongarch64: "loong64",
};

/** The builder container's name; the log endpoint and the exit code are read from it. */
export const BUILDER_CONTAINER = "builder";
const TOKEN_KEY = "upload-token";
/** Container waiting reasons that mean the builder is not going to start by itself. */
export const STUCK_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
]);

/** Loads a kubeconfig from its source. */
export function loadKubeConfig(source: KubeConfigSource): KubeConfig {
  if (source.kind === "object") return source.config;
  const kc = new KubeConfig();
  if (source.kind === "in-cluster") kc.loadFromCluster();
  else kc.loadFromFile(source.path);
  return kc;
}

/** Maps a flatpak arch to the node's `kubernetes.io/arch`; throws on an arch it does not know. */
export function kubernetesArch(flatpakArch: string): string {
  const arch = K8S_ARCH[flatpakArch];
  if (!arch) {
    throw new Error(
      `Cannot map flatpak arch "${flatpakArch}" to a Kubernetes arch`,
    );
  }
  return arch;
}

/** A DNS-1123 label (≤ 63 chars) naming one run of a task: `fy-<task>-<arch>-<random>`. */
export function runName(taskId: number, arch: string): string {
  const a = arch.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(
    /^-|-$/g,
    "",
  );
  // A random tail: a retried task must not collide with its previous Job, kept for the TTL.
  const tail = crypto.randomUUID().replaceAll("-", "").slice(0, 6);
  return `fy-${taskId}-${a.slice(0, 30)}-${tail}`.replace(/-+/g, "-");
}

/** The labels on the Secret, the Job and the pod. */
export function runLabels(
  req: RunRequest,
  name: string,
): Record<string, string> {
  return {
    "app.kubernetes.io/name": "flatyard-builder",
    "app.kubernetes.io/managed-by": "flatyard",
    "flatyard.io/task": String(req.spec.taskId),
    "flatyard.io/arch": req.spec.arch,
    "flatyard.io/run": name,
  };
}

/** The Secret holding the upload token of one run. */
export function buildSecret(
  req: RunRequest,
  name: string,
  namespace: string,
): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, labels: runLabels(req, name) },
    type: "Opaque",
    immutable: true,
    stringData: { [TOKEN_KEY]: req.uploadToken },
  };
}

/** The Job running one build task; see the module doc and the options for each choice. */
export function buildJob(
  req: RunRequest,
  name: string,
  opts: KubernetesRunnerOptions,
): V1Job {
  const labels = runLabels(req, name);
  const { cpu, memory, timeoutSeconds } = req.resources;
  const privileged = opts.security === "privileged";
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: opts.namespace, labels },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: timeoutSeconds,
      ttlSecondsAfterFinished: opts.ttlSecondsAfterFinished ?? 3600,
      template: {
        metadata: {
          labels,
          // The field below replaces this annotation from Kubernetes 1.30; older clusters read
          // only the annotation, and both must agree when both are set.
          annotations: privileged ? {} : {
            [`container.apparmor.security.beta.kubernetes.io/${BUILDER_CONTAINER}`]:
              "unconfined",
          },
        },
        spec: {
          restartPolicy: "Never",
          ...(opts.serviceAccountName
            ? { serviceAccountName: opts.serviceAccountName }
            : {}),
          // The builder talks only to Flatyard's upload API, never to the Kubernetes API.
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          nodeSelector: {
            ...opts.nodeSelector,
            "kubernetes.io/arch": kubernetesArch(req.spec.arch),
          },
          tolerations: opts.tolerations ?? [],
          securityContext: privileged ? {} : {
            // bubblewrap creates user namespaces: the runtime's default seccomp profile and
            // AppArmor profiles (Ubuntu ≥ 23.10) refuse that (specs/ecosystem.md §3.4).
            seccompProfile: { type: "Unconfined" },
            appArmorProfile: { type: "Unconfined" },
            // Unprivileged: bubblewrap then uses a user namespace, no setuid or capabilities.
            runAsNonRoot: true,
            runAsUser: 1000,
            runAsGroup: 1000,
          },
          containers: [{
            name: BUILDER_CONTAINER,
            image: opts.image,
            imagePullPolicy: opts.imagePullPolicy ?? "IfNotPresent",
            args: ["builder"],
            env: [
              { name: "FLATYARD_BUILD_SPEC", value: JSON.stringify(req.spec) },
              {
                name: "FLATYARD_UPLOAD_TOKEN",
                valueFrom: { secretKeyRef: { name, key: TOKEN_KEY } },
              },
            ],
            resources: {
              requests: { cpu, memory },
              limits: { cpu, memory },
            },
            // A failed build's last lines become the termination message we report.
            terminationMessagePolicy: "FallbackToLogsOnError",
            securityContext: privileged ? { privileged: true } : {
              allowPrivilegeEscalation: false,
              capabilities: { drop: ["ALL"] },
              // flatpak-builder writes its state and build dirs under the working directory.
              readOnlyRootFilesystem: false,
            },
          }],
        },
      },
    },
  };
}

/** Describes an API failure in one line: the Status message, or the network error's cause. */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    let detail = "";
    try {
      const body: unknown = typeof err.body === "string"
        ? JSON.parse(err.body)
        : err.body;
      if (body && typeof body === "object" && "message" in body) {
        detail = String((body as { message: unknown }).message);
      }
    } catch {
      // a non-JSON body: the status code says enough
    }
    return `HTTP ${err.code}${detail ? `: ${detail}` : ""}`;
  }
  if (err instanceof Error) {
    const cause = err.cause as { code?: string; message?: string } | undefined;
    const why = cause?.code ?? cause?.message;
    return why ? `${err.message} (${why})` : err.message;
  }
  return String(err);
}
