/**
 * @module `POST /api/v1/build/{id}/upload` (specs/flat-manager-api.md §5.3): multipart/mixed (the
 * Python client) or multipart/form-data (the Rust client), each part streamed, never held whole:
 * through a verifier (an object must hash to its name) into a temporary file, then renamed into
 * the build's upload repository. A bad name, a mismatch or an oversize part stops the request
 * with a clear error and leaves nothing of that part; parts before it stay stored (as in
 * flat-manager). Re-uploading an object replaces it with identical bytes.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { dirname, join } from "node:path";
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
import { MultipartError, parseMultipart } from "../../lib/http/multipart.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import { parseUploadName } from "../../lib/ostree/object_names.ts";
import {
  createObjectHasher,
  ObjectVerifyError,
} from "../../lib/ostree/verify.ts";
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
      const upload = buildPaths(deps.config.dataDir, build.id).upload;
      const tmpDir = join(upload, "tmp", "flatyard-upload");
      await Deno.mkdir(tmpDir, { recursive: true });
      const sizes: number[] = [];
      try {
        await parseMultipart(c.req.raw.body, contentType, async (part) => {
          if (part.disposition === undefined) {
            throw fm.badRequest("No content disposition for multipart item");
          }
          if (part.filename === undefined) {
            throw fm.badRequest("No filename for multipart item");
          }
          const name = parseUploadName(part.filename);
          if (!name) throw fm.badRequest("Invalid upload filename");
          const declared = Number(part.headers.get("content-length") ?? NaN);
          if (declared > deps.config.maxObjectBytes) {
            throw new HTTPException(413, {
              message:
                `Object ${part.filename} is larger than the limit of ${deps.config.maxObjectBytes} bytes`,
            });
          }
          const hasher = createObjectHasher(
            name.kind === "object" ? name.ext : "delta",
            {
              name: part.filename,
              ...(name.kind === "object" ? { expected: name.checksum } : {}),
            },
          );
          // Synchronous file calls: each is one short syscall, and an upload of thousands of
          // small objects spends most of its time in them; async ones each cost a thread-pool
          // round trip. Chunks arrive one at a time, so memory stays at one chunk per part.
          const tmp = join(tmpDir, crypto.randomUUID());
          const file = Deno.openSync(tmp, {
            write: true,
            createNew: true,
            mode: 0o644,
          });
          let closed = false;
          try {
            let size = 0;
            const reader = part.body.getReader();
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              size += value.length;
              if (size > deps.config.maxObjectBytes) {
                throw new HTTPException(413, {
                  message:
                    `Object ${part.filename} is larger than the limit of ${deps.config.maxObjectBytes} bytes`,
                });
              }
              await hasher.update(value);
              for (let at = 0; at < value.length;) {
                at += file.writeSync(value.subarray(at));
              }
            }
            await hasher.finish();
            file.close();
            closed = true;
            const final = join(upload, name.relPath);
            try {
              Deno.renameSync(tmp, final);
            } catch (err) {
              // The object's directory (objects/xx/, deltas/…) comes with its first object.
              if (!(err instanceof Deno.errors.NotFound)) throw err;
              Deno.mkdirSync(dirname(final), { recursive: true });
              Deno.renameSync(tmp, final);
            }
            sizes.push(size);
          } catch (err) {
            hasher.abort();
            if (!closed) file.close();
            try {
              Deno.removeSync(tmp);
            } catch { /* already gone */ }
            throw err;
          }
        });
      } catch (err) {
        if (err instanceof ObjectVerifyError) throw fm.badRequest(err.message);
        if (err instanceof MultipartError) {
          throw fm.badRequest(`Invalid multipart body: ${err.message}`);
        }
        throw err;
      }
      return c.json(sizes, 200);
    },
  );
  return app;
}
