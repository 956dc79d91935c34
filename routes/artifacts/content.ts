/** @module The bytes of a complete artifact. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { artifactPaths } from "../../lib/artifacts/chunk_upload.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { errors, flatManagerSecurity } from "../../lib/http/openapi.ts";
import { ArtifactParam } from "./schema.ts";
import type { ArtifactContext } from "./context.ts";

export function addArtifactContent(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, buildFor, artifactOf, conflict }: ArtifactContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/build/{id}/artifacts/{aid}/content",
      tags: ["artifacts"],
      summary: "Download a complete artifact",
      description:
        "The stored file, byte for byte (server-side builders fetch their source archive " +
        "here with their build token). Needs the `build`, `upload` or `download` scope.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: { params: ArtifactParam },
      responses: {
        200: {
          description: "The file",
          content: {
            "application/octet-stream": {
              schema: z.string().openapi({ format: "binary" }),
            },
          },
        },
        ...errors(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { build } = await buildFor(c, ["build", "upload", "download"]);
      const a = await artifactOf(build, c.req.valid("param").aid);
      if (a.status !== "complete") {
        throw conflict(
          `Artifact "${a.name}" is ${a.status}, not complete`,
          a,
        );
      }
      const file = await Deno.open(
        artifactPaths(deps.config.dataDir, build.id, a.id).bundle,
      );
      return c.body(file.readable, 200, {
        "Content-Type": "application/octet-stream",
        "Content-Length": String(a.size),
        "Cache-Control": "private, no-store",
      }) as never;
    },
  );
}
