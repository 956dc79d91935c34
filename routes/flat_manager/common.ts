/**
 * @module Shared pieces of the flat-manager routes: the caller's claims, the per-build
 * authorization sequence (specs/flat-manager-api.md §2.4 "order of checks"), absolute Location
 * URLs (§0.5) and body parsing with flat-manager's error shapes.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import type { Db } from "../../lib/db/db.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { fm } from "../../lib/http/errors.ts";
import { fmJsonBody } from "../../lib/http/fm_body.ts";
import { type Build, buildStore } from "../../lib/builds/build_store.ts";
import type { Claims } from "../../lib/tokens/claims.ts";
import {
  checkBuildAccess,
  checkSubAndScope,
} from "../../lib/tokens/matching.ts";

/** The caller's token claims (flatManagerAuth only sets token principals). */
export function claimsOf(c: Context<AppEnv>): Claims {
  const p = c.get("principal");
  if (p.kind !== "token") throw fm.invalidToken("Invalid token claims");
  return p.claims;
}

/** Sub and scope, with no database access yet (§2.4 step 1). */
export function requireSubScope(
  claims: Claims,
  sub: string,
  scopes: string[],
): void {
  const denial = checkSubAndScope(claims, sub, scopes);
  if (denial) throw fm.insufficient(denial);
}

/** A build id path segment; anything but digits is actix's 404 (§0.4). */
export function buildIdParam(raw: string | undefined): number {
  if (!raw || !/^\d{1,9}$/.test(raw)) throw fm.notFound();
  return Number(raw);
}

/** §2.4: sub + scope, then load the build (404), then repo and app prefix. */
export async function authorizedBuild(
  c: Context<AppEnv>,
  db: Db,
  scopes: string[],
): Promise<{ build: Build; claims: Claims }> {
  const id = buildIdParam(c.req.param("id"));
  const claims = claimsOf(c);
  requireSubScope(claims, `build/${id}`, scopes);
  const build = await buildStore.get(db, id);
  if (!build) throw fm.notFound();
  const denial = checkBuildAccess(claims, {
    repo: build.repo,
    appId: build.appId,
  });
  if (denial) throw fm.insufficient(denial);
  return { build, claims };
}

/**
 * The absolute URL of `path` as the client reached the server (§0.5: clients derive the API root
 * from it): the Host header, or behind a trusted proxy its X-Forwarded-Proto/Host.
 */
export function absoluteUrl(
  c: Context,
  path: string,
  opts: { trustProxy: boolean; baseUrl: string },
): string {
  const fwdHost = opts.trustProxy
    ? c.req.header("x-forwarded-host")?.split(",")[0]?.trim()
    : undefined;
  const fwdProto = opts.trustProxy
    ? c.req.header("x-forwarded-proto")?.split(",")[0]?.trim()
    : undefined;
  const host = fwdHost ?? c.req.header("host");
  if (!host) return `${opts.baseUrl}${path}`;
  const proto = fwdProto ?? new URL(c.req.url).protocol.replace(":", "");
  return `${proto}://${host}${path}`;
}

/** A JSON body checked against `schema`; actix answers a bad one with a plain-text 400 (§0.4). */
export async function fmBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  options: { limit?: number; emptyIsObject?: boolean } = {},
): Promise<z.infer<S>> {
  const raw = await fmJsonBody(c, options);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new HTTPException(400, {
      message: `Json deserialize error: ${
        i.path.join(".") || "body"
      }: ${i.message}`,
    });
  }
  return parsed.data;
}
