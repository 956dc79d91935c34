/**
 * @module bench/upload: time from `flatyard push` to "published" for an app of about 5,000
 * files and 200 MB, against the raw CLI doing the same work on the same content, side by side:
 * `ostree pull-local` into a fresh repository plus `flatpak build-update-repo`, plain, with
 * `--untrusted`, and from a copy on another file system (the only one that writes every object
 * as a new file, as an upload must: the other two hardlink). Prints the ratios and the server's
 * memory (peak, and RSS while the upload grows). The repository makes no from-scratch deltas,
 * so both sides do the same work (a first publish has no parent to delta from); generating a
 * from-scratch delta of 200 MB of incompressible data alone takes minutes.
 *
 *   deno run -A bench/upload.ts [--files 5000] [--mib 200] [--rounds 3]
 *
 * Each round runs every reference and one push (into a repository of its own), Flatyard first in
 * every other round, and the ratios printed are the medians of the rounds' ratios: on this VM
 * the same command's time moves by 2x from one minute to the next. Nothing is deleted until the
 * end: ext4 without a journal (this VM's) makes each new file cost up to 0.8 ms of kernel time
 * for about 30 s after many files were deleted (`recently_deleted()` in its inode allocator),
 * and a round must not pay for the cleanup of the one before.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  type BenchServer,
  root,
  sh,
  shOutput,
  startFlatyard,
} from "./flatyard_server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    files: { type: "string", default: "5000" },
    mib: { type: "string", default: "200" },
    rounds: { type: "string", default: "3" },
  },
});
const files = Number(values.files);
const totalBytes = Number(values.mib) * 1024 * 1024;
const rounds = Number(values.rounds);
const enc = new TextEncoder();
const say = (s: string) => Deno.stdout.writeSync(enc.encode(s + "\n"));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, (performance.now() - t0) / 1000];
}

/** Writes the app (incompressible files, the worst case for the upload) and exports it. */
async function makeApp(work: string): Promise<{ src: string; bytes: number }> {
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
  return { src, bytes: files * per };
}

/** The raw CLI: a fresh repository, `ostree pull-local …`, `flatpak build-update-repo`. */
async function reference(
  dir: string,
  extra: string[],
  from: string,
): Promise<number> {
  const [, seconds] = await timed(async () => {
    await sh("ostree", ["init", "--mode=archive-z2", `--repo=${dir}`]);
    await sh("ostree", ["pull-local", ...extra, `--repo=${dir}`, from]);
    await sh("flatpak", ["build-update-repo", dir]);
  });
  return seconds;
}

/**
 * A copy of `src` on another file system (/dev/shm) for the writing reference, or undefined
 * when there is none. Plain pull-local hardlinks objects without reading them; --untrusted
 * checksums every object, as Flatyard's upload does, and then hardlinks it too: neither creates
 * a file. An upload has to create one per object, so the third reference pulls from this copy,
 * where ostree writes every object as a new file, as Flatyard does. Made once for all rounds.
 */
async function farCopy(work: string, src: string): Promise<string | undefined> {
  const shm = "/dev/shm";
  const far = await Deno.stat(shm).catch(() => null);
  if (!far || far.dev === (await Deno.stat(work)).dev) return undefined;
  const copy = await Deno.makeTempDir({ dir: shm, prefix: "flatyard-bench-" });
  await sh("cp", ["-a", `${src}/.`, copy]);
  return copy;
}

/** The references of one round, in seconds. */
async function references(
  work: string,
  src: string,
  far: string | undefined,
  round: number,
): Promise<{ plain: number; untrusted: number; writing?: number }> {
  const plain = await reference(join(work, `ref-${round}`), [], src);
  const untrusted = await reference(
    join(work, `ref-untrusted-${round}`),
    ["--untrusted"],
    src,
  );
  if (far === undefined) return { plain, untrusted };
  const writing = await reference(
    join(work, `ref-writing-${round}`),
    ["--untrusted"],
    far,
  );
  return { plain, untrusted, writing };
}

interface Push {
  seconds: number;
  /** CLI start to the commit job queued (build creation, missing_objects, the upload). */
  upload: number;
  jobs: { kind: string; queued: number; ran: number }[];
  transfer: string | undefined;
  rss: number[];
}

/** `flatyard push --publish --wait-update` of `src` into a new repository `name`. */
async function push(
  server: BenchServer,
  admin: string,
  name: string,
  src: string,
): Promise<Push> {
  const h = {
    Authorization: `Bearer ${admin}`,
    "Content-Type": "application/json",
  };
  const post = (path: string, body: unknown) =>
    fetch(`${server.base}${path}`, {
      method: "POST",
      headers: h,
      body: JSON.stringify(body),
    }).then(async (r) => {
      if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
      await r.body?.cancel();
    });
  await post("/api/v1/repos", {
    name,
    deltaPolicy: { rules: [{ match: "*", depth: 1 }], fromScratch: false },
  });
  await post(`/api/v1/repos/${name}/keys`, {
    generate: { algorithm: "eddsa-legacy" },
  });
  const token = await server.token("--repo", name, "--duration", "3600");
  const rss: number[] = [];
  const status = () => Deno.readTextFile(`/proc/${server.pid}/status`);
  const sampler = setInterval(
    async () => rss.push(kib(await status(), "VmRSS")),
    250,
  );
  const profile = Deno.env.get("BENCH_PROFILE");
  const [pushed, seconds] = await timed(() =>
    shOutput(Deno.execPath(), [
      "run",
      "-A",
      ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}/client`] : []),
      join(root, "main.ts"),
      "push",
      "--repo",
      name,
      "--app-id",
      "org.example.Big",
      "--publish",
      "--wait-update",
      server.base,
      src,
    ], { ...server.env, REPO_TOKEN: token })
  );
  clearInterval(sampler);
  // Where the time went: the upload is everything before the commit job was queued.
  const all = (await (await fetch(`${server.base}/api/v1/jobs?limit=200`, {
    headers: h,
  })).json()) as {
    kind: string;
    createdAt: string;
    startedAt: string | null;
    finishedAt: string | null;
  }[];
  const t = (s: string | null) => (s ? Date.parse(s) : NaN) / 1000;
  // This push's jobs are the newest of their kinds.
  const jobs = ["commit", "publish", "update-repo"].flatMap((kind) => {
    const j = all.filter((j) =>
      j.kind === kind
    ).sort((a, b) => t(b.createdAt) - t(a.createdAt))[0];
    return j ? [j] : [];
  });
  const first = t(jobs[0]?.createdAt ?? null);
  const last = Math.max(...jobs.map((j) => t(j.finishedAt)));
  return {
    seconds,
    upload: seconds - (last - first),
    jobs: jobs.map((j) => ({
      kind: j.kind,
      queued: t(j.createdAt) - first,
      ran: t(j.finishedAt) - t(j.startedAt),
    })),
    // The CLI's last progress line: its rate is over the object upload alone (lib/cli/push.ts).
    transfer: pushed.stderr.split("\n").findLast((l) => l.startsWith("done "))
      ?.slice(5),
    rss,
  };
}

const kib = (s: string, key: string) =>
  Number(new RegExp(`${key}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);

const work = await Deno.makeTempDir({ prefix: "flatyard-bench-upload-" });
try {
  say(`making an app of ${files} files, ${values.mib} MiB`);
  const { src, bytes } = await makeApp(work);
  const far = await farCopy(work, src);
  const server = await startFlatyard(work);
  try {
    const admin = await server.token(
      "--scope",
      "admin",
      "--sub",
      "",
      "--duration",
      "3600",
    );
    const results: {
      ref: Awaited<ReturnType<typeof references>>;
      fy: Push;
    }[] = [];
    for (let round = 1; round <= rounds; round++) {
      let ref, fy;
      if (round % 2 === 0) {
        fy = await push(server, admin, `bench-${round}`, src);
        ref = await references(work, src, far, round);
      } else {
        ref = await references(work, src, far, round);
        fy = await push(server, admin, `bench-${round}`, src);
      }
      results.push({ ref, fy });
      const s = (x: number | undefined) => x === undefined ? "-" : x.toFixed(2);
      say(
        `round ${round}: pull-local ${s(ref.plain)} s, --untrusted ${
          s(ref.untrusted)
        } s, writing ${s(ref.writing)} s; flatyard ${s(fy.seconds)} s (upload ${
          s(fy.upload)
        } s, ${
          fy.jobs.map((j) => `${j.kind} ${s(j.ran)} s`).join(", ")
        }; transfer ${fy.transfer ?? "?"})`,
      );
    }
    const peak = kib(
      await Deno.readTextFile(`/proc/${server.pid}/status`),
      "VmHWM",
    );

    say("");
    say(
      `content: ${files} files, ${
        (bytes / 1048576).toFixed(0)
      } MiB (incompressible), ${rounds} rounds; medians:`,
    );
    const row = (what: string, xs: number[]) =>
      say(`${what.padEnd(70)} ${median(xs).toFixed(2)} s`);
    const writing = results.every((r) => r.ref.writing !== undefined);
    row(
      "reference  ostree pull-local + flatpak build-update-repo",
      results.map((r) => r.ref.plain),
    );
    row(
      "reference  ostree pull-local --untrusted + flatpak build-update-repo",
      results.map((r) => r.ref.untrusted),
    );
    if (writing) {
      row(
        "reference  the same, from another file system (writes every object)",
        results.map((r) => r.ref.writing!),
      );
    }
    row(
      "flatyard   push --publish --wait-update (to published)",
      results.map((r) => r.fy.seconds),
    );
    row(
      "  of which the upload (CLI start to commit queued)",
      results.map((r) => r.fy.upload),
    );
    for (const kind of ["commit", "publish", "update-repo"]) {
      row(
        `  of which the ${kind} job`,
        results.map((r) => r.fy.jobs.find((j) => j.kind === kind)?.ran ?? NaN),
      );
    }
    const ratio = (f: (r: (typeof results)[number]) => number) =>
      median(results.map(f)).toFixed(2);
    say(
      `ratio flatyard/reference: ${
        ratio((r) => r.fy.seconds / r.ref.plain)
      }x; ` +
        `flatyard/untrusted reference: ${
          ratio((r) => r.fy.seconds / r.ref.untrusted)
        }x${
          writing
            ? `; flatyard/writing reference: ${
              ratio((r) => r.fy.seconds / r.ref.writing!)
            }x`
            : ""
        } (target: within 3x; medians of the rounds' ratios)`,
    );
    const last = results.at(-1)!.fy.rss;
    const q = (f: number) =>
      (last[Math.min(last.length - 1, Math.floor(f * last.length))]! / 1024)
        .toFixed(0);
    say(
      `server memory: peak ${
        (peak / 1024).toFixed(0)
      } MiB; RSS at 25/50/75/100% of the last push: ${q(0.25)}/${q(0.5)}/${
        q(0.75)
      }/${q(1)} MiB`,
    );
  } finally {
    await server.stop();
    // tmpfs: no inode allocator to slow down
    if (far) await Deno.remove(far, { recursive: true });
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
