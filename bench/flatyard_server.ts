/**
 * @module What both benchmarks share: a command runner, a free loopback port, and a Flatyard
 * server of its own (`main.ts serve` in a subprocess on a fresh data dir) with tokens minted
 * offline by `main.ts token`. FLATYARD_* settings in the bench's environment reach the server.
 * BENCH_PROFILE=DIR writes the server's CPU profile there (open it in Chrome's DevTools).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../", import.meta.url));

/** Runs a command; resolves with its stdout, or throws with its stderr. */
export async function sh(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  return (await shOutput(cmd, args, env)).stdout;
}

/** {@link sh}, resolving with stderr too. */
export async function shOutput(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    ...(env ? { env } : {}),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${text(out.stderr)}`);
  }
  return { stdout: text(out.stdout), stderr: text(out.stderr) };
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running Flatyard. */
export interface BenchServer {
  base: string;
  /** The server's environment (the CLI commands of the bench reuse it). */
  env: Record<string, string>;
  pid: number;
  /** A token minted offline; `args` are `flatyard token` options. */
  token(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Starts `main.ts serve` with its data in `<work>/data` and waits until it is ready. */
export async function startFlatyard(work: string): Promise<BenchServer> {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  // Settings to try (FLATYARD_FILE_CACHE_MB=0, say) pass through from the bench's environment.
  const settings = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) =>
      k.startsWith("FLATYARD_") && !k.startsWith("FLATYARD_TEST_")
    ),
  );
  const env = {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "",
    FLATYARD_LOG_LEVEL: "warn",
    ...settings,
    FLATYARD_DATA_DIR: join(work, "data"),
    FLATYARD_PORT: String(port),
    FLATYARD_SECRET: btoa("bench-secret-bench-secret-bench!"),
  };
  const profile = Deno.env.get("BENCH_PROFILE");
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []),
      join(root, "main.ts"),
      "serve",
    ],
    env,
    clearEnv: true,
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const stop = async () => {
    try {
      server.kill("SIGTERM");
    } catch { /* already gone */ }
    await server.status;
  };
  for (let i = 0;; i++) {
    const ready = await fetch(`${base}/readyz`).then(async (r) => {
      await r.body?.cancel();
      return r.ok;
    }).catch(() => false);
    if (ready) break;
    if (i >= 300) {
      await stop();
      throw new Error(`${base}/readyz never answered`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    env,
    pid: server.pid,
    token: async (...args) =>
      (await sh(Deno.execPath(), [
        "run",
        "-A",
        join(root, "main.ts"),
        "token",
        ...args,
      ], env)).trim(),
    stop,
  };
}
