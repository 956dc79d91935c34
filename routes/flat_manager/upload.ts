/**
 * @module `POST /api/v1/build/{id}/upload` (specs/flat-manager-api.md §5.3): multipart/mixed (the
 * Python client) or multipart/form-data (the Rust client), each part streamed, never held whole:
 * through a verifier (an object must hash to its name) into a temporary file, then renamed into
 * the build's upload repository (lib/builds/store_upload.ts). A bad name, a mismatch or an
 * oversize part stops the request with a clear error and leaves nothing of that part; parts
 * before it stay stored (as in flat-manager). Re-uploading an object replaces it with identical
 * bytes.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { Deps } from "../../lib/deps.ts";
import { buildPaths } from "../../lib/builds/build_disk.ts";
import { RepoState, repoStateNames } from "../../lib/builds/build_store.ts";
import { flatManagerAuth } from "../../lib/http/auth.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  FlatManagerError,
  flatManagerValidationHook,
  fm,
} from "../../lib/http/errors.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import { storeUpload, UploadRefused } from "../../lib/builds/store_upload.ts";
import { authorizedBuild } from "./common.ts";

/** The upload route. */
export function createFlatManagerUploadRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = flatManagerAuth(deps.tokens);
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: flatManagerValidationHook,
  });

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/build/{id}/upload",
      tags: ["flat-manager"],
      summary: "Upload objects and delta parts (§5.3)",
      description:
        "A multipart/mixed or multipart/form-data body; each part's filename is an object " +
        "name (`<sha256>.<dirmeta|dirtree|filez|commit>`) or a delta part (`<name>.<part>.delta`). " +
        "Returns the stored size of each part, in order.",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      responses: {
        200: {
          description: "Sizes",
          content: {
            "application/json": { schema: z.array(z.number().int()) },
          },
        },
        ...flatManagerErrorResponses,
        413: { description: "An object is over the size limit" },
      },
    }),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["upload"]);
      if (build.repoState !== RepoState.Uploading) {
        throw new FlatManagerError(
          400,
          "wrong-repo-state",
          "Build is not uploading",
          {
            "current-state": repoStateNames[build.repoState],
            "expected-state": "uploading",
          },
        );
      }
      const contentType = c.req.header("content-type") ?? "";
      if (!/^multipart\//i.test(contentType) || !c.req.raw.body) {
        throw fm.badRequest("Upload needs a multipart body");
      }
      try {
        const sizes = await storeUpload(c.req.raw.body, contentType, {
          uploadDir: buildPaths(deps.config.dataDir, build.id).upload,
          maxObjectBytes: deps.config.maxObjectBytes,
        });
        return c.json(sizes, 200);
      } catch (err) {
        if (!(err instanceof UploadRefused)) throw err;
        if (err.status === 413) {
          throw new HTTPException(413, { message: err.message });
        }
        throw fm.badRequest(err.message);
      }
    },
  );
  return app;
}
