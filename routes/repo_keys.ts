/**
 * @module A repository's signing keys: list, generate or import (repository admins), export the
 * public key as armored text, binary or base64. Private keys never appear in a response, a log
 * line or a job payload; a passphrase is used to decrypt once and then forgotten.
 */
import { toBase64 } from "../lib/base64.ts";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth, optionalNativeAuth } from "../lib/http/auth.ts";
import { actorOf, type AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { requireRepoRole } from "../lib/http/guards.ts";
import {
  errors,
  jsonBody,
  jsonResponse,
  nativeSecurity,
} from "../lib/http/openapi.ts";
import {
  armorPublicKey,
  generateSigningKey,
  importSigningKey,
  KeyImportError,
} from "../lib/pgp/keys.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import type { RepoKeyInfo } from "../lib/repos/repo_keys.ts";
import { repoStore } from "../lib/repos/repo_store.ts";
import { maybePrincipal } from "./repos/context.ts";
import { RepoName } from "./repos/schema.ts";

const NameParam = z.object({
  name: RepoName.openapi({
    param: { name: "name", in: "path" },
    example: "stable",
  }),
});
const FprParam = NameParam.extend({
  fingerprint: z.string().regex(
    /^[0-9A-Fa-f]{40}$/,
    "must be a 40-digit hex fingerprint",
  )
    .openapi({
      param: { name: "fingerprint", in: "path" },
      example: "0123456789ABCDEF0123456789ABCDEF01234567",
    }),
});

const Purpose = z.enum(["repo", "build"]).openapi({
  description:
    "`repo` signs the main repository; `build` signs its build repositories",
});

const AddKey = z.object({
  purpose: Purpose.default("repo"),
  activate: z.boolean().default(true).openapi({
    description: "Sign with this key from now on (rotation)",
  }),
  generate: z.object({
    algorithm: z.enum(["rsa4096", "eddsa-legacy"]).default("rsa4096"),
    name: z.string().min(1).max(200).optional().openapi({
      example: "Example Apps signing key",
    }),
    email: z.email().optional(),
  }).strict().optional(),
  import: z.object({
    armored: z.string().min(1).max(256 * 1024).openapi({
      description: "An armored OpenPGP private key (v4)",
    }),
    passphrase: z.string().max(1024).optional(),
  }).strict().optional(),
}).strict().refine(
  (b) => (b.generate === undefined) !== (b.import === undefined),
  {
    message: "give exactly one of generate or import",
  },
).openapi("AddKeyRequest");

const KeySchema = z.object({
  fingerprint: z.string(),
  keyId: z.string(),
  algorithm: z.string().openapi({ example: "rsa4096" }),
  userIds: z.array(z.string()),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  purpose: Purpose,
  active: z.boolean(),
  addedAt: z.string(),
  retiredAt: z.string().nullable(),
}).openapi("SigningKey");

const keyJson = (k: RepoKeyInfo): z.infer<typeof KeySchema> => ({
  ...k,
  createdAt: k.createdAt.toISOString(),
  expiresAt: k.expiresAt?.toISOString() ?? null,
  addedAt: k.addedAt.toISOString(),
  retiredAt: k.retiredAt?.toISOString() ?? null,
});

/** The key routes. */
export function createRepoKeyRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const authOpts = {
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  };
  const auth = nativeAuth(authOpts);
  const maybeAuth = optionalNativeAuth(authOpts);
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/keys",
      tags: ["keys"],
      summary:
        "List a repository's signing keys by fingerprint (public parts only)",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: { params: NameParam },
      responses: {
        200: jsonResponse("Keys", z.array(KeySchema)),
        ...errors(401, 404),
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const repo = await repoStore.get(deps.db, name);
      if (!repo || !canReadRepo(maybePrincipal(c), repo)) {
        throw problems.notFound(`Cannot find repository "${name}"`);
      }
      return c.json((await deps.repoKeys.list(repo.id)).map(keyJson), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{name}/keys",
      tags: ["keys"],
      summary:
        "Generate or import a signing key; by default it signs from now on",
      description:
        "Needs admin on the repository. Only v4 keys that GnuPG 2.2 verifies are accepted " +
        "(RSA, DSA, ECDSA, legacy EdDSA). Importing a key the repository already has changes nothing (200).",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: NameParam, body: jsonBody(AddKey) },
      responses: {
        201: jsonResponse("Added", KeySchema),
        200: jsonResponse("Already there", KeySchema),
        ...errors(400, 401, 403, 404, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const { name } = c.req.valid("param");
      requireRepoRole(principal, name, "admin");
      const body = c.req.valid("json");
      const repo = await repoStore.get(deps.db, name);
      if (!repo) throw problems.notFound(`Cannot find repository "${name}"`);
      let material;
      try {
        material = body.generate
          ? await generateSigningKey({
            algorithm: body.generate.algorithm,
            name: body.generate.name ??
              `${repo.title ?? repo.name} signing key`,
            ...(body.generate.email ? { email: body.generate.email } : {}),
          })
          : await importSigningKey(
            body.import!.armored,
            body.import!.passphrase,
          );
      } catch (err) {
        if (err instanceof KeyImportError) {
          throw problems.badRequest(err.message);
        }
        throw err;
      }
      const { info, added } = await deps.db.transaction(async (tx) => {
        const result = await deps.repoKeys.add(
          tx,
          repo.id,
          material,
          body.purpose,
          body.activate,
        );
        await deps.audit.record({
          ...actorOf(principal),
          action: body.generate ? "key.generate" : "key.import",
          objectType: "repo",
          objectId: name,
          details: {
            fingerprint: material.fingerprint,
            purpose: body.purpose,
            active: body.activate,
            added: result.added,
          },
          requestId: c.get("requestId"),
        }, tx);
        return result;
      });
      return c.json(keyJson(info), added ? 201 : 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/keys/{fingerprint}",
      tags: ["keys"],
      summary:
        "Export a public key: armored (default), binary, or base64 for a .flatpakrepo",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: {
        params: FprParam,
        query: z.object({
          format: z.enum(["armor", "binary", "base64"]).default("armor"),
        }).strict(),
      },
      responses: {
        200: {
          description: "The public key",
          content: {
            "application/pgp-keys": { schema: z.string() },
            "application/octet-stream": {
              schema: z.string().openapi({ format: "binary" }),
            },
            "text/plain": { schema: z.string() },
          },
        },
        ...errors(401, 404, 422),
      },
    }),
    async (c) => {
      const { name, fingerprint } = c.req.valid("param");
      const repo = await repoStore.get(deps.db, name);
      if (!repo || !canReadRepo(maybePrincipal(c), repo)) {
        throw problems.notFound(`Cannot find repository "${name}"`);
      }
      const key = await deps.repoKeys.publicKey(repo.id, fingerprint);
      if (!key) {
        throw problems.notFound(
          `Repository "${name}" has no key "${fingerprint}"`,
        );
      }
      const format = c.req.valid("query").format;
      const file = `${name}-${fingerprint.slice(-16).toUpperCase()}`;
      if (format === "binary") {
        return c.body(key as Uint8Array<ArrayBuffer>, 200, {
          "Content-Type": "application/octet-stream",
          "Content-Disposition": `attachment; filename="${file}.gpg"`,
        });
      }
      if (format === "base64") {
        return c.text(
          toBase64(key),
          200,
        );
      }
      return c.body(await armorPublicKey(key), 200, {
        "Content-Type": "application/pgp-keys",
        "Content-Disposition": `inline; filename="${file}.asc"`,
      });
    },
  );

  return app;
}
