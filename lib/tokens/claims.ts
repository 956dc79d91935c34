/**
 * @module flat-manager's token claims (specs/flat-manager-api.md §2.2) and scope strings (§2.3),
 * plus Flatyard's one extra scope, `admin`, for native administration.
 */
import { z } from "zod";

/** The scopes flat-manager defines, with their exact meaning (§2.3). */
export const flatManagerScopes = [
  "jobs",
  "build",
  "upload",
  "publish",
  "generate",
  "download",
  "republish",
  "reviewcheck",
  "tokenmanagement",
] as const;

/** Flatyard's addition: native administration (repositories, keys, users, webhooks). */
export const ADMIN_SCOPE = "admin";

export const knownScopes = [...flatManagerScopes, ADMIN_SCOPE] as const;
export type Scope = typeof knownScopes[number];

/**
 * The claims as decoded. Unknown scope strings are kept (they match nothing, as flat-manager's
 * `Unknown` variant); unknown claims are ignored; optional strings may be null (serde `Option`).
 */
export const claimsSchema = z.object({
  sub: z.string(),
  exp: z.number().int(),
  name: z.string().nullish(),
  jti: z.string().nullish(),
  scope: z.array(z.string()).default([]),
  prefixes: z.array(z.string()).default([]),
  apps: z.array(z.string()).default([]),
  repos: z.array(z.string()).default([]),
  branches: z.array(z.string()).default([]),
  token_type: z.string().nullish(),
});

/** Decoded, validated token claims. */
export type Claims = z.infer<typeof claimsSchema>;
