/**
 * @module bench/upload: time from `flatyard push` to "published" for an app of about 5,000
 * files and 200 MB, against the raw CLI doing the same work on the same content, side by side:
 * `ostree pull-local` into a fresh repository plus `flatpak build-update-repo`, plain, with
 * `--untrusted`, and from a copy on another file system (the only one that writes every object
 * as a new file, as an upload must: the other two hardlink). Prints the
 * ratio and the server's memory (peak, and RSS while the upload grows). The repository makes no
 * from-scratch deltas, so both sides do the same work (a first publish has no parent to delta
 * from); generating a from-scratch delta of 200 MB of incompressible data alone takes minutes.
 *
 *   deno run -A bench/upload.ts [--files 5000] [--mib 200]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { root, sh, shOutput, startFlatyard } from "./flatyard_server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    files: { type: "string", default: "5000" },
    mib: { type: "string", default: "200" },
  },
});
const files = Number(values.files);
const totalBytes = Number(values.mib) * 1024 * 1024;
const enc = new TextEncoder();
const say = (s: string) => Deno.stdout.writeSync(enc.encode(s + "\n"));

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, (performance.now() - t0) / 1000];
}

const work = await Deno.makeTempDir({ prefix: "flatyard-bench-upload-" });
try {
  // 1. The app: incompressible files (the worst case for the upload), exported unsigned.
  say(`making an app of ${files} files, ${values.mib} MiB`);
  const app = join(work, "app");
  await Deno.mkdir(join(app, "files", "bin"), { recursive: true });
  await Deno.writeTextFile(
    join(app, "metadata"),
    "[Application]\nname=org.example.Big\nruntime=org.example.BusyBoxPlatform/x86_64/1\nsdk=org.example.BusyBoxSdk/x86_64/1\ncommand=hello\n",
  );
  const per = Math.floor(totalBytes / files);
  const buf = new Uint8Array(per);
  for (let i = 0; i < files; i++) {
    for (let o = 0; o < per; o += 65536) {
      crypto.getRandomValues(buf.subarray(o, Math.min(per, o + 65536)));
    }
    const dir = join(app, "files", "share", `d${i % 50}`);
    if (i < 50) await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(join(dir, `f${i}`), buf);
  }
  await sh("flatpak", ["build-finish", "--command=hello", app]);
  const src = join(work, "src");
  await sh("ostree", ["init", "--mode=archive-z2", `--repo=${src}`]);
  await sh("flatpak", [
    "build-export",
    "--no-update-summary",
    src,
    app,
    "master",
  ]);

  // 2. References: the raw CLI on the same content. Plain pull-local hardlinks objects
  //    without reading them; --untrusted checksums every object, as Flatyard's upload does,
  //    and then hardlinks it too: neither creates a file. An upload has to create one per
  //    object, so a third reference pulls from a copy on another file system (/dev/shm),
  //    where ostree must write every object as a new file, as Flatyard does.
  const reference = async (name: string, extra: string[], from = src) => {
    const dir = join(work, name);
    const [, seconds] = await timed(async () => {
      await sh("ostree", ["init", "--mode=archive-z2", `--repo=${dir}`]);
      await sh("ostree", ["pull-local", ...extra, `--repo=${dir}`, from]);
      await sh("flatpak", ["build-update-repo", dir]);
    });
    return seconds;
  };
  const refSeconds = await reference("ref", []);
  const refUntrusted = await reference("ref-untrusted", ["--untrusted"]);
  let refCopying: number | undefined;
  const shm = "/dev/shm";
  if (
    (await Deno.stat(shm).catch(() => null))?.dev !==
      (await Deno.stat(work)).dev
  ) {
    const copy = await Deno.makeTempDir({
      dir: shm,
      prefix: "flatyard-bench-",
    });
    try {
      await sh("cp", ["-a", `${src}/.`, copy]);
      refCopying = await reference("ref-copying", ["--untrusted"], copy);
    } finally {
      await Deno.remove(copy, { recursive: true });
    }
  }

  // 3. Flatyard: a server of its own, a repository with a signing key, then the CLI push.
  const server = await startFlatyard(work);
  const { base, env } = server;
  try {
    const admin = await server.token(
      "--scope",
      "admin",
      "--sub",
      "",
      "--duration",
      "3600",
    );
    const token = await server.token("--duration", "3600");
    const h = {
      Authorization: `Bearer ${admin}`,
      "Content-Type": "application/json",
    };
    await fetch(`${base}/api/v1/repos`, {
      method: "POST",
      headers: h,
      body: JSON.stringify({
        name: "bench",
        deltaPolicy: { rules: [{ match: "*", depth: 1 }], fromScratch: false },
      }),
    }).then((r) => r.text());
    await fetch(`${base}/api/v1/repos/bench/keys`, {
      method: "POST",
      headers: h,
      body: JSON.stringify({ generate: { algorithm: "eddsa-legacy" } }),
    }).then((r) => r.text());

    const rss: number[] = [];
    const status = () => Deno.readTextFile(`/proc/${server.pid}/status`);
    const kib = (s: string, key: string) =>
      Number(new RegExp(`${key}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
    const sampler = setInterval(
      async () => rss.push(kib(await status(), "VmRSS")),
      250,
    );
    const [pushed, pushSeconds] = await timed(() =>
      shOutput(Deno.execPath(), [
        "run",
        "-A",
        ...(Deno.env.get("BENCH_PROFILE")
          ? [
            "--cpu-prof",
            `--cpu-prof-dir=${Deno.env.get("BENCH_PROFILE")}/client`,
          ]
          : []),
        join(root, "main.ts"),
        "push",
        "--repo",
        "bench",
        "--app-id",
        "org.example.Big",
        "--publish",
        "--wait-update",
        base,
        src,
      ], { ...env, REPO_TOKEN: token })
    );
    clearInterval(sampler);
    const peak = kib(await status(), "VmHWM");
    const q = (f: number) =>
      (rss[Math.min(rss.length - 1, Math.floor(f * rss.length))]! / 1024)
        .toFixed(0);

    say("");
    say(
      `content: ${files} files, ${
        (files * per / 1048576).toFixed(0)
      } MiB (incompressible)`,
    );
    const row = (what: string, seconds: number) =>
      say(`${what.padEnd(66)} ${seconds.toFixed(2)} s`);
    row("reference  ostree pull-local + flatpak build-update-repo", refSeconds);
    row(
      "reference  ostree pull-local --untrusted + flatpak build-update-repo",
      refUntrusted,
    );
    if (refCopying !== undefined) {
      row(
        "reference  the same, from another file system (writes every object)",
        refCopying,
      );
    }
    row("flatyard   push --publish --wait-update (to published)", pushSeconds);
    say(
      `ratio flatyard/reference: ${(pushSeconds / refSeconds).toFixed(2)}x; ` +
        `flatyard/untrusted reference: ${
          (pushSeconds / refUntrusted).toFixed(2)
        }x${
          refCopying === undefined
            ? ""
            : `; flatyard/writing reference: ${
              (pushSeconds / refCopying).toFixed(2)
            }x`
        } (target: within 3x)`,
    );
    // Where the time went: the upload is everything before the commit job was queued.
    const jobs = (await (await fetch(`${base}/api/v1/jobs?limit=50`, {
      headers: h,
    })).json()) as {
      kind: string;
      createdAt: string;
      startedAt: string | null;
      finishedAt: string | null;
    }[];
    const pipelineJobs = jobs.filter((j) =>
      ["commit", "publish", "update-repo"].includes(j.kind)
    );
    const commitJob = pipelineJobs.find((j) => j.kind === "commit");
    if (commitJob) {
      const t = (s: string | null) => (s ? Date.parse(s) : NaN) / 1000;
      const first = t(commitJob.createdAt);
      say(
        `  upload (CLI start to commit queued, incl. build creation): ${
          (pushSeconds -
            (Math.max(...pipelineJobs.map((j) => t(j.finishedAt))) -
              t(commitJob.createdAt))).toFixed(2)
        } s`,
      );
      for (const j of [...pipelineJobs].reverse()) {
        say(
          `  ${j.kind.padEnd(12)} queued +${
            (t(j.createdAt) - first).toFixed(2)
          } s, ran ${(t(j.finishedAt) - t(j.startedAt)).toFixed(2)} s`,
        );
      }
    }
    // The CLI's last progress line: its rate is over the object upload alone (lib/cli/push.ts).
    const transfer = pushed.stderr.split("\n").findLast((l) =>
      l.startsWith("done ")
    );
    if (transfer) say(`  transfer (the CLI's progress): ${transfer.slice(5)}`);
    say(
      `server memory: peak ${
        (peak / 1024).toFixed(0)
      } MiB; RSS at 25/50/75/100% of the push: ${q(0.25)}/${q(0.5)}/${
        q(0.75)
      }/${q(1)} MiB`,
    );
  } finally {
    await server.stop();
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
