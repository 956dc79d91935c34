/**
 * @module The JWT secret when none is configured: generated once (32 random bytes) and kept in
 * `<dataDir>/secret` as base64, mode 0600, so tokens survive restarts on the embedded defaults.
 */
import { join } from "node:path";

/** The configured secret, or the one kept in the data dir (created on first use). */
export async function resolveSecret(
  configured: Uint8Array | undefined,
  dataDir: string,
): Promise<Uint8Array> {
  if (configured) return configured;
  const path = join(dataDir, "secret");
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
    await Deno.writeTextFile(path, btoa(String.fromCharCode(...bytes)) + "\n", {
      createNew: true,
      mode: 0o600,
    });
    return bytes;
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      return resolveSecret(undefined, dataDir);
    }
    throw err;
  }
}
