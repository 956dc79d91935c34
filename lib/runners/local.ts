/**
 * @module The local runner (the default): runs `flatyard builder` as a subprocess in a session of
 * its own (`setsid`), so that cancelling or timing out kills the whole process tree
 * (flatpak-builder, bubblewrap and the build's own processes), in a working directory of its own
 * that is removed afterwards, with its output captured line by line. A non-native architecture
 * runs through qemu-user-static and binfmt_misc when the host has them, and otherwise fails
 * with a clear message before anything starts.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BUILD_FAILED_EXIT,
  type Runner,
  type RunRequest,
  type RunResult,
} from "./runner.ts";

const MAIN_TS = fileURLToPath(new URL("../../main.ts", import.meta.url));
const DENO_JSON = fileURLToPath(new URL("../../deno.json", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** What the builder keeps of the server's environment: the tools' caches and network settings. */
const PASSED_ENV = [
  "PATH",
  "LANG",
  "DENO_TLS_CA_STORE",
  "SSL_CERT_FILE",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
];

/** Deno's cache, where the server's dependencies already are (the builder's HOME differs). */
function denoDir(): string {
  const explicit = Deno.env.get("DENO_DIR");
  if (explicit) return explicit;
  const cache = Deno.env.get("XDG_CACHE_HOME") ??
    join(Deno.env.get("HOME") ?? "/root", ".cache");
  return join(cache, "deno");
}

/** flatpak arch names and the machine names the kernel reports for them. */
const UNAME: Record<string, string> = {
  x86_64: "x86_64",
  aarch64: "aarch64",
  i386: "i686",
  arm: "armv7l",
};
/** binfmt_misc entries Debian's qemu-user-static registers, by flatpak arch. */
const BINFMT: Record<string, string> = {
  x86_64: "qemu-x86_64",
  aarch64: "qemu-aarch64",
  i386: "qemu-i386",
  arm: "qemu-arm",
};

function hostArch(): string {
  return Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
}

/** Why `arch` cannot run here, or undefined when it can. */
export async function archUnsupported(
  arch: string,
): Promise<string | undefined> {
  if (arch === hostArch() || (arch === "i386" && hostArch() === "x86_64")) {
    return undefined;
  }
  if (!UNAME[arch]) return `Unknown architecture "${arch}"`;
  const entry = `/proc/sys/fs/binfmt_misc/${BINFMT[arch]}`;
  try {
    const text = await Deno.readTextFile(entry);
    if (!text.startsWith("enabled")) {
      return `The binfmt_misc handler ${entry} is disabled: enable it to build for ${arch}`;
    }
    return undefined;
  } catch {
    return `Cannot build for ${arch} on this ${hostArch()} host: no qemu-user-static binfmt handler (${entry}); install qemu-user-static and binfmt-support`;
  }
}

/** Settings of the local runner. */
export interface LocalRunnerOptions {
  /** Per-task working directories are made here. */
  workRoot: string;
  /** The flatpak installation runtimes and SDKs are installed into (shared by tasks). */
  flatpakUserDir: string;
  /** Seconds between SIGTERM and SIGKILL when stopping a task. Default 5. */
  killGraceSeconds?: number;
}

async function pump(
  stream: ReadableStream<Uint8Array>,
  log: (line: string) => Promise<void> | void,
): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      await log(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) await log(buf);
}

/** The local runner. */
export function localRunner(opts: LocalRunnerOptions): Runner {
  return {
    name: "local",
    async run(req: RunRequest): Promise<RunResult> {
      const why = await archUnsupported(req.spec.arch);
      if (why) {
        await req.log(why);
        return { outcome: "failed", message: why };
      }
      if (req.signal.aborted) {
        return { outcome: "cancelled", message: "Cancelled before it started" };
      }
      await Deno.mkdir(opts.workRoot, { recursive: true });
      await Deno.mkdir(opts.flatpakUserDir, { recursive: true });
      const dir = await Deno.makeTempDir({
        dir: opts.workRoot,
        prefix: `task-${req.spec.taskId}-`,
      });
      const home = join(dir, "home");
      await Deno.mkdir(home);
      const passed: Record<string, string> = {};
      for (const k of PASSED_ENV) {
        const v = Deno.env.get(k);
        if (v !== undefined) passed[k] = v;
      }
      const child = new Deno.Command("setsid", {
        args: [
          Deno.execPath(),
          "run",
          "-A",
          `--config=${DENO_JSON}`,
          MAIN_TS,
          "builder",
        ],
        cwd: ROOT,
        clearEnv: true,
        env: {
          PATH: "/usr/bin:/bin",
          LANG: "C.UTF-8",
          ...passed,
          HOME: home,
          DENO_DIR: denoDir(),
          FLATPAK_USER_DIR: opts.flatpakUserDir,
          FLATYARD_BUILD_SPEC: JSON.stringify(req.spec),
          FLATYARD_UPLOAD_TOKEN: req.uploadToken,
          FLATYARD_WORK_DIR: join(dir, "work"),
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let stopped: "cancelled" | "timeout" | undefined;
      const stop = (why: "cancelled" | "timeout") => {
        if (stopped) return;
        stopped = why;
        // The negative pid signals the whole session's process group.
        const kill = (sig: Deno.Signal) => {
          try {
            Deno.kill(-child.pid, sig);
          } catch { /* already gone */ }
        };
        kill("SIGTERM");
        Deno.unrefTimer(
          setTimeout(
            () => kill("SIGKILL"),
            (opts.killGraceSeconds ?? 5) * 1000,
          ),
        );
      };
      const onAbort = () => stop("cancelled");
      req.signal.addEventListener("abort", onAbort);
      const timer = setTimeout(
        () => stop("timeout"),
        req.resources.timeoutSeconds * 1000,
      );
      try {
        const [status] = await Promise.all([
          child.status,
          pump(child.stdout, req.log),
          pump(child.stderr, req.log),
        ]);
        // Whatever the builder left behind in its session goes too.
        try {
          Deno.kill(-child.pid, "SIGKILL");
        } catch { /* none left */ }
        if (stopped === "cancelled") {
          return { outcome: "cancelled", message: "Cancelled" };
        }
        if (stopped === "timeout") {
          return {
            outcome: "timeout",
            message:
              `The build ran longer than ${req.resources.timeoutSeconds} s and was stopped`,
          };
        }
        if (status.success) {
          return { outcome: "succeeded", message: "Built and uploaded" };
        }
        if (status.code === BUILD_FAILED_EXIT) {
          return {
            outcome: "failed",
            message: "flatpak-builder failed: see the log",
            exitCode: status.code,
          };
        }
        return {
          outcome: "infrastructure",
          message: `The builder exited with ${status.code}${
            status.signal ? ` (${status.signal})` : ""
          }`,
          exitCode: status.code,
        };
      } finally {
        clearTimeout(timer);
        req.signal.removeEventListener("abort", onAbort);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
}
