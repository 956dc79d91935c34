/**
 * @module `flatyard push`: flat-manager-client's `push` (specs/flat-manager-api.md §5.4, §8.2):
 * create a build (or use a build URL), upload what the server lacks, register the refs, then
 * optionally commit, publish and wait, with the job logs shown and the upload's progress
 * (objects, bytes and rate) on stderr.
 */
import { parseArgs } from "node:util";
import { FlatManagerClient } from "../client/flat_manager_client.ts";
import { push, type PushProgress } from "../client/push.ts";

export const pushUsage =
  `usage: flatyard push [options] BUILD_URL LOCAL_REPO [REF...]
       flatyard push [options] --repo NAME [--app-id ID] SERVER_URL LOCAL_REPO [REF...]
  --token TOKEN          API token (default: $REPO_TOKEN)
  --repo NAME            create a build in repository NAME on SERVER_URL first
  --app-id ID            the app id of the build created with --repo
  --commit               commit the build after uploading, and wait for it
  --publish              commit and publish
  --wait                 wait for the publish job
  --wait-update          wait for the publish job and the repository update it queues
  --extra-id ID          extra collection id, repeatable
  --build-log-url URL    link to the build log
  --ignore-delta GLOB    do not upload from-scratch deltas of matching app ids, repeatable
  --end-of-life TEXT     mark the commits end-of-life
  --end-of-life-rebase ID  the app id that replaces this one
  --token-type N         token type of the commits`;

function mib(n: number): string {
  return (n / 1048576).toFixed(1);
}

/** Formats a progress line: `files 120/340 objects, 12.3/45.6 MiB, 3.2 MiB/s`. */
export function progressLine(p: PushProgress): string {
  return `${p.phase} ${p.objectsDone}/${p.objectsTotal} objects, ${
    mib(p.bytesDone)
  }/${mib(p.bytesTotal)} MiB, ${mib(p.bytesPerSecond)} MiB/s`;
}

/** Runs the command; returns the exit status. Output goes through `out` and `err`. */
export async function pushCommand(
  args: string[],
  env: { repoToken: string | undefined },
  io: { out: (line: string) => void; err: (line: string) => void },
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      token: { type: "string" },
      repo: { type: "string" },
      "app-id": { type: "string" },
      commit: { type: "boolean", default: false },
      publish: { type: "boolean", default: false },
      wait: { type: "boolean", default: false },
      "wait-update": { type: "boolean", default: false },
      "extra-id": { type: "string", multiple: true },
      "build-log-url": { type: "string" },
      "ignore-delta": { type: "string", multiple: true },
      "end-of-life": { type: "string" },
      "end-of-life-rebase": { type: "string" },
      "token-type": { type: "string" },
    },
  });
  const [target, repoPath, ...refs] = positionals;
  if (!target || !repoPath) throw new Error(pushUsage);
  const token = values.token ?? env.repoToken;
  if (!token) throw new Error("push needs a token: --token or $REPO_TOKEN");
  const tokenType = values["token-type"] === undefined
    ? undefined
    : Number(values["token-type"]);
  if (tokenType !== undefined && !Number.isInteger(tokenType)) {
    throw new Error(`Invalid --token-type "${values["token-type"]}"`);
  }

  let buildUrl = target;
  if (values.repo !== undefined) {
    using client = new FlatManagerClient({
      token,
      managerUrl: target,
      log: io.err,
    });
    const created = await client.createBuild(values.repo, {
      ...(values["app-id"] ? { appId: values["app-id"] } : {}),
      ...(values["build-log-url"]
        ? { buildLogUrl: values["build-log-url"] }
        : {}),
    });
    buildUrl = created.location;
    io.out(buildUrl);
  }
  let last = 0;
  const result = await push({
    buildUrl,
    token,
    repoPath,
    ...(refs.length > 0 ? { refs } : {}),
    commit: values.commit || values.publish,
    publish: values.publish,
    wait: values.wait || values["wait-update"],
    waitUpdate: values["wait-update"],
    ...(values["extra-id"] ? { extraIds: values["extra-id"] } : {}),
    ...(values["build-log-url"]
      ? { buildLogUrl: values["build-log-url"] }
      : {}),
    ...(values["ignore-delta"] ? { ignoreDelta: values["ignore-delta"] } : {}),
    ...(values["end-of-life"] ? { endoflife: values["end-of-life"] } : {}),
    ...(values["end-of-life-rebase"]
      ? { endoflifeRebase: values["end-of-life-rebase"] }
      : {}),
    ...(tokenType !== undefined ? { tokenType } : {}),
    onProgress: (p) => {
      // At most two lines a second, and always the last one.
      const now = Date.now();
      if (now - last < 500 && p.phase !== "done") return;
      last = now;
      io.err(progressLine(p));
    },
    log: io.out,
    // Two cores' worth of parallel uploads: the server verifies and writes each object.
    uploadConcurrency: 3,
    // flat-manager-client's poll schedule (1 s, 3 s, 5 s … 60 s) makes a CI job wait long after
    // a job ended; this CLI polls four times as often, never less than every 2 s.
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms / 4, 2000))),
  });
  io.out(JSON.stringify(result.build));
  return 0;
}
