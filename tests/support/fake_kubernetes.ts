/**
 * @module An in-process fake of the Kubernetes API paths the Kubernetes runner calls: Secrets
 * (create, patch, delete), Jobs (create, delete, list, watch), Pods (list, read, watch) and the
 * pod log (follow, timestamps, sinceTime). Every Job and Secret it receives is validated against
 * the Kubernetes JSON schemas (`kubernetes-models`); a scenario callback drives the pod and the
 * Job through their phases, and hooks drop watches and log streams on demand.
 */

import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { Job } from "kubernetes-models/batch/v1";
import { Secret } from "kubernetes-models/v1";

// deno-lint-ignore no-explicit-any -- free-form API objects, checked by the schemas
type Obj = Record<string, any>;
type Kind = "job" | "pod";

/** One request the fake received. */
export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body?: unknown;
}

interface WatchStream {
  kind: Kind;
  matches: (o: Obj) => boolean;
  res: http.ServerResponse;
}

interface LogStream {
  pod: string;
  res: http.ServerResponse;
}

const TOKEN = "fake-cluster-token";
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Log lines are stamped from here, 1 ms apart: many lines share a second, as in real builds. */
const EPOCH = Date.parse("2030-01-01T00:00:00Z");

/** Formats like Go's RFC3339Nano: trailing zeros of the fraction dropped. */
function goStamp(ms: number, nanos: number): string {
  const base = new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(
    0,
    19,
  );
  const frac =
    (String(ms % 1000).padStart(3, "0") + String(nanos).padStart(6, "0"))
      .replace(/0+$/, "");
  return `${base}${frac ? `.${frac}` : ""}Z`;
}

/** Drives one Job's pod: what a scenario can make the cluster do. */
export class JobControl {
  constructor(
    readonly fake: FakeKubernetes,
    readonly job: Obj,
    readonly podName: string,
  ) {}

  get pod(): Obj {
    return this.fake.pods.get(this.podName)!;
  }

  #setContainer(state: Obj, phase: string, extra: Obj = {}): void {
    const pod = structuredClone(this.pod);
    pod.status = {
      ...pod.status,
      phase,
      ...extra,
      containerStatuses: [{
        name: "builder",
        image: pod.spec.containers[0].image,
        imageID: "",
        ready: phase === "Running",
        restartCount: 0,
        state,
      }],
    };
    this.fake.put("pod", pod, "MODIFIED");
  }

  /** The builder container starts. */
  running(): void {
    this.#setContainer({
      running: { startedAt: new Date(EPOCH).toISOString() },
    }, "Running");
  }

  /** The builder container waits (e.g. `ErrImagePull`). */
  waiting(reason: string, message = ""): void {
    this.#setContainer({ waiting: { reason, message } }, "Pending");
  }

  /** The builder writes lines to its log. */
  log(...lines: string[]): void {
    this.fake.appendLog(this.podName, lines);
  }

  /** The builder exits; the Job then completes (0) or fails (anything else). */
  exit(exitCode: number, message = ""): void {
    this.#setContainer(
      {
        terminated: {
          exitCode,
          reason: exitCode === 0 ? "Completed" : "Error",
          ...(message ? { message } : {}),
        },
      },
      exitCode === 0 ? "Succeeded" : "Failed",
    );
    this.fake.endLogs(this.podName);
    this.jobCondition(
      exitCode === 0 ? "Complete" : "Failed",
      exitCode === 0 ? "" : "BackoffLimitExceeded",
      exitCode === 0 ? "" : "Job has reached the specified backoff limit",
    );
  }

  /** The kubelet evicts the pod; the Job fails. */
  evict(message: string): void {
    this.#setContainer(
      { terminated: { exitCode: 137, reason: "Error" } },
      "Failed",
      {
        reason: "Evicted",
        message,
      },
    );
    this.fake.endLogs(this.podName);
    this.jobCondition(
      "Failed",
      "BackoffLimitExceeded",
      "Job has reached the backoff limit",
    );
  }

  /** activeDeadlineSeconds passes: the Job controller kills the pod and fails the Job. */
  deadline(): void {
    this.#setContainer(
      { terminated: { exitCode: 137, reason: "Error" } },
      "Failed",
    );
    this.fake.endLogs(this.podName);
    this.jobCondition(
      "Failed",
      "DeadlineExceeded",
      "Job was active longer than specified deadline",
    );
  }

  jobCondition(type: string, reason: string, message: string): void {
    const job = structuredClone(this.fake.jobs.get(this.job.metadata.name)!);
    job.status = {
      ...job.status,
      conditions: [{ type, status: "True", reason, message }],
      ...(type === "Complete" ? { succeeded: 1 } : { failed: 1 }),
    };
    this.fake.put("job", job, "MODIFIED");
  }
}

/** The fake API server. Start with {@link startFakeKubernetes}; close when done. */
export class FakeKubernetes {
  readonly namespace = "builds";
  readonly requests: FakeRequest[] = [];
  readonly invalid: string[] = [];
  readonly scenarioErrors: unknown[] = [];
  readonly secrets = new Map<string, Obj>();
  readonly jobs = new Map<string, Obj>();
  readonly pods = new Map<string, Obj>();
  readonly logs = new Map<string, { stamp: string; line: string }[]>();
  readonly ended = new Set<string>();
  /** Everything ever created, in order, as received. */
  readonly created: { kind: string; body: Obj }[] = [];
  /** Called (not awaited by the request) after each Job is created. */
  scenario: (ctl: JobControl) => Promise<void> | void = () => {};
  #events: { kind: Kind; type: string; object: Obj; rv: number }[] = [];
  #rv = 100;
  #compactedBelow = 0;
  #watches = new Set<WatchStream>();
  #logStreams = new Set<LogStream>();
  #waiters = new Set<() => void>();
  #scenarios: Promise<void>[] = [];
  #lineCount = 0;
  readonly server: http.Server;
  url = "";

  constructor() {
    this.server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err) => {
        this.invalid.push(`handler error: ${err}`);
        if (!res.headersSent) this.#status(res, 500, String(err));
      });
    });
  }

  /** A kubeconfig pointing at this fake, with a bearer token it checks. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: this.url, skipTLSVerify: true }],
      users: [{ name: "runner", token: TOKEN }],
      contexts: [{
        name: "fake",
        cluster: "fake",
        user: "runner",
        namespace: this.namespace,
      }],
      currentContext: "fake",
    });
    return kc;
  }

  /** Resolves when `pred` holds, re-checked on every change and request. */
  waitFor(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!pred()) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  #changed(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Open watch streams of a kind. */
  watching(kind: Kind): number {
    return [...this.#watches].filter((w) => w.kind === kind).length;
  }

  /** Watch requests received of a kind. */
  watchRequests(kind: Kind): FakeRequest[] {
    const path = kind === "job" ? "/jobs" : "/pods";
    return this.requests.filter((r) =>
      r.query.watch === "true" && r.path.endsWith(path)
    );
  }

  logReaders(): number {
    return this.#logStreams.size;
  }

  /** Drops every open watch: `clean` ends the response, otherwise the socket is destroyed. */
  disconnectWatches(clean = false): void {
    for (const w of this.#watches) clean ? w.res.end() : w.res.destroy();
    this.#watches.clear();
  }

  /** Drops every open log stream, mid-line if `partial` is given. */
  disconnectLogs(partial?: string): void {
    for (const s of this.#logStreams) {
      if (partial) s.res.write(partial);
      s.res.destroy();
    }
    this.#logStreams.clear();
  }

  /** Forgets the event history: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.#compactedBelow = this.#rv + 1;
  }

  put(kind: Kind, object: Obj, type: string): void {
    const rv = ++this.#rv;
    object.metadata.resourceVersion = String(rv);
    const store = kind === "job" ? this.jobs : this.pods;
    if (type === "DELETED") store.delete(object.metadata.name);
    else store.set(object.metadata.name, object);
    const event = { kind, type, object: structuredClone(object), rv };
    this.#events.push(event);
    for (const w of this.#watches) {
      if (w.kind === kind && w.matches(object)) {
        w.res.write(JSON.stringify({ type, object: event.object }) + "\n");
      }
    }
    this.#changed();
  }

  appendLog(pod: string, lines: string[]): void {
    const log = this.logs.get(pod) ?? [];
    this.logs.set(pod, log);
    for (const line of lines) {
      const n = this.#lineCount++;
      const entry = { stamp: goStamp(EPOCH + n, 0), line };
      log.push(entry);
      for (const s of this.#logStreams) {
        if (s.pod === pod) s.res.write(`${entry.stamp} ${entry.line}\n`);
      }
    }
    this.#changed();
  }

  endLogs(pod: string): void {
    this.ended.add(pod);
    for (const s of [...this.#logStreams]) {
      if (s.pod === pod) {
        s.res.end();
        this.#logStreams.delete(s);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#scenarios);
    this.disconnectWatches(true);
    for (const s of this.#logStreams) s.res.end();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
    if (this.scenarioErrors.length) throw this.scenarioErrors[0];
  }

  #status(
    res: http.ServerResponse,
    code: number,
    message: string,
    reason = "",
  ): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        message,
        reason,
        code,
      }),
    );
  }

  #json(res: http.ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  async #handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const chunks: Uint8Array[] = [];
    for await (const c of req) chunks.push(c as Uint8Array);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = text ? JSON.parse(text) : undefined;
    const entry: FakeRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      ...(body === undefined ? {} : { body }),
    };
    this.requests.push(entry);
    this.#changed();
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return this.#status(res, 401, "Unauthorized", "Unauthorized");
    }
    const ns = `/namespaces/${this.namespace}`;
    const m = url.pathname.match(
      /^\/(api\/v1|apis\/batch\/v1)\/namespaces\/([^/]+)\/(secrets|jobs|pods)(?:\/([^/]+))?(\/log)?$/,
    );
    if (!m || !url.pathname.includes(ns)) {
      return this.#status(res, 404, "Not found", "NotFound");
    }
    const [, , , resource, name, log] = m;
    const method = entry.method;
    if (resource === "secrets") {
      return this.#secrets(method, name, body, req, res);
    }
    if (resource === "jobs") {
      if (method === "POST") return this.#createJob(body, res);
      if (method === "DELETE" && name) {
        return this.#deleteJob(name, entry.query, res);
      }
      if (method === "GET" && !name) {
        return this.#listOrWatch("job", url.searchParams, res);
      }
    }
    if (resource === "pods" && method === "GET") {
      if (log && name) return this.#log(name, url.searchParams, res);
      if (name) {
        const pod = this.pods.get(name);
        return pod
          ? this.#json(res, 200, pod)
          : this.#status(res, 404, "pod not found", "NotFound");
      }
      return this.#listOrWatch("pod", url.searchParams, res);
    }
    this.#status(
      res,
      405,
      `${method} ${url.pathname} is not implemented by the fake`,
    );
  }

  #validate(kind: string, body: Obj): string | undefined {
    try {
      if (kind === "Job") new Job(body as never).validate();
      else new Secret(body as never).validate();
    } catch (err) {
      return `${kind} is invalid: ${err instanceof Error ? err.message : err}`;
    }
    const name = body?.metadata?.name;
    if (
      typeof name !== "string" || name.length > 63 || !DNS1123_LABEL.test(name)
    ) {
      return `${kind} name "${name}" is not a DNS-1123 label`;
    }
    return undefined;
  }

  #secrets(
    method: string,
    name: string | undefined,
    body: Obj | undefined,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    if (method === "POST" && body) {
      const problem = this.#validate("Secret", body);
      if (problem) {
        this.invalid.push(problem);
        return this.#status(res, 422, problem, "Invalid");
      }
      this.created.push({ kind: "Secret", body: structuredClone(body) });
      this.secrets.set(body.metadata.name, structuredClone(body));
      return this.#json(res, 201, body);
    }
    const secret = name ? this.secrets.get(name) : undefined;
    if (!secret) {
      return this.#status(res, 404, `secrets "${name}" not found`, "NotFound");
    }
    if (method === "PATCH" && Array.isArray(body)) {
      if (
        !String(req.headers["content-type"]).startsWith(
          "application/json-patch+json",
        )
      ) {
        return this.#status(res, 415, "unsupported patch type");
      }
      for (const op of body) {
        if (op.op === "add" && op.path === "/metadata/ownerReferences") {
          secret.metadata.ownerReferences = op.value;
        } else {return this.#status(
            res,
            422,
            `patch op not implemented: ${JSON.stringify(op)}`,
          );}
      }
      const problem = this.#validate("Secret", secret);
      if (problem) this.invalid.push(problem);
      return this.#json(res, 200, secret);
    }
    if (method === "DELETE") {
      this.secrets.delete(name!);
      this.#changed();
      return this.#json(res, 200, {
        kind: "Status",
        apiVersion: "v1",
        status: "Success",
      });
    }
    this.#status(res, 405, "not implemented");
  }

  #createJob(body: Obj, res: http.ServerResponse): void {
    const problem = this.#validate("Job", body);
    if (problem) {
      this.invalid.push(problem);
      return this.#status(res, 422, problem, "Invalid");
    }
    const name = body.metadata.name;
    if (this.jobs.has(name)) {
      return this.#status(res, 409, "already exists", "AlreadyExists");
    }
    this.created.push({ kind: "Job", body: structuredClone(body) });
    const job = structuredClone(body);
    job.metadata.uid = crypto.randomUUID();
    job.status = { active: 1 };
    this.put("job", job, "ADDED");
    const template = job.spec.template;
    const podName = `${name}-${crypto.randomUUID().slice(0, 5)}`;
    const pod: Obj = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: podName,
        namespace: this.namespace,
        labels: {
          ...template.metadata?.labels,
          "batch.kubernetes.io/job-name": name,
        },
      },
      spec: template.spec,
      status: { phase: "Pending" },
    };
    this.put("pod", pod, "ADDED");
    this.#json(res, 201, job);
    const ctl = new JobControl(this, job, podName);
    this.#scenarios.push(
      Promise.resolve().then(() => this.scenario(ctl)).catch((err) => {
        this.scenarioErrors.push(err);
      }),
    );
  }

  #deleteJob(
    name: string,
    query: Record<string, string>,
    res: http.ServerResponse,
  ): void {
    const job = this.jobs.get(name);
    if (!job) {
      return this.#status(
        res,
        404,
        `jobs.batch "${name}" not found`,
        "NotFound",
      );
    }
    this.put("job", structuredClone(job), "DELETED");
    // Background propagation: the garbage collector removes the pods after the Job.
    if (
      query.propagationPolicy === "Background" ||
      query.propagationPolicy === "Foreground"
    ) {
      for (const pod of [...this.pods.values()]) {
        if (pod.metadata.labels?.["batch.kubernetes.io/job-name"] === name) {
          this.endLogs(pod.metadata.name);
          this.put("pod", structuredClone(pod), "DELETED");
        }
      }
    }
    this.#json(res, 200, {
      kind: "Status",
      apiVersion: "v1",
      status: "Success",
    });
  }

  #selector(params: URLSearchParams): (o: Obj) => boolean {
    const field = params.get("fieldSelector");
    const label = params.get("labelSelector");
    return (o) => {
      if (field) {
        const [k, v] = field.split("=");
        if (k !== "metadata.name" || o.metadata.name !== v) return false;
      }
      if (label) {
        const [k, v] = label.split("=");
        if (o.metadata.labels?.[k!] !== v) return false;
      }
      return true;
    };
  }

  #listOrWatch(
    kind: Kind,
    params: URLSearchParams,
    res: http.ServerResponse,
  ): void {
    const matches = this.#selector(params);
    const store = kind === "job" ? this.jobs : this.pods;
    if (params.get("watch") !== "true") {
      return this.#json(res, 200, {
        apiVersion: kind === "job" ? "batch/v1" : "v1",
        kind: kind === "job" ? "JobList" : "PodList",
        metadata: { resourceVersion: String(this.#rv) },
        items: [...store.values()].filter(matches),
      });
    }
    const from = Number(params.get("resourceVersion") ?? this.#rv);
    res.writeHead(200, { "content-type": "application/json" });
    if (from < this.#compactedBelow - 1) {
      const status = {
        kind: "Status",
        apiVersion: "v1",
        code: 410,
        reason: "Expired",
        message: "too old resource version",
      };
      res.end(JSON.stringify({ type: "ERROR", object: status }) + "\n");
      return;
    }
    for (const e of this.#events) {
      if (e.kind === kind && e.rv > from && matches(e.object)) {
        res.write(JSON.stringify({ type: e.type, object: e.object }) + "\n");
      }
    }
    const stream: WatchStream = { kind, matches, res };
    this.#watches.add(stream);
    res.on("close", () => {
      this.#watches.delete(stream);
      this.#changed();
    });
    this.#changed();
  }

  #log(pod: string, params: URLSearchParams, res: http.ServerResponse): void {
    if (!this.pods.has(pod)) {
      return this.#status(res, 404, `pods "${pod}" not found`, "NotFound");
    }
    if (params.get("container") !== "builder") {
      return this.#status(res, 400, "container must be named");
    }
    const since = params.get("sinceTime");
    const sinceMs = since ? Date.parse(since) : -Infinity;
    res.writeHead(200, { "content-type": "text/plain" });
    for (const { stamp, line } of this.logs.get(pod) ?? []) {
      if (Date.parse(stamp) >= sinceMs) {
        res.write(
          params.get("timestamps") === "true"
            ? `${stamp} ${line}\n`
            : `${line}\n`,
        );
      }
    }
    if (params.get("follow") !== "true" || this.ended.has(pod)) {
      return void res.end();
    }
    const stream = { pod, res };
    this.#logStreams.add(stream);
    res.on("close", () => {
      this.#logStreams.delete(stream);
      this.#changed();
    });
    this.#changed();
  }
}

/** Starts a fake API server on 127.0.0.1. */
export async function startFakeKubernetes(): Promise<FakeKubernetes> {
  const fake = new FakeKubernetes();
  await new Promise<void>((resolve) =>
    fake.server.listen(0, "127.0.0.1", resolve)
  );
  fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  return fake;
}
