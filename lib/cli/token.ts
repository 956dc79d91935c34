/**
 * @module `flatyard token`: mints a token offline from the configured secret, with the options
 * and defaults of flat-manager's `gentoken` (specs/flat-manager-api.md §2.2), for automation.
 */
import { fromBase64 } from "../base64.ts";
import { parseArgs } from "node:util";
import { knownScopes } from "../tokens/claims.ts";
import type { Claims } from "../tokens/claims.ts";
import { signToken } from "../tokens/jwt.ts";

export const tokenUsage = `usage: flatyard token [options]
  --name NAME          human name (default "default")
  --jti ID             unique id, for revocation and tracking (default: none)
  --sub SUB            subject: build, build/<id>, or "" (default "build")
  --scope SCOPE        repeatable (default: build upload download publish jobs)
  --prefix PREFIX      app-id prefix, repeatable (default: "" = all)
  --repo REPO          repository, repeatable (default: "" = all)
  --branch BRANCH      repeatable, carried along only (default: stable)
  --duration SECONDS   lifetime (default: one year)
  --token-type TYPE    (default "app")
  --secret SECRET      sign with this secret instead of the configured one
  --secret-file FILE   read the secret from FILE ("-" = stdin)
  --base64             the given secret is base64 (as flat-manager's config writes it)
  -v, --verbose        also print the claims to stderr`;

/** What {@link mintOffline} needs from outside. */
export interface TokenCommandEnv {
  configuredSecret: () => Promise<Uint8Array>;
  readStdin: () => Promise<string>;
  now: number;
}

/** Parses gentoken's options and returns the signed token and its claims; throws on bad usage. */
export async function mintOffline(
  args: string[],
  env: TokenCommandEnv,
): Promise<{ token: string; claims: Claims }> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      name: { type: "string", default: "default" },
      jti: { type: "string" },
      sub: { type: "string", default: "build" },
      scope: { type: "string", multiple: true },
      prefix: { type: "string", multiple: true },
      repo: { type: "string", multiple: true },
      branch: { type: "string", multiple: true },
      duration: { type: "string" },
      "token-type": { type: "string", default: "app" },
      secret: { type: "string" },
      "secret-file": { type: "string" },
      base64: { type: "boolean", default: false },
      verbose: { type: "boolean", short: "v", default: false },
    },
  });
  const scope = values.scope ??
    ["build", "upload", "download", "publish", "jobs"];
  for (const s of scope) {
    if (!(knownScopes as readonly string[]).includes(s)) {
      throw new Error(
        `Unknown scope "${s}" (known: ${knownScopes.join(", ")})`,
      );
    }
  }
  const duration = values.duration === undefined
    ? 365 * 86400
    : Number(values.duration);
  if (!Number.isInteger(duration) || duration <= 0) {
    throw new Error(`Invalid --duration "${values.duration}"`);
  }
  if (values.secret !== undefined && values["secret-file"] !== undefined) {
    throw new Error("Give --secret or --secret-file, not both");
  }
  let raw: string | undefined = values.secret;
  if (values["secret-file"] !== undefined) {
    raw = values["secret-file"] === "-"
      ? await env.readStdin()
      : await Deno.readTextFile(values["secret-file"]);
    raw = raw.replace(/\r?\n$/, "");
  }
  let secret: Uint8Array;
  if (raw === undefined) secret = await env.configuredSecret();
  else if (values.base64) {
    try {
      secret = fromBase64(raw.trim());
    } catch {
      throw new Error("The secret is not valid base64");
    }
  } else secret = new TextEncoder().encode(raw);
  const claims: Claims = {
    sub: values.sub,
    exp: env.now + duration,
    name: values.name,
    jti: values.jti ?? null,
    scope,
    prefixes: values.prefix ?? [""],
    apps: [],
    repos: values.repo ?? [""],
    branches: values.branch ?? ["stable"],
    token_type: values["token-type"],
  };
  return { token: await signToken(claims, secret), claims };
}
