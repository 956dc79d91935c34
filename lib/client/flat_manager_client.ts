/**
 * @module A typed client for flat-manager's build API (specs/flat-manager-api.md §3.2), speaking
 * the wire format of the Python `flat-manager-client`: kebab/snake-case bodies as each endpoint
 * wants them, JSON bodies on GET, gzip `missing_objects`, `multipart/mixed` uploads, and retries
 * of server errors and lost connections (§5.5).
 */
import { gzipSync } from "node:zlib";
import { z } from "zod";
import {
  type HttpRequest,
  type HttpResponse,
  nodeTransport,
  type Transport,
} from "./http_transport.ts";
import type { UploadFile } from "./local_repo.ts";
import {
  FlatManagerApiError,
  IncompleteUploadError,
  isRetryable,
} from "./flat_manager_errors.ts";
import {
  multipartBody,
  multipartBoundary,
  multipartContentType,
  multipartLength,
} from "./multipart.ts";
import { type RetryOptions, withRetry } from "./retry.ts";
import {
  PREFER_HEADER,
  PREFERENCE_APPLIED_HEADER,
} from "../http/prefer_wait.ts";
import {
  type Build,
  type BuildExtended,
  BuildExtendedSchema,
  type BuildRef,
  BuildRefSchema,
  BuildSchema,
  type Job,
  JobSchema,
} from "./flat_manager_types.ts";

/** Names per `missing_objects` request, as both clients send (§5.2 step 4). */
export const MISSING_OBJECTS_CHUNK = 2000;

export interface FlatManagerClientOptions {
  token: string;
  /** Base URL of the manager (`https://host/`), needed only by {@link FlatManagerClient.createBuild}. */
  managerUrl?: string;
  /** Default: a keep-alive `node:http` transport, closed when the client is disposed. */
  transport?: Transport;
  retry?: RetryOptions;
  log?: (line: string) => void;
}

/** A response with the absolute `Location` URL it named (§0.5). */
export interface Located<T> {
  value: T;
  location: string;
}

/** A poll's answer; `held`: the server applied `Prefer: wait` (lib/http/prefer_wait.ts). */
export interface Held<T> {
  value: T;
  held: boolean;
}

const preferWait = (seconds: number) => ({
  [PREFER_HEADER]: `wait=${seconds}`,
});

/** The API root of a build URL `.../api/v1/build/<id>`: its last two segments removed (§0.5). */
export function apiUrlOf(buildUrl: string): string {
  const u = new URL(buildUrl);
  u.pathname = u.pathname.replace(/\/+$/, "").split("/").slice(0, -2).join("/");
  u.search = "";
  return u.href.replace(/\/+$/, "");
}

const json = (value: unknown) => ({
  headers: { "Content-Type": "application/json" },
  body: new TextEncoder().encode(JSON.stringify(value)),
});

/** The flat-manager build API client. Dispose it to close its connections. */
export class FlatManagerClient implements Disposable {
  #token: string;
  #managerUrl: string | undefined;
  #send: Transport;
  #close: (() => void) | undefined;
  #retry: RetryOptions;
  #log: (line: string) => void;

  constructor(opts: FlatManagerClientOptions) {
    this.#token = opts.token;
    this.#managerUrl = opts.managerUrl;
    if (opts.transport) this.#send = opts.transport;
    else {
      const t = nodeTransport();
      this.#send = t.send;
      this.#close = () => t[Symbol.dispose]();
    }
    this.#retry = opts.retry ?? {};
    this.#log = opts.log ?? (() => {});
  }

  [Symbol.dispose](): void {
    this.#close?.();
  }

  #request(
    req: Omit<HttpRequest, "headers"> & { headers?: Record<string, string> },
    retry = true,
    check?: (res: HttpResponse) => void,
  ): Promise<HttpResponse> {
    const full: HttpRequest = {
      ...req,
      headers: { ...req.headers, Authorization: `Bearer ${this.#token}` },
    };
    const once = async () => {
      const res = await this.#send(full);
      if (res.status < 200 || res.status > 299) {
        throw FlatManagerApiError.from(req.url, res);
      }
      check?.(res);
      return res;
    };
    if (!retry) return once();
    return withRetry(once, isRetryable, this.#retry, (e, n, ms) =>
      this.#log(
        `${req.method} ${req.url} failed (${
          (e as Error).message
        }); retry ${n} in ${(ms / 1000).toFixed(1)} s`,
      ));
  }

  #parse<T>(res: HttpResponse, schema: z.ZodType<T>, url: string): T {
    try {
      return schema.parse(JSON.parse(new TextDecoder().decode(res.body)));
    } catch (e) {
      throw new Error(
        `Cannot parse the response of ${url}: ${(e as Error).message}`,
      );
    }
  }

  #location(res: HttpResponse, url: string, fallback: string): string {
    const loc = res.headers.get("location");
    return loc ? new URL(loc, url).href : fallback;
  }

  /** `POST /api/v1/build` with a kebab-case body; returns the Build and its build URL. */
  async createBuild(
    repo: string,
    opts: { appId?: string; publicDownload?: boolean; buildLogUrl?: string } =
      {},
  ): Promise<Located<Build>> {
    if (this.#managerUrl === undefined) {
      throw new Error("Cannot create a build without a manager URL");
    }
    // Rust client style: trailing slashes trimmed, then the API path appended (§8.2).
    const url = `${this.#managerUrl.replace(/\/+$/, "")}/api/v1/build`;
    const body: Record<string, unknown> = { repo };
    if (opts.appId !== undefined) body["app-id"] = opts.appId;
    if (opts.publicDownload !== undefined) {
      body["public-download"] = opts.publicDownload;
    }
    if (opts.buildLogUrl !== undefined) {
      body["build-log-url"] = opts.buildLogUrl;
    }
    const res = await this.#request({ method: "POST", url, ...json(body) });
    const build = this.#parse(res, BuildSchema, url);
    return {
      value: build,
      location: this.#location(res, url, `${url}/${build.id}`),
    };
  }

  /**
   * Which of `names` the build lacks: gzip JSON GET bodies of ≤ 2000 names each (§3.2), up to
   * `concurrency` requests at once (flat-manager's clients send one at a time), answers in the
   * order of `names`.
   */
  async missingObjects(
    buildUrl: string,
    names: readonly string[],
    concurrency = 1,
  ): Promise<string[]> {
    const url = `${buildUrl}/missing_objects`;
    const schema = z.object({ missing: z.array(z.string()) });
    const chunks: string[][] = [];
    for (let i = 0; i < names.length; i += MISSING_OBJECTS_CHUNK) {
      chunks.push(names.slice(i, i + MISSING_OBJECTS_CHUNK));
    }
    const answers: string[][] = [];
    let next = 0;
    const lane = async () => {
      while (next < chunks.length) {
        const i = next++;
        const res = await this.#request({
          method: "GET",
          url,
          headers: {
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
          },
          body: gzipSync(JSON.stringify({ wanted: chunks[i] })),
        });
        answers[i] = this.#parse(res, schema, url).missing;
      }
    };
    await Promise.all(
      Array.from(
        { length: Math.max(1, Math.min(concurrency, chunks.length)) },
        lane,
      ),
    );
    return answers.flat();
  }

  /**
   * Uploads `files` in one `multipart/mixed` request streamed from disk (§5.3). Returns the
   * server's bytes stored per part, which must count one entry per file. `onFileBytes` hears the
   * file bytes sent so far in the current attempt.
   */
  async upload(
    buildUrl: string,
    files: readonly UploadFile[],
    onFileBytes?: (bytes: number) => void,
  ): Promise<number[]> {
    const url = `${buildUrl}/upload`;
    const boundary = multipartBoundary();
    const stored = z.array(z.number());
    const res = await this.#request(
      {
        method: "POST",
        url,
        headers: { "Content-Type": multipartContentType(boundary) },
        body: {
          length: multipartLength(boundary, files),
          stream: () => multipartBody(boundary, files, onFileBytes),
        },
      },
      true,
      (res) => {
        const n = this.#parse(res, stored, url).length;
        if (n !== files.length) {
          throw new IncompleteUploadError(
            `Upload to ${url} stored ${n} of ${files.length} parts`,
          );
        }
      },
    );
    return this.#parse(res, stored, url);
  }

  /** `POST build_ref`; `build-log-url` is sent as null when unset, as Python does (§5.2). */
  async createBuildRef(
    buildUrl: string,
    ref: string,
    commit: string,
    buildLogUrl?: string,
  ): Promise<BuildRef> {
    const url = `${buildUrl}/build_ref`;
    const body = { ref, commit, "build-log-url": buildLogUrl ?? null };
    const res = await this.#request({ method: "POST", url, ...json(body) });
    return this.#parse(res, BuildRefSchema, url);
  }

  /** `POST add_extra_ids {"ids": [...]}`. */
  async addExtraIds(buildUrl: string, ids: readonly string[]): Promise<Build> {
    const url = `${buildUrl}/add_extra_ids`;
    const res = await this.#request({ method: "POST", url, ...json({ ids }) });
    return this.#parse(res, BuildSchema, url);
  }

  /** `POST commit` with explicit nulls, `token_type` only when set (§3.2); returns the job. */
  async commit(
    buildUrl: string,
    opts: { endoflife?: string; endoflifeRebase?: string; tokenType?: number } =
      {},
  ): Promise<Located<Job>> {
    const url = `${buildUrl}/commit`;
    const body: Record<string, unknown> = {
      endoflife: opts.endoflife ?? null,
      endoflife_rebase: opts.endoflifeRebase ?? null,
    };
    if (opts.tokenType !== undefined) body.token_type = opts.tokenType;
    const res = await this.#request({ method: "POST", url, ...json(body) });
    return {
      value: this.#parse(res, JobSchema, url),
      location: this.#location(res, url, url),
    };
  }

  /** `POST publish {}`; returns the job. Wrong-state 400s are thrown for the caller to judge. */
  async publish(buildUrl: string): Promise<Located<Job>> {
    const url = `${buildUrl}/publish`;
    const res = await this.#request({ method: "POST", url, ...json({}) });
    return {
      value: this.#parse(res, JobSchema, url),
      location: this.#location(res, url, url),
    };
  }

  /**
   * `GET` a job with the JSON body `{"log-offset": n}`, or `{}` without an offset (§4.4).
   * The poll loop passes `retry: false`: it counts errors itself.
   */
  async getJob(
    jobUrl: string,
    logOffset?: number,
    opts: { retry?: boolean } = {},
  ): Promise<Job> {
    return (await this.pollJob(jobUrl, logOffset, opts)).value;
  }

  /**
   * {@link getJob}, asking with `wait` (seconds) that a poll finding nothing new be held until
   * the job moves (`Prefer: wait`, lib/http/prefer_wait.ts). `held` says the server applied it,
   * so the caller need not sleep; flat-manager ignores the header and `held` is false.
   */
  async pollJob(
    jobUrl: string,
    logOffset?: number,
    opts: { retry?: boolean; wait?: number } = {},
  ): Promise<Held<Job>> {
    const body = logOffset === undefined ? {} : { "log-offset": logOffset };
    const { headers, ...rest } = json(body);
    const res = await this.#request({
      method: "GET",
      url: jobUrl,
      ...rest,
      headers: opts.wait ? { ...headers, ...preferWait(opts.wait) } : headers,
    }, opts.retry ?? true);
    return {
      value: this.#parse(res, JobSchema, jobUrl),
      held: res.headers.has(PREFERENCE_APPLIED_HEADER),
    };
  }

  /** `GET` the build. */
  async getBuild(buildUrl: string): Promise<Build> {
    const res = await this.#request({ method: "GET", url: buildUrl });
    return this.#parse(res, BuildSchema, buildUrl);
  }

  /** `GET <build>/extended`; null on 404, which clients take for an old server without checks. */
  async getBuildExtended(buildUrl: string): Promise<BuildExtended | null> {
    return (await this.pollBuildExtended(buildUrl)).value;
  }

  /** {@link getBuildExtended}, held while the build is committing when `wait` is given. */
  async pollBuildExtended(
    buildUrl: string,
    wait?: number,
  ): Promise<Held<BuildExtended | null>> {
    const url = `${buildUrl}/extended`;
    try {
      const res = await this.#request({
        method: "GET",
        url,
        ...(wait ? { headers: preferWait(wait) } : {}),
      });
      return {
        value: this.#parse(res, BuildExtendedSchema, url),
        held: res.headers.has(PREFERENCE_APPLIED_HEADER),
      };
    } catch (e) {
      if (e instanceof FlatManagerApiError && e.status === 404) {
        return { value: null, held: false };
      }
      throw e;
    }
  }

  /** `POST purge {}`; null when the server answers `Can't prune build while in use`, which both
   * clients treat as success (§3.2). */
  async purge(buildUrl: string): Promise<Build | null> {
    const url = `${buildUrl}/purge`;
    try {
      const res = await this.#request({ method: "POST", url, ...json({}) });
      return this.#parse(res, BuildSchema, url);
    } catch (e) {
      if (
        e instanceof FlatManagerApiError && e.status === 400 &&
        e.body.message === "Can't prune build while in use"
      ) return null;
      throw e;
    }
  }
}
