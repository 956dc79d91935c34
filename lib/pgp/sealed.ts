/**
 * @module Encryption at rest for private keys: AES-256-GCM under a key derived from the master
 * secret, bound to a context string so a sealed blob only opens where it was sealed.
 */

/** Sealed data that cannot be opened; the message never contains any of the data. */
export class SealError extends Error {
  override name = "SealError";
}

const VERSION = 1;
const IV_BYTES = 12; // the GCM standard nonce size; random per seal
const TAG_BYTES = 16;
// HKDF so the configured secret is never an AES key itself, and a future format (or another
// use of the same secret) can derive an independent key from a different info string.
const HKDF_INFO = new TextEncoder().encode("flatyard key sealing v1");

async function deriveKey(masterKey: Uint8Array): Promise<CryptoKey> {
  if (masterKey.length !== 32) {
    throw new SealError(
      `The master key must be 32 bytes, not ${masterKey.length}`,
    );
  }
  const hkdf = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(masterKey), // a copy: WebCrypto wants a plain ArrayBuffer
    "HKDF",
    false,
    ["deriveKey"],
  );
  return await crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(), info: HKDF_INFO },
    hkdf,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/**
 * Encrypts `plaintext` under `masterKey` (32 bytes). `context` (e.g. `signing-key:<repo>:<id>`)
 * is authenticated but not stored: `unseal` must be given the same one.
 * @returns version byte (1) ‖ 12-byte IV ‖ ciphertext and 16-byte tag.
 */
export async function seal(
  masterKey: Uint8Array,
  plaintext: Uint8Array,
  context: string,
): Promise<Uint8Array> {
  const key = await deriveKey(masterKey);
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv,
        additionalData: new TextEncoder().encode(context),
      },
      key,
      new Uint8Array(plaintext),
    ),
  );
  const out = new Uint8Array(1 + IV_BYTES + ciphertext.length);
  out[0] = VERSION;
  out.set(iv, 1);
  out.set(ciphertext, 1 + IV_BYTES);
  return out;
}

/**
 * Decrypts what `seal` produced with the same master key and context.
 * @throws {SealError} on an unknown version, truncated data, or when authentication fails
 * (wrong master key, wrong context or tampered bytes: GCM cannot tell these apart).
 */
export async function unseal(
  masterKey: Uint8Array,
  sealed: Uint8Array,
  context: string,
): Promise<Uint8Array> {
  if (sealed.length < 1 + IV_BYTES + TAG_BYTES) {
    throw new SealError(`Sealed data is truncated (${sealed.length} bytes)`);
  }
  if (sealed[0] !== VERSION) {
    throw new SealError(`Unknown sealed data version ${sealed[0]}`);
  }
  const key = await deriveKey(masterKey);
  const bytes = new Uint8Array(sealed);
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: bytes.subarray(1, 1 + IV_BYTES),
          additionalData: new TextEncoder().encode(context),
        },
        key,
        bytes.subarray(1 + IV_BYTES),
      ),
    );
  } catch {
    throw new SealError(
      `Cannot unseal data for "${context}": wrong master key, wrong context or tampered data`,
    );
  }
}
