/** JWT signing and verification: flat-manager's secret format, expiry, forgery, header parsing. */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { bearerFromHeader, signToken, TokenError, verifyToken } from "./jwt.ts";
import type { Claims } from "./claims.ts";

const secret = new TextEncoder().encode("secret"); // base64 "c2VjcmV0" in flat-manager's config
const now = 1_700_000_000;
const claims: Claims = {
  sub: "build",
  exp: now + 60,
  name: "default",
  jti: null,
  scope: ["build"],
  prefixes: [""],
  apps: [],
  repos: [""],
  branches: ["stable"],
  token_type: "app",
};

Deno.test("a signed token verifies and round-trips its claims, null jti included", async () => {
  const token = await signToken(claims, secret);
  const [header] = token.split(".");
  assert.deepEqual(JSON.parse(atob(header!)), { alg: "HS256", typ: "JWT" });
  assert.deepEqual(await verifyToken(token, secret, now), claims);
});

Deno.test("verifyToken rejects what flat-manager rejects", async (t) => {
  const good = await signToken(claims, secret);
  const raw = (payload: Record<string, unknown>, alg = "HS256", key = secret) =>
    new SignJWT(payload).setProtectedHeader({ alg }).sign(key);
  const cases: [string, () => Promise<string> | string, number, string][] = [
    [
      "expired one second ago",
      () => signToken({ ...claims, exp: now - 1 }, secret),
      now,
      "Token is expired",
    ],
    [
      "signed with another secret",
      () => signToken(claims, new TextEncoder().encode("other")),
      now,
      "Invalid token claims",
    ],
    [
      "a forged payload with the old signature",
      () => {
        const [h, , s] = good.split(".");
        const forged = btoa(
          JSON.stringify({ ...claims, scope: ["tokenmanagement"] }),
        )
          .replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
        return `${h}.${forged}.${s}`;
      },
      now,
      "Invalid token claims",
    ],
    [
      "alg none",
      () => {
        const h = btoa(JSON.stringify({ alg: "none" })).replaceAll("=", "");
        const p = btoa(JSON.stringify(claims)).replaceAll("=", "");
        return `${h}.${p}.`;
      },
      now,
      "Invalid token claims",
    ],
    [
      "HS512 (only HS256 is accepted)",
      () => raw({ ...claims }, "HS512"),
      now,
      "Invalid token claims",
    ],
    [
      "no exp claim",
      () => raw({ sub: "build", scope: ["build"] }),
      now,
      "Invalid token claims",
    ],
    ["no sub claim", () => raw({ exp: now + 60 }), now, "Invalid token claims"],
    [
      "scope not an array",
      () => raw({ sub: "build", exp: now + 60, scope: "build" }),
      now,
      "Invalid token claims",
    ],
    [
      "token_type not a string",
      () => raw({ sub: "build", exp: now + 60, token_type: 1 }),
      now,
      "Invalid token claims",
    ],
    [
      "garbage",
      () => Promise.resolve("not.a.jwt"),
      now,
      "Invalid token claims",
    ],
    ["empty", () => Promise.resolve(""), now, "Invalid token claims"],
  ];
  for (const [what, make, at, message] of cases) {
    await t.step(what, async () => {
      const token = await make();
      await assert.rejects(
        verifyToken(token, secret, at),
        (e) => e instanceof TokenError && e.message === message,
      );
    });
  }
  await t.step(
    "exp equal to now is still valid (no leeway either way)",
    async () => {
      const token = await signToken({ ...claims, exp: now }, secret);
      assert.equal((await verifyToken(token, secret, now)).exp, now);
    },
  );
  await t.step(
    "unknown claims and unknown scope strings are accepted",
    async () => {
      const token = await raw({
        ...claims,
        extra: 1,
        scope: ["build", "frobnicate"],
      });
      assert.deepEqual((await verifyToken(token, secret, now)).scope, [
        "build",
        "frobnicate",
      ]);
    },
  );
  await t.step("missing lists default to []", async () => {
    const token = await raw({ sub: "", exp: now + 1 });
    const c = await verifyToken(token, secret, now);
    assert.deepEqual([c.scope, c.prefixes, c.apps, c.repos], [[], [], [], []]);
  });
});

Deno.test("bearerFromHeader follows flat-manager's middleware messages", async (t) => {
  const cases: [string, string | undefined, string][] = [
    ["Bearer", undefined, "Header length too short"],
    ["Bear x", undefined, "Header length too short"],
    ["bearer abcdef", undefined, "Token scheme is not Bearer"],
    ["Basic dXNlcjpwYXNz", undefined, "Token scheme is not Bearer"],
    ["Bearerabcdef", undefined, "Token scheme is not Bearer"],
    ["Bearer   ", undefined, "No token value in header"],
    ["Bearer tök-en", undefined, "Cannot convert header to string"],
  ];
  for (const [header, prefix, message] of cases) {
    await t.step(`${JSON.stringify(header)} → ${message}`, () => {
      assert.throws(
        () => bearerFromHeader(header, prefix),
        (e) => e instanceof TokenError && e.message === message,
      );
    });
  }
  await t.step(
    "strips the configured prefix when present, and only then",
    () => {
      assert.equal(bearerFromHeader("Bearer fm_abc.def", "fm_"), "abc.def");
      assert.equal(bearerFromHeader("Bearer abc.def", "fm_"), "abc.def");
    },
  );
});
