/** @module An artifact record, with how many bytes are stored (GET and HEAD). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  flatManagerSecurity,
  jsonResponse,
} from "../../lib/http/openapi.ts";
import { ArtifactParam, ArtifactSchema } from "./schema.ts";
import type { ArtifactContext } from "./context.ts";

export function addReadArtifact(
  app: OpenAPIHono<AppEnv>,
  { auth, json, buildFor, artifactOf, offsetHeaders }: ArtifactContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/build/{id}/artifacts/{aid}",
      tags: ["artifacts"],
      summary: "Get an artifact, with how many bytes are stored",
      description:
        "HEAD answers the same headers: `Upload-Offset` is `received`, and `Range` " +
        "(`bytes=0-<received-1>`) is there once any byte is stored. Needs the `build` or " +
        "`upload` scope.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: { params: ArtifactParam },
      responses: {
        200: jsonResponse("The artifact", ArtifactSchema),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const { build } = await buildFor(c, ["build", "upload"]);
      const a = await artifactOf(build, c.req.valid("param").aid);
      offsetHeaders(c, a);
      return c.json(json(c, a), 200);
    },
  );
}
