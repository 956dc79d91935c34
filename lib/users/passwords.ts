/**
 * @module Password hashing with `node:crypto` scrypt. The hash string carries its parameters
 * (`scrypt$N$r$p$salt$hash`), so the cost can rise later without invalidating stored hashes.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/** OWASP's recommendation for scrypt: N=2^17, r=8, p=1 (about 128 MiB and 0.3 s here). */
export const DEFAULT_SCRYPT_N = 2 ** 17;

function derive(
  password: string,
  salt: Buffer,
  n: number,
  r: number,
  p: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, 32, {
      N: n,
      r,
      p,
      maxmem: 256 * n * r + 1024 * 1024,
    }, (err, key) => err ? reject(err) : resolve(key))
  );
}

/** Hashes a password. `n` is scrypt's cost (a power of two); tests pass a small one. */
export async function hashPassword(
  password: string,
  n = DEFAULT_SCRYPT_N,
): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, n, 8, 1);
  return `scrypt$${n}$8$1$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** Checks a password against a stored hash, in constant time. A malformed hash never matches. */
export async function verifyPassword(
  password: string,
  stored: string,
): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((x) => Number.isInteger(x) && x > 0)) return false;
  const expected = Buffer.from(parts[5]!, "base64");
  const key = await derive(password, Buffer.from(parts[4]!, "base64"), n, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** A dummy hash to verify against when the user does not exist, so timing does not tell. */
export function dummyHash(n: number): Promise<string> {
  return hashPassword(crypto.randomUUID(), n);
}
