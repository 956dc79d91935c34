/**
 * @module Secrets when none is configured (the JWT secret, the key-sealing master key): generated
 * once (32 random bytes) and kept in the data dir as base64, mode 0600, so they survive restarts
 * on the embedded defaults.
 */
import { toBase64 } from "./base64.ts";
import { join } from "node:path";

/** The configured secret, or the one kept in the data dir as `file` (created on first use). */
export async function resolveSecret(
  configured: Uint8Array | undefined,
  dataDir: string,
  file = "secret",
): Promise<Uint8Array> {
  if (configured) return configured;
  const path = join(dataDir, file);
  try {
    return Uint8Array.from(
      atob((await Deno.readTextFile(path)).trim()),
      (c) => c.charCodeAt(0),
    );
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  // createNew: if another process won the race, read its secret instead of overwriting it.
  try {
    await Deno.writeTextFile(path, toBase64(bytes) + "\n", {
      createNew: true,
      mode: 0o600,
    });
    return bytes;
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      return resolveSecret(undefined, dataDir, file);
    }
    throw err;
  }
}
