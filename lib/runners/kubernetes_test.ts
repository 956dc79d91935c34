import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import {
  buildJob,
  kubernetesArch,
  KubernetesRunner,
  runName,
} from "./kubernetes.ts";
import {
  BUILD_FAILED_EXIT,
  type RunRequest,
  type RunResult,
} from "./runner.ts";
import {
  type FakeKubernetes,
  type JobControl,
  startFakeKubernetes,
} from "../../tests/support/fake_kubernetes.ts";

const TOLERATIONS = [{
  key: "flatyard.io/builders",
  operator: "Exists",
  effect: "NoSchedule",
}];

function request(
  over: Partial<RunRequest> = {},
): RunRequest & { lines: string[] } {
  const lines: string[] = [];
  return {
    spec: {
      taskId: 42,
      arch: "aarch64",
      manifest: { id: "org.example.Hello", modules: [] },
      manifestName: "org.example.Hello.json",
      source: {
        kind: "git",
        url: "https://git.example.org/hello.git",
        commit: "a".repeat(40),
      },
      uploadBuildUrl: "https://flatyard.example.org/api/v1/build/7",
      branch: "stable",
    },
    uploadToken: "upload-token-value",
    resources: { cpu: "2", memory: "4Gi", timeoutSeconds: 5400 },
    log: (line) => void lines.push(line),
    signal: new AbortController().signal,
    lines,
    ...over,
  };
}

function runner(
  fake: FakeKubernetes,
  kc: KubeConfig = fake.kubeConfig(),
): KubernetesRunner {
  return new KubernetesRunner({
    namespace: fake.namespace,
    image: "registry.example.org/flatyard/builder:1.0",
    kubeConfig: { kind: "object", config: kc },
    tolerations: TOLERATIONS,
    nodeSelector: { "flatyard.io/pool": "builders" },
    ttlSecondsAfterFinished: 600,
    imagePullPolicy: "IfNotPresent",
    retryDelaysMs: [0, 0, 0],
    waitingFailureLimit: 2,
  });
}

/** Runs one task against a fresh fake driven by `scenario`. */
async function runWith(
  scenario: (ctl: JobControl, fake: FakeKubernetes) => Promise<void> | void,
  over: Partial<RunRequest> = {},
): Promise<{ result: RunResult; fake: FakeKubernetes; lines: string[] }> {
  const fake = await startFakeKubernetes();
  try {
    fake.scenario = (ctl) => scenario(ctl, fake);
    const req = request(over);
    // A bound, not a timing assertion: a runner that never settles fails here instead of hanging.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      runner(fake).run(req),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("The run did not settle")),
          30_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    return { result, fake, lines: req.lines };
  } finally {
    await fake.close();
    assert.deepEqual(fake.invalid, [], "every object sent is schema-valid");
  }
}

function indexOf(
  fake: FakeKubernetes,
  method: string,
  pathPart: string,
): number {
  return fake.requests.findIndex((r) =>
    r.method === method && r.path.includes(pathPart)
  );
}

Deno.test("Kubernetes runner runs a build as a Job and streams its log", async () => {
  const { result, fake, lines } = await runWith(async (ctl, fake) => {
    ctl.running();
    ctl.log("Downloading sources", "Building module hello");
    await fake.waitFor(() => fake.logReaders() === 1);
    ctl.log("Committing", "Uploading");
    ctl.exit(0);
  });
  assert.deepEqual(result, {
    outcome: "succeeded",
    message: "Build succeeded",
    exitCode: 0,
  });
  assert.deepEqual(lines, [
    "Downloading sources",
    "Building module hello",
    "Committing",
    "Uploading",
  ]);

  const secretCreated = indexOf(fake, "POST", "/secrets");
  const jobCreated = indexOf(fake, "POST", "/jobs");
  const secretDeleted = indexOf(fake, "DELETE", "/secrets/");
  assert.ok(
    secretCreated >= 0 && secretCreated < jobCreated,
    "Secret created before the Job",
  );
  assert.equal(secretDeleted, fake.requests.length - 1, "Secret deleted last");
  assert.equal(fake.secrets.size, 0);
  assert.equal(
    indexOf(fake, "DELETE", "/jobs/"),
    -1,
    "a finished Job is left to its TTL",
  );

  const [secret, job] = fake.created.map((c) => c.body);
  assert.equal(secret!.kind, "Secret");
  assert.deepEqual(secret!.stringData, {
    "upload-token": "upload-token-value",
  });
  assert.equal(secret!.metadata.labels["flatyard.io/task"], "42");
  const name = job!.metadata.name;
  assert.equal(secret!.metadata.name, name);
  assert.match(name, /^fy-42-aarch64-[a-z0-9]{6}$/);
  assert.deepEqual(job!.metadata.labels, {
    "app.kubernetes.io/name": "flatyard-builder",
    "app.kubernetes.io/managed-by": "flatyard",
    "flatyard.io/task": "42",
    "flatyard.io/arch": "aarch64",
    "flatyard.io/run": name,
  });
  const spec = job!.spec;
  assert.equal(spec.backoffLimit, 0);
  assert.equal(spec.activeDeadlineSeconds, 5400);
  assert.equal(spec.ttlSecondsAfterFinished, 600);
  const pod = spec.template.spec;
  assert.equal(pod.restartPolicy, "Never");
  assert.deepEqual(pod.nodeSelector, {
    "flatyard.io/pool": "builders",
    "kubernetes.io/arch": "arm64",
  });
  assert.deepEqual(pod.tolerations, TOLERATIONS);
  assert.deepEqual(pod.securityContext, {
    seccompProfile: { type: "Unconfined" },
    appArmorProfile: { type: "Unconfined" },
    runAsNonRoot: true,
    runAsUser: 1000,
    runAsGroup: 1000,
  });
  assert.equal(
    spec.template.metadata
      .annotations["container.apparmor.security.beta.kubernetes.io/builder"],
    "unconfined",
  );
  const [container] = pod.containers;
  assert.equal(container.image, "registry.example.org/flatyard/builder:1.0");
  assert.equal(container.imagePullPolicy, "IfNotPresent");
  assert.deepEqual(container.resources, {
    requests: { cpu: "2", memory: "4Gi" },
    limits: { cpu: "2", memory: "4Gi" },
  });
  assert.deepEqual(container.securityContext, {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem: false,
  });
  assert.deepEqual(container.env[1], {
    name: "FLATYARD_UPLOAD_TOKEN",
    valueFrom: { secretKeyRef: { name, key: "upload-token" } },
  });
  assert.equal(container.env[0].name, "FLATYARD_BUILD_SPEC");
  assert.deepEqual(JSON.parse(container.env[0].value), request().spec);
  assert.ok(
    !JSON.stringify(job).includes("upload-token-value"),
    "no token in the Job",
  );
  const patch = fake.requests.find((r) => r.method === "PATCH");
  assert.deepEqual(
    (patch?.body as { value: { kind: string; name: string }[] }[])[0]!.value[0]!
      .kind,
    "Job",
    "the Job owns the Secret",
  );
});

Deno.test("Kubernetes runner classifies how the builder ended", async (t) => {
  const cases: {
    name: string;
    scenario: (ctl: JobControl) => void | Promise<void>;
    outcome: RunResult["outcome"];
    message: RegExp;
    exitCode?: number;
  }[] = [
    {
      name: "exit code 3 is a failed build, with its message",
      scenario: (ctl) => {
        ctl.running();
        ctl.log("error: module hello failed");
        ctl.exit(BUILD_FAILED_EXIT, "error: module hello failed");
      },
      outcome: "failed",
      message: /^Build failed: error: module hello failed$/,
      exitCode: 3,
    },
    {
      name: "another exit code is infrastructure",
      scenario: (ctl) => {
        ctl.running();
        ctl.exit(137);
      },
      outcome: "infrastructure",
      message: /^Builder exited with code 137 \(Error\)$/,
      exitCode: 137,
    },
    {
      name: "an exceeded deadline is a timeout",
      scenario: (ctl) => {
        ctl.running();
        ctl.log("still compiling");
        ctl.deadline();
      },
      outcome: "timeout",
      message: /time limit of 5400 s/,
    },
    {
      name: "an evicted pod is infrastructure",
      scenario: (ctl) => {
        ctl.running();
        ctl.evict("The node was low on resource: ephemeral-storage.");
      },
      outcome: "infrastructure",
      message: /^Builder pod was evicted: The node was low on resource/,
    },
    {
      name: "an image that cannot be pulled is infrastructure",
      scenario: async (ctl) => {
        // Status updates the runner sees as they happen (a list shows only the latest).
        await ctl.fake.waitFor(() => ctl.fake.watching("pod") === 1);
        for (let i = 0; i < 3; i++) {
          ctl.waiting("ImagePullBackOff", "Back-off pulling image");
        }
      },
      outcome: "infrastructure",
      message: /cannot start: ImagePullBackOff: Back-off pulling image/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const { result, fake } = await runWith(c.scenario);
      assert.equal(result.outcome, c.outcome);
      assert.match(result.message, c.message);
      assert.equal(result.exitCode, c.exitCode);
      assert.equal(fake.secrets.size, 0, "Secret deleted");
    });
  }
});

Deno.test("Kubernetes runner deletes a Job whose image cannot be pulled", async () => {
  const { result, fake } = await runWith(async (ctl, fake) => {
    await fake.waitFor(() => fake.watching("pod") === 1);
    for (let i = 0; i < 3; i++) ctl.waiting("ErrImagePull", "not found");
  });
  assert.equal(result.outcome, "infrastructure");
  assert.equal(fake.jobs.size, 0);
  const del = fake.requests.find((r) =>
    r.method === "DELETE" && r.path.includes("/jobs/")
  );
  assert.equal(del?.query.propagationPolicy, "Background");
});

Deno.test("Kubernetes runner resumes dropped watches and keeps the outcome", async (t) => {
  for (const clean of [false, true]) {
    await t.step(
      clean ? "closed by the server" : "connection reset",
      async () => {
        const { result, fake, lines } = await runWith(async (ctl, fake) => {
          await fake.waitFor(() =>
            fake.watching("job") === 1 && fake.watching("pod") === 1
          );
          fake.disconnectWatches(clean);
          // Changes while no watch is open must still be seen after the reconnect.
          ctl.running();
          ctl.log("one");
          ctl.exit(BUILD_FAILED_EXIT, "boom");
        });
        assert.equal(result.outcome, "failed");
        assert.deepEqual(lines, ["one"]);
        for (const kind of ["job", "pod"] as const) {
          const watches = fake.watchRequests(kind);
          assert.ok(watches.length >= 2, `${kind} watch re-established`);
          assert.ok(
            watches.every((w) => /^\d+$/.test(w.query.resourceVersion ?? "")),
          );
        }
      },
    );
  }
  await t.step("too old a resourceVersion: lists again", async () => {
    const { result, fake } = await runWith(async (ctl, fake) => {
      await fake.waitFor(() =>
        fake.watching("job") === 1 && fake.watching("pod") === 1
      );
      ctl.running();
      fake.compact();
      fake.disconnectWatches();
      ctl.exit(0);
    });
    assert.equal(result.outcome, "succeeded");
    const lists = fake.requests.filter((r) =>
      r.method === "GET" && r.path.endsWith("/jobs") &&
      r.query.watch === undefined
    );
    assert.ok(lists.length >= 2, "the Job was listed again after 410 Gone");
  });
});

Deno.test("Kubernetes runner resumes a dropped log stream without losing or repeating lines", async () => {
  const lines: string[] = [];
  const waiters: (() => boolean)[] = [];
  const received = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => lines.length >= n ? (resolve(), true) : false;
      if (!check()) waiters.push(check);
    });
  const log = (line: string) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w()) waiters.splice(waiters.indexOf(w), 1);
    }
  };
  const { result, fake } = await runWith(async (ctl, fake) => {
    ctl.running();
    ctl.log("a", "b", "c");
    await received(3);
    // Cut in the middle of the next line ("d" gets stamp .003): the half must not be delivered.
    fake.disconnectLogs("2030-01-01T00:00:00.003Z d-cut-in-ha");
    await fake.waitFor(() => fake.logReaders() === 1);
    ctl.log("d", "e");
    await received(5);
    fake.disconnectLogs();
    await fake.waitFor(() => fake.logReaders() === 1);
    ctl.log("f");
    ctl.exit(0);
  }, { log });
  assert.equal(result.outcome, "succeeded");
  assert.deepEqual(lines, ["a", "b", "c", "d", "e", "f"]);
  const resumed = fake.requests.filter((r) =>
    r.path.endsWith("/log") && r.query.sinceTime
  );
  assert.equal(resumed.length, 2);
  // All lines share one second, so each resume replays them and the runner skips the seen ones.
  assert.ok(resumed.every((r) => r.query.sinceTime === "2030-01-01T00:00:00Z"));
});

Deno.test("Kubernetes runner cancels: deletes the Job with its pod and the Secret", async () => {
  const abort = new AbortController();
  const lines: string[] = [];
  const { result, fake } = await runWith((ctl) => {
    ctl.running();
    ctl.log("building", "cancel now");
  }, {
    signal: abort.signal,
    log(line) {
      lines.push(line);
      if (line === "cancel now") abort.abort();
    },
  });
  assert.equal(result.outcome, "cancelled");
  assert.deepEqual(lines, ["building", "cancel now"]);
  const del = fake.requests.find((r) =>
    r.method === "DELETE" && r.path.includes("/jobs/")
  );
  assert.equal(del?.query.propagationPolicy, "Background");
  assert.equal(fake.jobs.size, 0);
  assert.equal(fake.pods.size, 0, "the pod went with the Job");
  assert.equal(fake.secrets.size, 0);
  assert.ok(
    indexOf(fake, "DELETE", "/secrets/") > indexOf(fake, "DELETE", "/jobs/"),
  );
});

Deno.test("Kubernetes runner reports an unreachable API as infrastructure", async () => {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  const fake = await startFakeKubernetes();
  try {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{
        name: "gone",
        server: `http://127.0.0.1:${port}`,
        skipTLSVerify: true,
      }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "gone", cluster: "gone", user: "u" }],
      currentContext: "gone",
    });
    const result = await runner(fake, kc).run(request());
    assert.equal(result.outcome, "infrastructure");
    assert.match(
      result.message,
      /^Cannot create Secret "fy-42-aarch64-\w+" in namespace "builds": .*ECONNREFUSED/,
    );
  } finally {
    await fake.close();
  }
});

Deno.test("Kubernetes runner does not start when already cancelled", async () => {
  const fake = await startFakeKubernetes();
  try {
    const abort = new AbortController();
    abort.abort();
    const result = await runner(fake).run(request({ signal: abort.signal }));
    assert.equal(result.outcome, "cancelled");
    assert.equal(fake.requests.length, 0);
  } finally {
    await fake.close();
  }
});

Deno.test("Kubernetes Job names are DNS-1123 labels and arches map to GOARCH", () => {
  assert.equal(kubernetesArch("x86_64"), "amd64");
  assert.equal(kubernetesArch("aarch64"), "arm64");
  assert.equal(kubernetesArch("i386"), "386");
  assert.throws(() => kubernetesArch("mips"), /Cannot map flatpak arch "mips"/);
  const name = runName(123456789, "x86_64");
  assert.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(name.length <= 63);
  const privileged = buildJob(request(), "fy-1-x", {
    namespace: "n",
    image: "i",
    kubeConfig: { kind: "in-cluster" },
    security: "privileged",
  });
  assert.deepEqual(
    privileged.spec?.template.spec?.containers[0]?.securityContext,
    {
      privileged: true,
    },
  );
});
