/**
 * @module `createApp(deps)`: the whole HTTP app, built on OpenAPIHono. It never listens; main.ts
 * serves it and tests call `app.request()` (CONVENTIONS.md rule 1).
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "./deps.ts";
import type { AppEnv } from "./http/env.ts";
import type { FastPath } from "./http/node_server.ts";
import { recordRequest } from "./http/request_log.ts";
import { requestIdFrom, securityHeaders } from "./http/security_headers.ts";
import {
  createErrorHandler,
  nativeValidationHook,
  notFound,
} from "./http/errors.ts";
import { createAuditRoutes } from "../routes/audit.ts";
import { createApiTokenRoutes } from "../routes/api_tokens.ts";
import { createAuthRoutes } from "../routes/auth.ts";
import { createDocsRoutes } from "../routes/docs.ts";
import { createFlatManagerTokenRoutes } from "../routes/flat_manager_tokens.ts";
import { createFlatManagerBuildRoutes } from "../routes/flat_manager/builds.ts";
import { createFlatManagerJobRoutes } from "../routes/flat_manager/jobs.ts";
import { createFlatManagerUploadRoutes } from "../routes/flat_manager/upload.ts";
import { createFlatManagerPipelineRoutes } from "../routes/flat_manager/pipeline.ts";
import { createFlatManagerRepoJobRoutes } from "../routes/flat_manager/repo_jobs.ts";
import { createArtifactRoutes } from "../routes/artifacts/routes.ts";
import { createSourceBuildRoutes } from "../routes/source_builds/routes.ts";
import { createHealthRoutes } from "../routes/health.ts";
import { createJobRoutes } from "../routes/jobs.ts";
import { createLiveLogRoutes } from "../routes/live_logs.ts";
import { createUserRoutes } from "../routes/users/routes.ts";
import { createRepoRoutes } from "../routes/repos/routes.ts";
import { createRepoKeyRoutes } from "../routes/repo_keys.ts";
import {
  createRepoFileFastPath,
  createRepoFileRoutes,
} from "../routes/repo_files.ts";
import { createRepoMetaRoutes } from "../routes/repo_meta.ts";
import { createFlatpakrefRoutes } from "../routes/flatpakrefs.ts";
import { createBuildFileRoutes } from "../routes/build_files.ts";
import { createStatusRoutes } from "../routes/status.ts";
import { createStatsRoutes } from "../routes/stats/routes.ts";

export const API_TITLE = "Flatyard API";
export const API_VERSION = "0.1.0";

/** Builds the app. */
export function createApp(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  app.use(async function requestIdAndLog(c, next) {
    const requestId = requestIdFrom(c.req.header("x-request-id"));
    c.set("requestId", requestId);
    c.header("X-Request-Id", requestId);
    c.set("errorStyle", "native");
    const started = performance.now();
    await next();
    recordRequest(deps, {
      requestId,
      method: c.req.method,
      route: c.req.routePath,
      path: c.req.path,
      status: c.res.status,
      seconds: (performance.now() - started) / 1000,
    });
  });
  app.use(securityHeaders());

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description:
      "A flat-manager-compatible JWT (HS256), or a login session value (`fys_…`).",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "session", {
    type: "apiKey",
    in: "cookie",
    name: "flatyard_session",
    description: "The session cookie set by POST /api/v1/auth/login.",
  });

  app.route("/", createHealthRoutes(deps));
  app.route("/", createFlatManagerTokenRoutes(deps));
  app.route("/", createFlatManagerBuildRoutes(deps));
  app.route("/", createFlatManagerJobRoutes(deps));
  app.route("/", createFlatManagerUploadRoutes(deps));
  app.route("/", createFlatManagerPipelineRoutes(deps));
  app.route("/", createFlatManagerRepoJobRoutes(deps));
  app.route("/", createArtifactRoutes(deps));
  app.route("/", createSourceBuildRoutes(deps));
  app.route("/", createAuthRoutes(deps));
  app.route("/", createApiTokenRoutes(deps));
  app.route("/", createUserRoutes(deps));
  app.route("/", createRepoRoutes(deps));
  app.route("/", createRepoKeyRoutes(deps));
  app.route("/", createRepoMetaRoutes(deps));
  // Before the repository file routes, which would refuse `/repo/<name>/<id>.flatpakref`.
  app.route("/", createFlatpakrefRoutes(deps));
  app.route("/", createRepoFileRoutes(deps));
  app.route("/", createBuildFileRoutes(deps));
  app.route("/", createStatusRoutes(deps));
  app.route("/", createStatsRoutes(deps));
  app.route("/", createJobRoutes(deps));
  app.route("/", createLiveLogRoutes(deps));
  app.route("/", createAuditRoutes(deps));
  app.route("/", createDocsRoutes());

  app.doc31("/api/v1/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: API_TITLE,
      version: API_VERSION,
      description:
        "Flatpak repository manager and build farm. The flat-manager endpoints keep " +
        "flat-manager's exact wire contract; native endpoints answer RFC 9457 problem details.",
    },
    servers: [{ url: deps.config.baseUrl }],
  });

  app.notFound(notFound);
  app.onError(createErrorHandler(deps.logger));
  return app;
}

/**
 * The requests answered ahead of the app when served over node:http (`serveApp`'s `fastPath`):
 * repository files, exactly as the app's route answers them.
 */
export function createFastPath(deps: Deps): FastPath {
  return createRepoFileFastPath(deps);
}
