/**
 * @module Schemas of the user routes; the auth, token and repository routes share some of them.
 */
import { z } from "@hono/zod-openapi";
import { globalRoles, repoRoles } from "../../lib/users/roles.ts";
import { type User, USERNAME_PATTERN } from "../../lib/users/users.ts";

export const UsernameSchema = z.string().regex(
  USERNAME_PATTERN,
  "must be 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
).openapi({ example: "alice" });

export const PasswordSchema = z.string().min(
  12,
  "must be at least 12 characters",
).max(1024)
  .openapi({ example: "correct horse battery staple" });

/** A repository name: one safe path segment (no `/`, no `..`, no leading dot). */
export const RepoNameSchema = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
  "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
).openapi({ example: "stable" });

export const UserSchema = z.object({
  id: z.number().int().openapi({ example: 1 }),
  username: z.string().openapi({ example: "alice" }),
  role: z.enum(globalRoles).openapi({ example: "maintainer" }),
  disabled: z.boolean(),
  repoRoles: z.record(z.string(), z.enum(repoRoles)).openapi({
    example: { stable: "admin" },
  }),
  createdAt: z.string().openapi({ example: "2026-11-24T12:00:00.000Z" }),
  updatedAt: z.string(),
}).openapi("User");

/** A user as the API shows it. */
export function toUserJson(u: User): z.infer<typeof UserSchema> {
  return {
    id: u.id,
    username: u.username,
    role: u.role,
    disabled: u.disabled,
    repoRoles: u.repoRoles,
    createdAt: u.createdAt.toISOString(),
    updatedAt: u.updatedAt.toISOString(),
  };
}

export const IdParam = z.object({
  id: z.coerce.number().int().positive().openapi({
    param: { name: "id", in: "path" },
    example: 2,
  }),
});
export const RepoParam = IdParam.extend({
  repo: RepoNameSchema.openapi({ param: { name: "repo", in: "path" } }),
});

export const CreateUser = z.object({
  username: UsernameSchema,
  password: PasswordSchema,
  role: z.enum(globalRoles).default("viewer"),
}).strict().openapi("CreateUserRequest");

export const UpdateUser = z.object({
  role: z.enum(globalRoles).optional(),
  disabled: z.boolean().optional(),
  password: PasswordSchema.optional(),
}).strict().refine(
  (b) => Object.keys(b).length > 0,
  "must change at least one field",
).openapi("UpdateUserRequest");

export const SetRepoRole = z.object({ role: z.enum(repoRoles) }).strict()
  .openapi(
    "SetRepoRoleRequest",
  );
