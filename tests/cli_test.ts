/**
 * `main.ts` as an operator runs it: each test starts `flatyard <command>` as a subprocess with an
 * explicit environment (nothing inherited but PATH and HOME) and a data directory of its own, and
 * checks its exit code, output and effects.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { verifyToken } from "../lib/tokens/jwt.ts";
import type { Claims } from "../lib/tokens/claims.ts";
import { dbKinds, freshDb } from "./support/db.ts";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const mainTs = join(repoRoot, "main.ts");
/** Upper bound on every wait for a subprocess: a hang fails the test instead of the suite. */
const WAIT_MS = 60_000;
const YEAR = 365 * 86400;
const encoder = new TextEncoder();
const SECRET = encoder.encode("cli-test-secret-0123456789abcdef");
const SECRET_B64 = btoa(String.fromCharCode(...SECRET));

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of a subprocess: PATH and HOME (the Deno cache), a data dir, and `extra`. */
function cliEnv(
  dataDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "",
    FLATYARD_DATA_DIR: dataDir,
    ...extra,
  };
}

function command(
  args: string[],
  env: Record<string, string>,
  stdin: "piped" | "null",
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", mainTs, ...args],
    cwd: repoRoot,
    clearEnv: true,
    env,
    stdin,
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs `flatyard <args>` to completion (killed after {@link WAIT_MS}), feeding it `stdin`. */
async function flatyard(
  args: string[],
  env: Record<string, string>,
  stdin?: string,
): Promise<Output> {
  const child = command(args, env, stdin === undefined ? "null" : "piped")
    .spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS);
  try {
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode(stdin));
      await writer.close();
    }
    const out = await child.output();
    assert.equal(
      out.signal,
      null,
      `flatyard ${args.join(" ")} was killed after ${WAIT_MS} ms`,
    );
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` with a fresh data directory, removed afterwards. */
async function withDataDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "flatyard_cli_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Runs `flatyard token <args>` and checks it succeeded with one JWT on stdout. */
async function mint(
  args: string[],
  env: Record<string, string>,
  stdin?: string,
): Promise<{ token: string; before: number; after: number }> {
  const before = nowSeconds();
  const out = await flatyard(["token", ...args], env, stdin);
  const after = nowSeconds();
  assert.equal(out.code, 0, out.stderr);
  const token = out.stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "one JWT on stdout");
  return { token, before, after };
}

/** Checks `exp` was set `seconds` after the moment the command ran. */
function assertExpiresIn(
  claims: Claims,
  seconds: number,
  run: { before: number; after: number },
): void {
  assert.ok(
    claims.exp >= run.before + seconds && claims.exp <= run.after + seconds,
    `exp ${claims.exp} is ${seconds} s after a time in [${run.before}, ${run.after}]`,
  );
}

Deno.test("flatyard token with no options mints gentoken's default token with FLATYARD_SECRET", async () => {
  await withDataDir(async (dir) => {
    const run = await mint([], cliEnv(dir, { FLATYARD_SECRET: SECRET_B64 }));
    const claims = await verifyToken(run.token, SECRET, nowSeconds());
    const { exp: _, ...rest } = claims;
    assert.deepEqual(rest, {
      name: "default",
      sub: "build",
      scope: ["build", "upload", "download", "publish", "jobs"],
      prefixes: [""],
      apps: [],
      repos: [""],
      branches: ["stable"],
      token_type: "app",
      jti: null,
    });
    assertExpiresIn(claims, YEAR, run);
    await assert.rejects(
      verifyToken(run.token, encoder.encode("another secret"), nowSeconds()),
      /Invalid token claims/,
    );
    // The secret came from the environment: nothing was written to the data dir.
    await assert.rejects(Deno.stat(join(dir, "secret")), Deno.errors.NotFound);
  });
});

Deno.test("flatyard token options set the claims as gentoken's do", async () => {
  await withDataDir(async (dir) => {
    const run = await mint(
      [
        "--sub",
        "",
        "--scope",
        "tokenmanagement",
        "--repo",
        "stable",
        "--prefix",
        "org.x",
        "--jti",
        "abc",
        "--duration",
        "60",
        "--name",
        "ci",
      ],
      cliEnv(dir, { FLATYARD_SECRET: SECRET_B64 }),
    );
    const claims = await verifyToken(run.token, SECRET, nowSeconds());
    const { exp: _, ...rest } = claims;
    assert.deepEqual(rest, {
      name: "ci",
      sub: "",
      scope: ["tokenmanagement"],
      prefixes: ["org.x"],
      apps: [],
      repos: ["stable"],
      branches: ["stable"],
      token_type: "app",
      jti: "abc",
    });
    assertExpiresIn(claims, 60, run);
  });
});

Deno.test("flatyard token signs with the secret given by --secret or --secret-file", async (t) => {
  const cases: {
    name: string;
    args: string[];
    stdin?: string;
    key: string;
  }[] = [
    {
      name: "--secret with --base64 is decoded",
      args: ["--secret", "c2VjcmV0", "--base64"],
      key: "secret",
    },
    {
      name: "--secret without --base64 is used as it is",
      args: ["--secret", "c2VjcmV0"],
      key: "c2VjcmV0",
    },
    {
      name: "--secret-file - reads stdin and drops the final newline",
      args: ["--secret-file", "-"],
      stdin: "from stdin\n",
      key: "from stdin",
    },
    {
      name: "--secret-file - with --base64 decodes stdin",
      args: ["--secret-file", "-", "--base64"],
      stdin: "c2VjcmV0\n",
      key: "secret",
    },
  ];
  await withDataDir(async (dir) => {
    // A configured secret is present too: the options must win over it.
    const env = cliEnv(dir, { FLATYARD_SECRET: SECRET_B64 });
    for (const c of cases) {
      await t.step(c.name, async () => {
        const { token } = await mint(c.args, env, c.stdin);
        const claims = await verifyToken(
          token,
          encoder.encode(c.key),
          nowSeconds(),
        );
        assert.equal(claims.sub, "build");
        await assert.rejects(
          verifyToken(token, SECRET, nowSeconds()),
          /Invalid token claims/,
        );
      });
    }
  });
});

Deno.test("flatyard token without FLATYARD_SECRET signs with <data>/secret, created 0600 and reused", async () => {
  await withDataDir(async (dir) => {
    const env = cliEnv(dir);
    const first = await mint([], env);
    const path = join(dir, "secret");
    const stat = await Deno.stat(path);
    assert.equal(stat.mode! & 0o777, 0o600);
    const saved = await Deno.readTextFile(path);
    const key = Uint8Array.from(atob(saved.trim()), (c) => c.charCodeAt(0));
    assert.equal(key.length, 32);
    assert.equal(
      (await verifyToken(first.token, key, nowSeconds())).sub,
      "build",
    );

    const second = await mint(["--name", "again"], env);
    assert.equal(await Deno.readTextFile(path), saved, "the key is kept");
    assert.equal(
      (await verifyToken(second.token, key, nowSeconds())).name,
      "again",
    );
  });
});

Deno.test("flatyard token rejects bad options with exit code 2 and a message", async (t) => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: ["--scope", "nope"], message: /Unknown scope "nope"/ },
    { args: ["--scope", "build", "--scope", "Build"], message: /"Build"/ },
    { args: ["--duration", "abc"], message: /Invalid --duration "abc"/ },
    { args: ["--duration", "0"], message: /Invalid --duration "0"/ },
    { args: ["--duration", "1.5"], message: /Invalid --duration "1.5"/ },
    { args: ["--bogus"], message: /bogus/ },
  ];
  await withDataDir(async (dir) => {
    const env = cliEnv(dir, { FLATYARD_SECRET: SECRET_B64 });
    for (const c of cases) {
      await t.step(c.args.join(" "), async () => {
        const out = await flatyard(["token", ...c.args], env);
        assert.equal(out.code, 2, out.stderr);
        assert.equal(out.stdout, "", "no token printed");
        assert.match(out.stderr, c.message);
      });
    }
  });
});

Deno.test("flatyard exits 2 on an invalid configuration, naming every bad variable", async () => {
  await withDataDir(async (dir) => {
    const out = await flatyard(
      ["migrate"],
      cliEnv(dir, { FLATYARD_PORT: "abc", DATABASE_URL: "mysql://x" }),
    );
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /Invalid configuration/);
    assert.match(out.stderr, /FLATYARD_PORT/);
    assert.match(out.stderr, /DATABASE_URL/);
    assert.equal(out.stdout, "");
    await assert.rejects(Deno.stat(join(dir, "db")), Deno.errors.NotFound);
  });
});

for (const kind of dbKinds()) {
  Deno.test(`flatyard migrate applies 0001 once, then has nothing pending [${kind}]`, async () => {
    const pg = kind === "postgres" ? await freshDb("postgres") : undefined;
    try {
      // freshDb migrates; empty the database again so the command has something to apply.
      await pg?.db.exec("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
      await withDataDir(async (dir) => {
        const env = cliEnv(dir, pg ? { DATABASE_URL: pg.url! } : {});
        const first = await flatyard(["migrate"], env);
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stdout, /^Applied migrations: 0001\b/);
        const second = await flatyard(["migrate"], env);
        assert.equal(second.code, 0, second.stderr);
        assert.equal(second.stdout, "No pending migrations\n");
        if (pg) {
          const tables = await pg.db.query<{ version: string }>(
            "SELECT version FROM schema_migrations ORDER BY version",
          );
          assert.equal(tables[0]?.version, "0001");
          await assert.rejects(
            Deno.stat(join(dir, "db")),
            Deno.errors.NotFound,
            "no embedded database when DATABASE_URL is set",
          );
        } else {
          assert.ok((await Deno.stat(join(dir, "db"))).isDirectory);
        }
      });
    } finally {
      await pg?.close();
    }
  });
}

Deno.test("flatyard worker without DATABASE_URL exits 2 and says it needs one", async () => {
  await withDataDir(async (dir) => {
    const out = await flatyard(["worker"], cliEnv(dir));
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /DATABASE_URL/);
    await assert.rejects(Deno.stat(join(dir, "db")), Deno.errors.NotFound);
  });
});

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("flatyard serve: an admin made with create-admin logs in over HTTP, and SIGTERM stops it cleanly", async () => {
  await withDataDir(async (dir) => {
    const port = freePort();
    const env = cliEnv(dir, {
      FLATYARD_HOST: "127.0.0.1",
      FLATYARD_PORT: String(port),
    });
    const created = await flatyard(
      ["user", "create-admin", "--username", "root"],
      env,
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^Created admin "root"/);
    const password = /^Password: (.+)$/m.exec(created.stdout)?.[1];
    assert.ok(password, `a generated password in: ${created.stdout}`);

    const child = command(["serve"], env, "null").spawn();
    let exited: Deno.CommandStatus | undefined;
    const status = child.status.then((s) => exited = s);
    const output = child.output();
    const base = `http://127.0.0.1:${port}`;
    try {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const ready = await fetch(`${base}/readyz`).then(async (r) => {
          await r.body?.cancel();
          return r.status === 200;
        }, () => false);
        if (ready) break;
        if (exited) assert.fail(`serve exited early with code ${exited.code}`);
        if (Date.now() > deadline) assert.fail("serve was not ready in time");
        await new Promise((r) => setTimeout(r, 100));
      }

      const login = await fetch(`${base}/api/v1/auth/login`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: "root", password }),
      });
      const loginBody = await login.json();
      assert.equal(login.status, 200, JSON.stringify(loginBody));
      assert.equal(typeof loginBody.session, "string");

      const anonymous = await fetch(`${base}/api/v1/auth/me`);
      await anonymous.body?.cancel();
      assert.equal(anonymous.status, 401);

      const me = await fetch(`${base}/api/v1/auth/me`, {
        headers: { Authorization: `Bearer ${loginBody.session}` },
      });
      const meBody = await me.json();
      assert.equal(me.status, 200, JSON.stringify(meBody));
      assert.equal(meBody.kind, "user");
      assert.equal(meBody.user.username, "root");
      assert.equal(meBody.user.role, "admin");

      child.kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stopped = await Promise.race([
        status,
        new Promise<undefined>((r) =>
          timer = setTimeout(() => r(undefined), 15_000)
        ),
      ]);
      clearTimeout(timer);
      assert.ok(stopped, "serve exits within 15 s of SIGTERM");
      assert.equal(stopped.code, 0);
    } finally {
      if (!exited) child.kill("SIGKILL");
      const out = await output;
      const stderr = new TextDecoder().decode(out.stderr);
      if (exited?.code === 0) {
        const records = stderr.split("\n").filter((l) => l !== "").map((l) => {
          try {
            return JSON.parse(l) as { msg?: unknown; url?: unknown };
          } catch {
            assert.fail(`stderr line is not JSON: ${l}`);
          }
        });
        const listening = records.find((r) => r.msg === "listening");
        assert.ok(listening, `a "listening" log line in:\n${stderr}`);
        assert.equal(listening.url, base);
        assert.ok(records.some((r) => r.msg === "shutting down"));
      }
    }
  });
});

Deno.test("flatyard openapi prints the OpenAPI 3.1.0 document", async () => {
  await withDataDir(async (dir) => {
    const out = await flatyard(["openapi"], cliEnv(dir));
    assert.equal(out.code, 0, out.stderr);
    const doc = JSON.parse(out.stdout);
    assert.equal(doc.openapi, "3.1.0");
    assert.ok(doc.paths["/api/v1/auth/login"], "documents the login route");
  });
});
