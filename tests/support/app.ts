/**
 * @module A Flatyard app on a test database: deps with a memory bus, a silent logger, a fixed
 * secret and cheap password hashing, plus helpers to mint tokens, make users and send requests.
 */
import { createApp } from "../../lib/app.ts";
import { createMemoryBus } from "../../lib/bus/memory_bus.ts";
import type { Bus } from "../../lib/bus/bus.ts";
import { type Clock, systemClock, unixNow } from "../../lib/clock.ts";
import { parseConfig } from "../../lib/config.ts";
import type { Db } from "../../lib/db/db.ts";
import { assembleDeps, type Deps } from "../../lib/deps.ts";
import { silentLogger } from "../../lib/logger.ts";
import type { Claims } from "../../lib/tokens/claims.ts";
import { signToken } from "../../lib/tokens/jwt.ts";
import type { GlobalRole, RepoRole } from "../../lib/users/roles.ts";
import type { User } from "../../lib/users/users.ts";

export const TEST_SECRET = new TextEncoder().encode("flatyard-test-secret");
export const TEST_PASSWORD = "correct horse battery staple";

/** The gentoken default claims (§2.2), valid for an hour. */
export function defaultClaims(
  clock: Clock = systemClock,
  over: Partial<Claims> = {},
): Claims {
  return {
    name: "default",
    sub: "build",
    exp: unixNow(clock) + 3600,
    jti: null,
    scope: ["build", "upload", "download", "publish", "jobs"],
    prefixes: [""],
    apps: [],
    repos: [""],
    branches: ["stable"],
    token_type: "app",
    ...over,
  };
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A test app and its helpers. */
export interface TestApp {
  deps: Deps;
  app: ReturnType<typeof createApp>;
  /** Signs claims (gentoken defaults overridden by `over`) with the test secret. */
  token(over?: Partial<Claims>): Promise<string>;
  /** Creates a user with the test password. */
  user(
    username: string,
    role: GlobalRole,
    repoRoles?: Record<string, RepoRole>,
  ): Promise<User>;
  /** Logs in and returns the session value. */
  login(username: string, password?: string): Promise<string>;
  /** Sends a request; JSON bodies are encoded. */
  req(method: string, path: string, opts?: RequestOptions): Promise<Response>;
  close(): Promise<void>;
}

/** Builds a test app on `db`. */
export async function testApp(
  db: Db,
  opts: { clock?: Clock; env?: Record<string, string>; bus?: Bus } = {},
): Promise<TestApp> {
  const dataDir = await Deno.makeTempDir({ prefix: "flatyard-test-" });
  const config = parseConfig({
    FLATYARD_DATA_DIR: dataDir,
    FLATYARD_SECRET: btoa(String.fromCharCode(...TEST_SECRET)),
    ...opts.env,
  });
  const bus = opts.bus ?? createMemoryBus();
  const clock = opts.clock ?? systemClock;
  const deps = await assembleDeps(config, {
    db,
    bus,
    logger: silentLogger,
    scryptN: 1024,
    clock,
  });
  await deps.start();
  const app = createApp(deps);
  const req = (method: string, path: string, o: RequestOptions = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token !== undefined) headers["Authorization"] = `Bearer ${o.token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === "string" ? o.body : JSON.stringify(o.body);
      headers["Content-Type"] ??= "application/json";
    }
    return Promise.resolve(
      app.request(path, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      }),
    );
  };
  return {
    deps,
    app,
    token: (over = {}) => signToken(defaultClaims(clock, over), TEST_SECRET),
    async user(username, role, repoRoles = {}) {
      const u = await deps.users.create({
        username,
        password: TEST_PASSWORD,
        role,
      });
      for (const [repo, r] of Object.entries(repoRoles)) {
        await deps.users.setRepoRole(u.id, repo, r);
      }
      return (await deps.users.get(u.id))!;
    },
    async login(username, password = TEST_PASSWORD) {
      const res = await req("POST", "/api/v1/auth/login", {
        body: { username, password },
      });
      if (res.status !== 200) {
        throw new Error(
          `Login of ${username} failed: ${res.status} ${await res.text()}`,
        );
      }
      return (await res.json()).session;
    },
    req,
    async close() {
      await deps.stop();
      if (!opts.bus) await bus.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** Reads a JSON body and checks the status, with the body in the failure message. */
// deno-lint-ignore no-explicit-any -- tests read whatever shape they assert on
export async function expectJson(res: Response, status: number): Promise<any> {
  const text = await res.text();
  if (res.status !== status) {
    throw new Error(`Expected ${status}, got ${res.status}: ${text}`);
  }
  return text === "" ? undefined : JSON.parse(text);
}
