/**
 * @module Parses Flatyard's configuration from the environment, once, with zod. This is the only
 * module that reads `Deno.env`; everything else receives the typed {@link Config}.
 */
import { fromBase64 } from "./base64.ts";
import { z } from "zod";
import { type HooksConfig, parseHooksFile } from "./builds/hooks.ts";

/** Empty or blank means unset, for every variable (a blank line in an env file is no value). */
const unsetIfBlank = (v: unknown) =>
  typeof v === "string" && v.trim() === "" ? undefined : v;

const bool = (fallback: boolean) =>
  z.preprocess(
    unsetIfBlank,
    z.enum(["true", "false", "1", "0", "yes", "no"]).default(
      fallback ? "true" : "false",
    )
      .transform((v) => v === "true" || v === "1" || v === "yes"),
  );

// Decimal digits only: z.coerce would read "" as 0 and "0x50" as 80.
const int = (fallback: number, min: number, max: number) =>
  z.preprocess(
    unsetIfBlank,
    z.string().regex(/^\d+$/, "must be a whole number").default(
      String(fallback),
    )
      .transform(Number).pipe(z.number().int().min(min).max(max)),
  );

const withDefault = <T extends z.ZodType>(schema: T) =>
  z.preprocess(unsetIfBlank, schema);

/** A base64 secret as flat-manager configures it (specs/flat-manager-api.md §2.1: standard, padded). */
const base64Secret = z.string().regex(
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  "must be standard (padded) base64",
).refine((s) => s.length >= 4, "must not be empty");

const optionalString = z.string().trim().transform((s) =>
  s === "" ? undefined : s
).optional();

/** Every environment variable Flatyard reads, with its default. README.md documents the same table. */
export const envSchema = z.object({
  FLATYARD_DATA_DIR: withDefault(z.string().default("./data")),
  FLATYARD_HOST: withDefault(z.string().default("127.0.0.1")),
  FLATYARD_PORT: int(8080, 0, 65535),
  // The public origin; cookie-authenticated writes must come from it (the CSRF check).
  FLATYARD_BASE_URL: optionalString.pipe(
    z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
      .refine((u) => !/[?#]/.test(u), "must not have a query or fragment")
      .optional(),
  ),
  DATABASE_URL: optionalString.pipe(
    z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL")
      .optional(),
  ),
  REDIS_URL: optionalString.pipe(
    z.string().regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
      .optional(),
  ),
  FLATYARD_SECRET: optionalString.pipe(base64Secret.optional()),
  FLATYARD_REPO_SECRET: optionalString.pipe(base64Secret.optional()),
  FLATYARD_TOKEN_PREFIX: optionalString,
  FLATYARD_MASTER_KEY: optionalString.pipe(
    base64Secret.refine(
      (s) => atob(s).length === 32,
      "must be 32 bytes, base64",
    ).optional(),
  ),
  FLATYARD_MAX_OBJECT_BYTES: int(4 * 1024 ** 3, 1, Number.MAX_SAFE_INTEGER),
  FLATYARD_HOOKS_FILE: optionalString,
  FLATYARD_CDN_PURGE_ATTEMPTS: int(5, 1, 20),
  FLATYARD_CDN_PURGE_RETRY_MS: int(1000, 0, 60_000),
  // Hosts CDN purge hooks may call: `cdn.example` or `*.example` (any subdomain).
  FLATYARD_CDN_HOSTS: optionalString.pipe(
    z.string().transform((s) =>
      s.split(",").map((h) => h.trim().toLowerCase()).filter(Boolean)
    ).pipe(
      z.array(
        z.string().regex(
          /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$|^\[[0-9a-f:.]+\]$/,
          "must be host names (or *.domain), separated by commas",
        ),
      ),
    ).optional(),
  ),
  FLATYARD_RUNNER: withDefault(
    z.enum(["local", "kubernetes"]).default("local"),
  ),
  FLATYARD_K8S_NAMESPACE: withDefault(z.string().default("flatyard-builds")),
  FLATYARD_K8S_BUILDER_IMAGE: optionalString,
  FLATYARD_K8S_KUBECONFIG: optionalString,
  FLATYARD_K8S_SECURITY: withDefault(
    z.enum(["userns", "privileged"]).default("userns"),
  ),
  FLATYARD_BUILD_CONCURRENCY: int(2, 1, 1000),
  FLATYARD_BUILD_REPO_CONCURRENCY: int(2, 1, 1000),
  FLATYARD_BUILD_TIMEOUT_SECONDS: int(3600, 60, 7 * 24 * 3600),
  FLATYARD_RUN_WORKER: bool(true),
  FLATYARD_WORKER_CONCURRENCY: int(2, 1, 64),
  FLATYARD_JOB_LEASE_SECONDS: int(30, 3, 3600),
  FLATYARD_SESSION_HOURS: int(12, 1, 24 * 90),
  FLATYARD_MAX_TOKEN_DAYS: int(365, 1, 3650),
  FLATYARD_TRUST_PROXY: bool(false),
  FLATYARD_FILE_CACHE_MB: int(64, 0, 65536),
  FLATYARD_OBJECT_RECHECK_SECONDS: int(10, 1, 3600),
  FLATYARD_LOG_LEVEL: withDefault(
    z.enum(["debug", "info", "warn", "error"]).default("info"),
  ),
});

/** Flatyard's whole configuration. */
export interface Config {
  dataDir: string;
  host: string;
  port: number;
  /** Public base URL; defaults to `http://<host>:<port>`. */
  baseUrl: string;
  /** Unset: the embedded PGlite database in `<dataDir>/db`. */
  databaseUrl: string | undefined;
  /** Unset: the in-process bus. */
  redisUrl: string | undefined;
  /** Raw JWT key bytes; unset: generated once and kept in `<dataDir>/secret`. */
  secret: Uint8Array | undefined;
  /** Key for `/repo` download tokens; falls back to {@link secret}. */
  repoSecret: Uint8Array | undefined;
  tokenPrefix: string | undefined;
  /** Seals signing keys at rest (32 bytes); unset: generated once into `<dataDir>/master.key`. */
  masterKey: Uint8Array | undefined;
  /** Largest single object or delta part accepted by an upload (413 above). */
  maxObjectBytes: number;
  /** Publish and check hooks per repository, from FLATYARD_HOOKS_FILE (none when unset). */
  hooks: HooksConfig;
  /** Tries per CDN purge request, and the first retry's delay (doubling after). */
  cdnPurge: {
    attempts: number;
    retryMs: number;
    /** `FLATYARD_CDN_SECRET_<NAME>` values by NAME, for `{secret:NAME}` in hook headers. */
    secrets: Record<string, string>;
    /** The hosts hooks may call (`*.domain` for subdomains); undefined: any. */
    hosts: string[] | undefined;
  };
  runner: "local" | "kubernetes";
  /** The Kubernetes runner's settings (used when `runner` is `kubernetes`). */
  kubernetes: {
    namespace: string;
    image: string | undefined;
    /** A kubeconfig file; unset: the in-cluster service account. */
    kubeconfig: string | undefined;
    security: "userns" | "privileged";
  };
  /** Build tasks running at once: in all, per repository; and a task's default time limit. */
  builds: { concurrency: number; perRepo: number; timeoutSeconds: number };
  runWorker: boolean;
  workerConcurrency: number;
  jobLeaseSeconds: number;
  sessionHours: number;
  maxTokenDays: number;
  trustProxy: boolean;
  /** Memory for small immutable repository files (MiB; 0: none). */
  fileCacheMb: number;
  /** How long an object held in memory is served before its file is looked at again. */
  objectRecheckSeconds: number;
  logLevel: "debug" | "info" | "warn" | "error";
}

/** Thrown by {@link parseConfig} with every invalid variable named. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(
      `Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

/** Parses an environment map into a {@link Config}; throws {@link ConfigError} naming each bad field. */
/** Prefix of the environment variables that hold CDN purge secrets. */
export const CDN_SECRET_PREFIX = "FLATYARD_CDN_SECRET_";

function cdnSecrets(
  env: Record<string, string | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith(CDN_SECRET_PREFIX) && v) {
      out[k.slice(CDN_SECRET_PREFIX.length)] = v;
    }
  }
  return out;
}

export function parseConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`),
    );
  }
  const e = parsed.data;
  if (e.FLATYARD_RUNNER === "kubernetes" && !e.FLATYARD_K8S_BUILDER_IMAGE) {
    throw new ConfigError([
      "FLATYARD_K8S_BUILDER_IMAGE: required when FLATYARD_RUNNER is kubernetes",
    ]);
  }
  let hooks: HooksConfig = {};
  if (e.FLATYARD_HOOKS_FILE !== undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(e.FLATYARD_HOOKS_FILE);
    } catch (err) {
      throw new ConfigError([
        `FLATYARD_HOOKS_FILE: cannot read ${e.FLATYARD_HOOKS_FILE}: ${
          (err as Error).message
        }`,
      ]);
    }
    const h = parseHooksFile(text);
    if (!h.ok) {
      throw new ConfigError(
        h.problems.map((p) =>
          `FLATYARD_HOOKS_FILE ${e.FLATYARD_HOOKS_FILE}: ${p}`
        ),
      );
    }
    hooks = h.hooks;
  }
  const host = e.FLATYARD_HOST;
  const urlHost = host.includes(":") && !host.startsWith("[")
    ? `[${host}]`
    : host;
  return {
    dataDir: e.FLATYARD_DATA_DIR,
    host,
    port: e.FLATYARD_PORT,
    baseUrl: (e.FLATYARD_BASE_URL ?? `http://${urlHost}:${e.FLATYARD_PORT}`)
      .replace(/\/+$/, ""),
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    secret: e.FLATYARD_SECRET === undefined
      ? undefined
      : fromBase64(e.FLATYARD_SECRET),
    repoSecret: e.FLATYARD_REPO_SECRET === undefined
      ? undefined
      : fromBase64(e.FLATYARD_REPO_SECRET),
    tokenPrefix: e.FLATYARD_TOKEN_PREFIX,
    masterKey: e.FLATYARD_MASTER_KEY === undefined
      ? undefined
      : fromBase64(e.FLATYARD_MASTER_KEY),
    maxObjectBytes: e.FLATYARD_MAX_OBJECT_BYTES,
    hooks,
    cdnPurge: {
      attempts: e.FLATYARD_CDN_PURGE_ATTEMPTS,
      retryMs: e.FLATYARD_CDN_PURGE_RETRY_MS,
      secrets: cdnSecrets(env),
      hosts: e.FLATYARD_CDN_HOSTS,
    },
    runner: e.FLATYARD_RUNNER,
    kubernetes: {
      namespace: e.FLATYARD_K8S_NAMESPACE,
      image: e.FLATYARD_K8S_BUILDER_IMAGE,
      kubeconfig: e.FLATYARD_K8S_KUBECONFIG,
      security: e.FLATYARD_K8S_SECURITY,
    },
    builds: {
      concurrency: e.FLATYARD_BUILD_CONCURRENCY,
      perRepo: e.FLATYARD_BUILD_REPO_CONCURRENCY,
      timeoutSeconds: e.FLATYARD_BUILD_TIMEOUT_SECONDS,
    },
    runWorker: e.FLATYARD_RUN_WORKER,
    workerConcurrency: e.FLATYARD_WORKER_CONCURRENCY,
    jobLeaseSeconds: e.FLATYARD_JOB_LEASE_SECONDS,
    sessionHours: e.FLATYARD_SESSION_HOURS,
    maxTokenDays: e.FLATYARD_MAX_TOKEN_DAYS,
    trustProxy: e.FLATYARD_TRUST_PROXY,
    fileCacheMb: e.FLATYARD_FILE_CACHE_MB,
    objectRecheckSeconds: e.FLATYARD_OBJECT_RECHECK_SECONDS,
    logLevel: e.FLATYARD_LOG_LEVEL,
  };
}

/** Reads the process environment once. */
export function loadConfig(): Config {
  return parseConfig(Deno.env.toObject());
}

/** What the client commands (`push`) read from the environment: flat-manager-client's token. */
export function loadClientEnv(): { repoToken: string | undefined } {
  return { repoToken: Deno.env.get("REPO_TOKEN") || undefined };
}
