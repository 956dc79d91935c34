/**
 * @module `flatyard push-bundle`: uploads a flatpak bundle (`flatpak build-bundle`) into a build
 * as a resumable, chunked artifact (routes/artifacts/), then imports it into the build and
 * waits for the import job. Run it again with `--resume URL` after an interruption: the upload
 * continues from the last byte the server stored.
 */
import { parseArgs } from "node:util";
import { ArtifactApiError, uploadArtifact } from "../client/artifact_upload.ts";
import { nodeTransport } from "../client/http_transport.ts";

export const pushBundleUsage =
  `usage: flatyard push-bundle [options] BUILD_URL BUNDLE
  --token TOKEN          API token with the upload scope (default: $REPO_TOKEN)
  --name NAME            the artifact's name (default: the file's name)
  --chunk-size MIB       MiB per PUT (default: 8)
  --resume URL           continue the artifact at URL (printed when an upload starts)
  --no-import            upload only; do not import the bundle into the build`;

const mib = (n: number) => (n / 1048576).toFixed(1);

/** Runs the command; returns the exit status. */
export async function pushBundleCommand(
  args: string[],
  env: { repoToken: string | undefined },
  io: { out: (line: string) => void; err: (line: string) => void },
  sleep: (ms: number) => Promise<void> = (ms) =>
    new Promise((r) => setTimeout(r, ms)),
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      token: { type: "string" },
      name: { type: "string" },
      "chunk-size": { type: "string" },
      resume: { type: "string" },
      "no-import": { type: "boolean", default: false },
    },
  });
  const [buildUrl, path] = positionals;
  if (!buildUrl || !path || positionals.length > 2) {
    throw new Error(pushBundleUsage);
  }
  const token = values.token ?? env.repoToken;
  if (!token) {
    throw new Error("push-bundle needs a token: --token or $REPO_TOKEN");
  }
  const chunkMiB = values["chunk-size"] === undefined
    ? 8
    : Number(values["chunk-size"]);
  if (!(chunkMiB > 0 && chunkMiB <= 1024)) {
    throw new Error(`Invalid --chunk-size "${values["chunk-size"]}"`);
  }
  const started = Date.now();
  let last = 0;
  const record = await uploadArtifact({
    buildUrl,
    token,
    path,
    ...(values.name ? { name: values.name } : {}),
    ...(values.resume ? { resumeUrl: values.resume } : {}),
    chunkSize: Math.round(chunkMiB * 1048576),
    log: io.err,
    onProgress: (received, size) => {
      const now = Date.now();
      if (now - last < 500 && received < size) return;
      last = now;
      const rate = received / Math.max(0.001, (now - started) / 1000);
      io.err(
        `uploaded ${mib(received)}/${mib(size)} MiB, ${mib(rate)} MiB/s`,
      );
    },
  });
  io.out(`artifact ${record.uploadUrl}: ${record.ref} ${record.commit}`);
  if (values["no-import"]) return 0;

  using t = nodeTransport();
  const call = async (method: "GET" | "POST") => {
    const url = `${record.uploadUrl}/import`;
    const res = await t.send({
      method,
      url,
      headers: { Authorization: `Bearer ${token}` },
    });
    if (res.status < 200 || res.status > 299) {
      throw ArtifactApiError.from(url, res);
    }
    return JSON.parse(new TextDecoder().decode(res.body)) as {
      id: number;
      status: string;
      error: string | null;
    };
  };
  let job = await call("POST");
  io.err(`import job ${job.id} queued`);
  while (
    job.status !== "succeeded" && job.status !== "failed" &&
    job.status !== "cancelled"
  ) {
    await sleep(500);
    job = await call("GET");
  }
  if (job.status !== "succeeded") {
    throw new Error(
      `import job ${job.id} ${job.status}: ${job.error ?? "no reason given"}`,
    );
  }
  io.out(`imported ${record.ref} into ${buildUrl}`);
  return 0;
}
