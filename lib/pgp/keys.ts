/**
 * @module OpenPGP signing keys that flatpak and ostree clients (GnuPG 2.2) accept: generation,
 * import of existing private keys, and detached binary signatures over exact bytes.
 */
import * as openpgp from "openpgp";

/** A signing key reduced to what Flatyard stores and shows. */
export interface SigningKeyMaterial {
  /** Primary key fingerprint, 40 upper-case hex digits (what `--gpg-sign=` takes). */
  fingerprint: string;
  /** Primary key ID, 16 upper-case hex digits. */
  keyId: string;
  /** Primary key algorithm, e.g. `rsa4096`, `eddsa-legacy`, `dsa2048`, `ecdsa-p256`. */
  algorithm: string;
  userIds: string[];
  createdAt: Date;
  expiresAt: Date | null;
  /** Binary private key, UNENCRYPTED: seal it (see `sealed.ts`) before it touches storage. */
  privateKey: Uint8Array;
  /** Binary public key, as `gpg --export` gives it (the `GPGKey=` of a `.flatpakrepo`). */
  publicKey: Uint8Array;
}

/** Produces detached signatures with one parsed key. */
export interface Signer {
  fingerprint: string;
  /** A binary, v4, class 0x00 detached signature over exactly `data`. */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** A private key Flatyard cannot use; the message is safe to show to the user. */
export class KeyImportError extends Error {
  override name = "KeyImportError";
}

const { publicKey: alg } = openpgp.enums;
// Everything GnuPG 2.2 can parse. A key holding any other packet (x25519 = 25, ed25519 = 27,
// ...) fails `--gpg-import` with "GPGME: No data" (specs/ostree-repos.md §3.2).
const GNUPG22_ALGORITHMS = new Set<number>([
  alg.rsaEncryptSign,
  alg.rsaEncrypt,
  alg.rsaSign,
  alg.elgamal,
  alg.dsa,
  alg.ecdh,
  alg.ecdsa,
  alg.eddsaLegacy,
]);
const WHAT_WORKS =
  "only v4 RSA/DSA/ECDSA/legacy EdDSA keys work with flatpak clients";
const CONFIG: openpgp.Config = {
  ...openpgp.config,
  // SHA-512 like `ostree gpg-sign` with GnuPG defaults; GnuPG 2.2 would take SHA-1: avoid it.
  preferredHashAlgorithm: openpgp.enums.hash.sha512,
  // OpenPGP.js 6 refuses DSA as weak by default, but GnuPG 2.2 verifies it and §3.2 accepts
  // whatever GnuPG accepts, so existing DSA repository keys stay usable.
  rejectPublicKeyAlgorithms: new Set([alg.elgamal]),
};

/**
 * Generates a new signing key: v4, no expiry, no passphrase, no subkeys (like
 * `gpg --quick-gen-key NAME ALGO sign never`). EdDSA is the legacy algorithm 22, never the RFC
 * 9580 algorithm 27 that GnuPG 2.2 rejects (specs/ostree-repos.md §3.2).
 */
export async function generateSigningKey(
  options: {
    algorithm: "rsa4096" | "eddsa-legacy";
    name: string;
    email?: string;
  },
): Promise<SigningKeyMaterial> {
  const type = options.algorithm === "rsa4096"
    ? { type: "rsa" as const, rsaBits: 4096 }
    : { type: "ecc" as const, curve: "curve25519Legacy" as const };
  const userID = options.email === undefined
    ? { name: options.name }
    : { name: options.name, email: options.email };
  const { privateKey } = await openpgp.generateKey({
    ...type,
    userIDs: [userID],
    keyExpirationTime: 0,
    subkeys: [],
    format: "object",
    config: { v6Keys: false },
  });
  return await materialOf(privateKey);
}

/**
 * Reads one armored or binary private key, decrypting it with `passphrase` when it is protected,
 * and checks that GnuPG 2.2 clients can verify its signatures.
 * @throws {KeyImportError} when the key is unreadable, public only, locked, unsupported by
 * GnuPG 2.2, expired, revoked or unable to sign.
 */
export async function importSigningKey(
  armoredOrBinary: string | Uint8Array,
  passphrase?: string,
): Promise<SigningKeyMaterial> {
  const keys = await readAnyKeys(armoredOrBinary);
  if (keys.length !== 1) {
    throw new KeyImportError(
      `The input holds ${keys.length} keys; give exactly one`,
    );
  }
  const found = keys[0]!;
  const fpr = found.getFingerprint().toUpperCase();
  if (!found.isPrivate()) {
    throw new KeyImportError(
      `Key "${fpr}" is only a public key; give the private key (gpg --export-secret-keys)`,
    );
  }
  let key: openpgp.PrivateKey = found;
  // Checked before the passphrase: no point unlocking a key the clients will refuse.
  if (key.keyPacket.version !== 4) {
    throw new KeyImportError(
      `Key "${fpr}" is a v${key.keyPacket.version} key, which GnuPG 2.2 cannot read; ${WHAT_WORKS}`,
    );
  }
  const packets = [key.keyPacket, ...key.subkeys.map((s) => s.keyPacket)];
  const foreign = packets.find((p) => !GNUPG22_ALGORITHMS.has(p.algorithm));
  if (foreign) {
    throw new KeyImportError(
      `Key "${fpr}" uses algorithm ${foreign.algorithm} (${
        algorithmLabel(foreign.algorithm)
      }), which GnuPG 2.2 cannot verify; ${WHAT_WORKS}`,
    );
  }
  if (await key.isRevoked()) {
    throw new KeyImportError(`Key "${fpr}" is revoked`);
  }
  const expiresAt = await expiryOf(key);
  if (expiresAt && expiresAt.getTime() <= Date.now()) {
    throw new KeyImportError(
      `Key "${fpr}" expired on ${expiresAt.toISOString()}`,
    );
  }
  if (!key.isDecrypted()) {
    if (passphrase === undefined || passphrase === "") {
      throw new KeyImportError(
        "The private key is protected; give its passphrase",
      );
    }
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    } catch (err) {
      const message = err instanceof Error ? err.message : "";
      if (/incorrect key passphrase/i.test(message)) {
        throw new KeyImportError("Wrong passphrase for the private key");
      }
      throw new KeyImportError(
        `Cannot decrypt private key "${fpr}": ${message}`,
      );
    }
  }
  try {
    const { keyPacket } = await key.getSigningKey(
      undefined,
      undefined,
      undefined,
      CONFIG,
    );
    // A `--export-secret-subkeys` stub has the public half only.
    if (
      !(keyPacket instanceof openpgp.SecretKeyPacket) || keyPacket.isDummy()
    ) {
      throw new Error("its signing secret is not in the export");
    }
  } catch (err) {
    const reason = err instanceof Error ? `: ${err.message}` : "";
    throw new KeyImportError(`Key "${fpr}" cannot sign data${reason}`);
  }
  return await materialOf(key);
}

/** ASCII-armors a binary public key (for display or `--gpg-import`). */
export async function armorPublicKey(publicKey: Uint8Array): Promise<string> {
  return (await openpgp.readKey({ binaryKey: publicKey })).armor();
}

/**
 * Parses an unencrypted private key once and returns a signer for it. The output is what
 * `ostree gpg-sign` writes into `ostree.gpgsigs`: a binary v4 signature of class 0x00 over the
 * exact bytes (specs/ostree-repos.md §3.1), never armored, since signatures get concatenated.
 */
export async function createSigner(privateKey: Uint8Array): Promise<Signer> {
  const key = await openpgp.readPrivateKey({ binaryKey: privateKey });
  if (!key.isDecrypted()) {
    throw new KeyImportError("The private key is protected");
  }
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    async sign(data: Uint8Array): Promise<Uint8Array> {
      const message = await openpgp.createMessage({ binary: data });
      return await openpgp.sign({
        message,
        signingKeys: key,
        detached: true,
        format: "binary",
        config: CONFIG,
      });
    },
  };
}

async function readAnyKeys(input: string | Uint8Array): Promise<openpgp.Key[]> {
  // Armor given as bytes (e.g. an uploaded .asc file) is still armor.
  const text = typeof input === "string"
    ? input
    : new TextDecoder().decode(input);
  try {
    if (/^\s*-----BEGIN PGP/.test(text)) {
      return await openpgp.readKeys({ armoredKeys: text });
    }
    if (input instanceof Uint8Array) {
      return await openpgp.readKeys({ binaryKeys: input });
    }
  } catch {
    // The parser's messages say nothing useful here, and must never echo the input.
  }
  throw new KeyImportError("The input is not an OpenPGP key");
}

function algorithmLabel(id: number): string {
  try {
    return openpgp.enums.read(alg, id);
  } catch {
    return "unknown";
  }
}

async function expiryOf(key: openpgp.Key): Promise<Date | null> {
  const when = await key.getExpirationTime();
  return when instanceof Date ? when : null; // Infinity: never expires
}

async function materialOf(
  key: openpgp.PrivateKey,
): Promise<SigningKeyMaterial> {
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    keyId: key.getKeyID().toHex().toUpperCase(),
    algorithm: algorithmName(key),
    userIds: key.getUserIDs(),
    createdAt: key.getCreationTime(),
    expiresAt: await expiryOf(key),
    privateKey: key.write(),
    publicKey: key.toPublic().write(),
  };
}

function algorithmName(key: openpgp.Key): string {
  const info = key.getAlgorithmInfo();
  switch (info.algorithm) {
    case "rsaEncryptSign":
    case "rsaSign":
    case "rsaEncrypt":
      return `rsa${info.bits}`;
    case "dsa":
      return `dsa${info.bits}`;
    case "eddsaLegacy":
      return "eddsa-legacy";
    case "ecdsa":
      // nistP256 → p256, brainpoolP256r1 → brainpoolp256r1, secp256k1 as is.
      return `ecdsa-${String(info.curve).replace(/^nist/, "").toLowerCase()}`;
    default:
      return String(info.algorithm);
  }
}
