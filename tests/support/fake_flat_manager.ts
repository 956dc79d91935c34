/**
 * @module An in-process fake of just the flat-manager build endpoints that `push` calls
 * (specs/flat-manager-api.md §3.2, §5.4), served over `node:http` because `Deno.serve` drops GET
 * bodies. It records every request with its decoded body, stores uploaded parts, scripts job
 * polls, and can fail chosen requests, so client tests assert the exact request sequence.
 */
import { Buffer } from "node:buffer";
import {
  createServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

/** One uploaded multipart part. */
export interface RecordedPart {
  headers: Record<string, string>;
  name: string;
  data: Uint8Array;
}

/** A request as the fake received it. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
  /** The body bytes as sent (gzip still applied). */
  raw: Uint8Array;
  /** The JSON body, decoded (and gunzipped); undefined for none or for multipart. */
  json?: unknown;
  parts?: RecordedPart[];
}

/** A canned response. */
export interface Answer {
  status: number;
  body: string;
  contentType?: string;
  location?: string;
}

/** A canned response, or "reset" to drop the connection with no response. */
export type Fault = Answer | "reset";

/** One step of a scripted job: its status and the log text appended at this poll. */
export interface JobStep {
  status: number;
  append?: string;
  results?: Record<string, unknown>;
}

export interface FakeOptions {
  /** Objects the build's parent repo already has: never reported missing. */
  present?: Iterable<string>;
  /** Check names the build gets after committing; each check job passes unless failing. */
  checks?: string[];
  failingChecks?: string[];
  commitJob?: JobStep[];
  publishJob?: JobStep[];
  /** Answer to `POST publish` instead of a job. */
  publishAnswer?: Fault;
  /** Consulted first for every request; `n` counts requests to this method and path so far. */
  fault?: (req: RecordedRequest, n: number) => Fault | undefined;
}

const BUILD = "/api/v1/build/1";
const UPDATE_JOB = 13;

function parseMultipart(body: Buffer, contentType: string): RecordedPart[] {
  const boundary = /boundary=([^;]+)/.exec(contentType)?.[1];
  if (!boundary) throw new Error("no boundary");
  const delim = Buffer.from(`--${boundary}`);
  const parts: RecordedPart[] = [];
  let at = body.indexOf(delim);
  if (at !== 0) throw new Error("preamble before the first boundary");
  while (true) {
    at += delim.length;
    if (
      body.subarray(at, at + 4).toString() === "--\r\n" &&
      at + 4 === body.length
    ) break;
    if (body.subarray(at, at + 2).toString() !== "\r\n") {
      throw new Error("bad delimiter");
    }
    const headEnd = body.indexOf("\r\n\r\n", at);
    const headers: Record<string, string> = {};
    for (
      const line of body.subarray(at + 2, headEnd).toString("latin1").split(
        "\r\n",
      )
    ) {
      const i = line.indexOf(":");
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const next = body.indexOf(
      Buffer.concat([Buffer.from("\r\n"), delim]),
      headEnd + 4,
    );
    if (next < 0) throw new Error("unterminated part");
    const name =
      /filename="([^"]*)"/.exec(headers["content-disposition"] ?? "")?.[1] ??
        "";
    parts.push({
      headers,
      name,
      data: new Uint8Array(body.subarray(headEnd + 4, next)),
    });
    at = next + 2;
  }
  return parts;
}

/** The fake server. `await using` it to close it. */
export class FakeFlatManager implements AsyncDisposable {
  readonly requests: RecordedRequest[] = [];
  /** Uploaded parts by filename. */
  readonly stored = new Map<string, Uint8Array>();
  #counts = new Map<string, number>();
  #jobs = new Map<string, { step: number; log: string; status: number }>();
  #checksDone = false;
  #extendedCalls = 0;
  #server = createServer((req, res) => this.#handle(req, res));
  #opts: FakeOptions;
  #present: Set<string>;
  url = "";

  private constructor(opts: FakeOptions) {
    this.#opts = opts;
    this.#present = new Set(opts.present ?? []);
  }

  /** Starts a fake on a free port. */
  static async start(opts: FakeOptions = {}): Promise<FakeFlatManager> {
    const f = new FakeFlatManager(opts);
    await new Promise<void>((r) => f.#server.listen(0, "127.0.0.1", r));
    f.url = `http://127.0.0.1:${(f.#server.address() as AddressInfo).port}`;
    return f;
  }

  /** The build URL of the one build the fake knows. */
  get buildUrl(): string {
    return `${this.url}${BUILD}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }

  async #handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = String(v);
    const rec: RecordedRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers,
      raw: new Uint8Array(raw),
    };
    const type = headers["content-type"] ?? "";
    if (type.startsWith("multipart/")) rec.parts = parseMultipart(raw, type);
    else if (raw.length > 0) {
      const text = headers["content-encoding"] === "gzip"
        ? gunzipSync(raw)
        : raw;
      rec.json = JSON.parse(text.toString());
    }
    this.requests.push(rec);
    const key = `${rec.method} ${rec.path}`;
    const n = (this.#counts.get(key) ?? 0) + 1;
    this.#counts.set(key, n);
    const fault = this.#opts.fault?.(rec, n);
    const answer = fault ?? this.#route(rec);
    if (answer === "reset") {
      req.socket.destroy();
      return;
    }
    const extra = "location" in answer
      ? { Location: answer.location as string }
      : {};
    res.writeHead(answer.status, {
      "Content-Type": answer.contentType ?? "application/json",
      ...extra,
    }).end(answer.body);
  }

  #json(value: unknown, location?: string): Answer {
    return {
      status: 200,
      body: JSON.stringify(value),
      ...(location ? { location: `${this.url}${location}` } : {}),
    };
  }

  #build(repoState = 0) {
    return {
      id: 1,
      created: "2024-05-01T12:34:56.789012",
      repo_state: repoState,
      published_state: 0,
      repo: "stable",
      extra_ids: [],
      app_id: null,
      public_download: true,
      build_log_url: null,
      token_name: "test",
      token_type: null,
    };
  }

  /** Advances a scripted job one poll and answers with its log from `log-offset` bytes. */
  #pollJob(id: number, key: string, script: JobStep[], body: unknown): Answer {
    const job = this.#jobs.get(key) ?? { step: 0, log: "", status: 0 };
    const s = script[Math.min(job.step, script.length - 1)]!;
    job.step++;
    job.log += s.append ?? "";
    job.status = s.status;
    this.#jobs.set(key, job);
    const offset = (body as { "log-offset"?: number })?.["log-offset"] ?? 0;
    const log = new TextDecoder().decode(
      new TextEncoder().encode(job.log).slice(offset),
    );
    return this.#json({
      id,
      kind: 0,
      status: job.status,
      contents: "{}",
      log,
      start_after: null,
      repo: null,
      ...(s.results ? { results: JSON.stringify(s.results) } : {}),
    });
  }

  #route(r: RecordedRequest): Fault {
    const body = r.json as Record<string, unknown> | undefined;
    const route = `${r.method} ${r.path}`;
    const checks = this.#opts.checks ?? [];
    switch (route) {
      case `GET ${BUILD}/missing_objects`: {
        const wanted = (body?.wanted ?? []) as string[];
        const missing = wanted.filter((w) =>
          !this.stored.has(w) && !this.#present.has(w)
        );
        return this.#json({ missing });
      }
      case `POST ${BUILD}/upload`:
        for (const p of r.parts ?? []) this.stored.set(p.name, p.data);
        return this.#json((r.parts ?? []).map((p) => p.data.length));
      case `POST ${BUILD}/build_ref`:
        return this.#json({
          id: this.requests.filter((x) => x.path === r.path).length,
          build_id: 1,
          ref_name: body?.ref,
          commit: body?.commit,
          build_log_url: body?.["build-log-url"] ?? null,
        }, `${BUILD}/build_ref/1`);
      case `POST ${BUILD}/add_extra_ids`:
        return this.#json({ ...this.#build(), extra_ids: body?.ids }, BUILD);
      case `POST ${BUILD}/commit`:
        return this.#json(
          {
            id: 10,
            kind: 0,
            status: 0,
            contents: "{}",
            log: "",
            start_after: null,
          },
          `${BUILD}/commit`,
        );
      case `GET ${BUILD}/extended`: {
        // Committing on the first look, then Ready or Validating with the checks.
        const first = this.#extendedCalls++ === 0;
        const failing = this.#opts.failingChecks ?? [];
        return this.#json({
          build: this.#build(
            first ? 1 : checks.length > 0 && !this.#checksDone ? 6 : 2,
          ),
          build_refs: [],
          checks: first ? [] : checks.map((c, i) => ({
            check_name: c,
            build_id: 1,
            job_id: 20 + i,
            status: !this.#checksDone ? 0 : failing.includes(c) ? 3 : 1,
            status_reason: null,
            results: null,
          })),
        });
      }
      case `GET ${BUILD}/commit`:
        return this.#pollJob(
          10,
          "commit",
          this.#opts.commitJob ?? [{ status: 2 }],
          body,
        );
      case `POST ${BUILD}/publish`:
        return this.#opts.publishAnswer ?? this.#json(
          {
            id: 12,
            kind: 1,
            status: 0,
            contents: "{}",
            log: "",
            start_after: null,
          },
          `${BUILD}/publish`,
        );
      case `GET ${BUILD}/publish`:
        return this.#pollJob(
          12,
          "publish",
          this.#opts.publishJob ?? [{ status: 2 }],
          body,
        );
      case `GET /api/v1/job/${UPDATE_JOB}`:
        return this.#json({
          id: UPDATE_JOB,
          kind: 2,
          status: 0,
          contents: "{}",
          log: "",
        });
      case `GET ${BUILD}`:
        return this.#json(this.#build(2));
    }
    const check = new RegExp(`^GET ${BUILD}/check/([^/]+)/job$`).exec(route);
    if (check && checks.includes(check[1]!)) {
      const name = check[1]!;
      const answer = this.#pollJob(20, `check-${name}`, [{
        status: 1,
        append: `${name} runs\n`,
      }, {
        status: 2,
        append: `${name} ok\n`,
      }], body);
      const job = JSON.parse(answer.body);
      if (
        job.status === 2 &&
        checks.every((c) => this.#jobs.get(`check-${c}`)?.status === 2)
      ) {
        this.#checksDone = true;
      }
      return answer;
    }
    return {
      status: 404,
      body: JSON.stringify({
        status: 404,
        "error-type": "not-found",
        message: "Not found",
      }),
    };
  }
}

/** The update-repo job id the fake's publish job names in its results. */
export const FAKE_UPDATE_JOB = UPDATE_JOB;
