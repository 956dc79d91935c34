/**
 * @module bench/serve: one repository served two ways in one run, Flatyard (`main.ts serve`)
 * and nginx (a generated config, the same directory as root and the same Cache-Control classes),
 * both loaded with `wrk` on loopback: many distinct small objects (1–4 KiB, the bulk of a pull
 * without deltas) and one large delta part. Prints requests/s and p99 latency for each, the
 * ratio Flatyard/nginx (targets: 0.7x small, 0.9x large), and Flatyard's RSS before and after.
 * Needs `nginx` and `wrk` (`./scripts/setup.sh bench`) and the `ostree` CLI.
 *
 *   deno run -A bench/serve.ts [--objects 2000] [--large-mib 8] [--seconds 6] [--rounds 5]
 *                              [--connections 16] [--only small|large]
 *
 * Each kind is measured in `--rounds` rounds, both servers back to back in each (the order
 * alternating), and the ratio printed is the median of the rounds' ratios: this VM's speed, and
 * nginx's with it, drifts by 20% from one run to the next.
 * `--only` measures one kind (with BENCH_PROFILE=DIR, a CPU profile of just that load).
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  type BenchServer,
  freePort,
  sh,
  startFlatyard,
} from "./flatyard_server.ts";
const { values } = parseArgs({
  args: Deno.args,
  options: {
    objects: { type: "string", default: "2000" },
    "large-mib": { type: "string", default: "8" },
    seconds: { type: "string", default: "6" },
    rounds: { type: "string", default: "5" },
    connections: { type: "string", default: "16" },
    only: { type: "string" },
  },
});
const enc = new TextEncoder();
const say = (s: string) => Deno.stdout.writeSync(enc.encode(s + "\n"));
const REPO = "bench";

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(url).then(async (r) => {
      await r.body?.cancel();
      return r.status < 500;
    }).catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered`);
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) await walk(p, out);
    else if (e.isFile) out.push(p);
  }
  return out;
}

/** `wrk` against `base`, cycling through `paths`; requests/s and p99 in ms. */
async function load(
  base: string,
  paths: readonly string[],
  work: string,
  seconds: number,
): Promise<{ rps: number; p99: number; errors: string }> {
  const list = join(work, `paths-${crypto.randomUUID()}.txt`);
  await Deno.writeTextFile(list, paths.join("\n") + "\n");
  const script = join(work, "paths.lua");
  await Deno.writeTextFile(
    script,
    `local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
`,
  );
  const out = await sh("wrk", [
    "-t1",
    `-c${values.connections}`,
    `-d${seconds}s`,
    "--latency",
    "-s",
    script,
    base,
  ], { PATH: Deno.env.get("PATH") ?? "", WRK_PATHS: list });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const m = /\n\s+99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const scale = { us: 0.001, ms: 1, s: 1000 } as const;
  const p99 = m ? Number(m[1]) * scale[m[2] as keyof typeof scale] : NaN;
  const errors = [
    /Non-2xx or 3xx responses: \d+/.exec(out)?.[0],
    /Socket errors: .*/.exec(out)?.[0],
  ].filter(Boolean).join("; ");
  if (!Number.isFinite(rps)) {
    throw new Error(`Cannot read wrk's output:\n${out}`);
  }
  return { rps, p99, errors };
}

function nginxConfig(
  work: string,
  port: number,
  docroot: string,
): string {
  // The same classes as lib/http/repo_file.ts cacheControl; first matching regex wins.
  const cls = (re: string, value: string) =>
    `    location ~ "${re}" { add_header Cache-Control "${value}" always; }`;
  return `${Deno.uid() === 0 ? "user root;\n" : ""}worker_processes 1;
daemon off;
pid ${join(work, "nginx.pid")};
error_log ${join(work, "nginx-error.log")} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  gzip off;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  types { }
  client_body_temp_path ${join(work, "nginx-body")};
  proxy_temp_path ${join(work, "nginx-proxy")};
  fastcgi_temp_path ${join(work, "nginx-fastcgi")};
  uwsgi_temp_path ${join(work, "nginx-uwsgi")};
  scgi_temp_path ${join(work, "nginx-scgi")};
  server {
    listen 127.0.0.1:${port};
    root ${docroot};
${
    cls(
      "^/repo/[^/]+/objects/.*\\.(commit|dirtree|dirmeta|filez)$",
      "public, max-age=31536000, immutable",
    )
  }
${cls("\\.commitmeta$", "public, max-age=86400")}
${cls("^/repo/[^/]+/deltas/", "public, max-age=31536000, immutable")}
${
    cls(
      "^/repo/[^/]+/summaries/[0-9a-f]{64}\\.gz$",
      "public, max-age=31536000, immutable",
    )
  }
    location / { add_header Cache-Control "public, max-age=300" always; }
  }
}
`;
}

const rssKib = async (pid: number) =>
  Number(
    /VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${pid}/status`))?.[1],
  );

const work = await Deno.makeTempDir({ prefix: "flatyard-bench-serve-" });
const seconds = Number(values.seconds);
let flatyard: BenchServer | undefined;
let nginx: Deno.ChildProcess | undefined;
try {
  flatyard = await startFlatyard(work);
  const base = flatyard.base;
  const admin = await flatyard.token(
    "--scope",
    "admin",
    "--sub",
    "",
    "--duration",
    "3600",
  );
  const created = await fetch(`${base}/api/v1/repos`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${admin}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ name: REPO }),
  });
  if (created.status !== 201) {
    throw new Error(`Cannot create the repository: ${await created.text()}`);
  }
  const repo = join(work, "data", "repos", REPO);

  // Fill it with the ostree CLI: many small files (1–4 KiB .filez objects) in one commit,
  // and one large incompressible file in another, made into a static delta whose single part
  // holds it (no fallback objects, one chunk).
  const count = Number(values.objects);
  say(
    `filling the repository: ${count} small objects, a ${
      values["large-mib"]
    } MiB delta`,
  );
  const tree = join(work, "tree");
  await Deno.mkdir(tree);
  for (let i = 0; i < count; i++) {
    const buf = new Uint8Array(1024 + Math.floor(Math.random() * 3072));
    crypto.getRandomValues(buf);
    await Deno.writeFile(join(tree, `f${i}`), buf);
  }
  await sh("ostree", [
    `--repo=${repo}`,
    "commit",
    "-b",
    "bench/small",
    `--tree=dir=${tree}`,
  ]);
  const big = join(work, "big");
  await Deno.mkdir(big);
  const large = new Uint8Array(Number(values["large-mib"]) * 1024 * 1024);
  for (let o = 0; o < large.length; o += 65536) {
    crypto.getRandomValues(large.subarray(o, o + 65536));
  }
  await Deno.writeFile(join(big, "blob"), large);
  const bigCommit = (await sh("ostree", [
    `--repo=${repo}`,
    "commit",
    "-b",
    "bench/large",
    `--tree=dir=${big}`,
  ])).trim();
  await sh("ostree", [
    `--repo=${repo}`,
    "static-delta",
    "generate",
    "--empty",
    "--min-fallback-size=0",
    "--max-chunk-size=1024",
    `--to=${bigCommit}`,
  ]);
  await sh("ostree", [`--repo=${repo}`, "summary", "-u"]);
  const files = await walk(repo);
  const rel = (p: string) => p.slice(repo.length + 1);
  const small: string[] = [];
  for (const f of files) {
    if (!/^objects\/.*\.filez$/.test(rel(f))) continue;
    const size = (await Deno.stat(f)).size;
    if (size >= 1024 && size <= 4096) small.push(`/repo/${REPO}/${rel(f)}`);
  }
  let part = "";
  let partSize = 0;
  for (const f of files) {
    if (!/^deltas\/.+\/\d+$/.test(rel(f))) continue;
    const size = (await Deno.stat(f)).size;
    if (size > partSize) [part, partSize] = [`/repo/${REPO}/${rel(f)}`, size];
  }
  if (small.length < 100 || partSize < 1024 * 1024) {
    throw new Error(
      `Unexpected repository: ${small.length} small objects, a ${partSize} byte part`,
    );
  }

  // nginx serves the same directory under the same URL paths.
  const docroot = join(work, "nginx-root");
  await Deno.mkdir(join(docroot, "repo"), { recursive: true });
  await Deno.symlink(repo, join(docroot, "repo", REPO));
  const nginxPort = freePort();
  const conf = join(work, "nginx.conf");
  await Deno.writeTextFile(conf, nginxConfig(work, nginxPort, docroot));
  nginx = new Deno.Command("nginx", {
    args: ["-p", work, "-c", conf],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const nginxBase = `http://127.0.0.1:${nginxPort}`;
  await waitFor(`${nginxBase}/repo/${REPO}/config`);

  // Both answer the same bytes and caching class, or the comparison means nothing.
  for (const path of [small[0]!, part, `/repo/${REPO}/summary`]) {
    const [a, b] = await Promise.all(
      [base, nginxBase].map((u) => fetch(u + path)),
    );
    const [ba, bb] = await Promise.all([a!.arrayBuffer(), b!.arrayBuffer()]);
    if (
      a!.status !== 200 || b!.status !== 200 ||
      a!.headers.get("cache-control") !== b!.headers.get("cache-control") ||
      ba.byteLength !== bb.byteLength
    ) {
      throw new Error(`Flatyard and nginx differ on ${path}`);
    }
  }

  const pid = flatyard.pid;
  say(
    `small: ${small.length} distinct .filez objects of 1–4 KiB; large: ${
      (partSize / 1048576).toFixed(1)
    } MiB delta part; wrk -t1 -c${values.connections} -d${seconds}s on ${Deno.hostname()} (${navigator.hardwareConcurrency} CPUs), nginx worker_processes 1`,
  );
  const kinds = ([["small", small], ["large", [part]]] as const).filter((
    [kind],
  ) => !values.only || values.only === kind);
  if (kinds.length === 0) throw new Error(`--only: no kind "${values.only}"`);
  // Warm both (JIT, page cache), then measure.
  for (const [, paths] of kinds) {
    await load(base, paths, work, 2);
    await load(nginxBase, paths, work, 2);
  }
  const rssBefore = await rssKib(pid);
  // Rounds alternate which server goes first, and each round's ratio compares two runs made
  // back to back: this VM's speed drifts by 20% between runs, and nginx's with it.
  const rounds = Math.max(1, Number(values.rounds));
  const results: {
    kind: string;
    round: number;
    fy: Awaited<ReturnType<typeof load>>;
    ng: Awaited<ReturnType<typeof load>>;
  }[] = [];
  for (const [kind, paths] of kinds) {
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [base, nginxBase] : [nginxBase, base];
      const [a, b] = [
        await load(order[0]!, paths, work, seconds),
        await load(order[1]!, paths, work, seconds),
      ];
      const [fy, ng] = order[0] === base ? [a, b] : [b, a];
      results.push({ kind, round, fy, ng });
    }
  }
  const rssAfter = await rssKib(pid);

  say("");
  say("kind   round server     requests/s    p99 ms   errors");
  for (const { kind, round, fy, ng } of results) {
    for (const [who, r] of [["flatyard", fy], ["nginx", ng]] as const) {
      say(
        `${kind.padEnd(6)} ${String(round).padStart(5)} ${who.padEnd(9)} ${
          r.rps.toFixed(0).padStart(11)
        } ${r.p99.toFixed(2).padStart(9)}   ${r.errors || "-"}`,
      );
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  for (const [kind, target] of [["small", 0.7], ["large", 0.9]] as const) {
    const runs = results.filter((r) => r.kind === kind);
    if (runs.length === 0) continue;
    const ratios = runs.map((r) => r.fy.rps / r.ng.rps);
    const ratio = median(ratios);
    say(
      `${kind}: Flatyard/nginx = ${ratio.toFixed(2)}x requests/s, median of ${
        ratios.map((x) => x.toFixed(2)).join(", ")
      } (target ${target}x: ${ratio >= target ? "met" : "NOT met"}); p99 ${
        median(runs.map((r) => r.fy.p99)).toFixed(2)
      } ms vs ${median(runs.map((r) => r.ng.p99)).toFixed(2)} ms`,
    );
  }
  say(
    `Flatyard RSS: ${(rssBefore / 1024).toFixed(0)} MiB before load, ${
      (rssAfter / 1024).toFixed(0)
    } MiB after`,
  );
} finally {
  if (nginx) {
    try {
      nginx.kill("SIGTERM");
    } catch { /* already gone */ }
    await nginx.status;
  }
  await flatyard?.stop();
  await Deno.remove(work, { recursive: true });
}
