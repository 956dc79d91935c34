/**
 * @module Interactive API docs at `/api/docs`: Swagger UI served from the installed
 * `swagger-ui-dist` package (no CDN, works offline), pointed at `/api/v1/openapi.json`.
 * Only a fixed list of asset files is served, so no request path reaches the filesystem.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { join } from "node:path";
import { getAbsoluteFSPath } from "swagger-ui-dist";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";

const assets: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

// No inline script: the app's Content-Security-Policy allows scripts from 'self' only.
const init = `window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
  });
});
`;

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flatyard API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
`;

/** The docs page and its assets. */
export function createDocsRoutes(): OpenAPIHono<AppEnv> {
  const dir = getAbsoluteFSPath();
  const cache = new Map<string, Uint8Array>();
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/docs",
      tags: ["operations"],
      summary: "Interactive API documentation (HTML)",
      responses: {
        200: {
          description: "Swagger UI",
          content: { "text/html": { schema: z.string() } },
        },
      },
    }),
    (c) => c.html(page, 200),
  );
  // Assets are not API: a plain route keeps them out of the OpenAPI document.
  app.get("/api/docs/:asset", async (c) => {
    const asset = c.req.param("asset");
    if (asset === "init.js") {
      return c.body(init, 200, {
        "Content-Type": "text/javascript; charset=utf-8",
        "Cache-Control": "no-cache",
      });
    }
    const type = assets[asset];
    if (!type) throw problems.notFound(`Cannot find docs asset "${asset}"`);
    let bytes = cache.get(asset);
    if (!bytes) {
      cache.set(asset, bytes = await Deno.readFile(join(dir, asset)));
    }
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": type,
      "Cache-Control": "public, max-age=86400",
    });
  });
  return app;
}
