/**
 * @module Live job logs: a job's log streamed as Server-Sent Events or over a WebSocket, from a
 * byte offset, until the job ends. Access is the same as `GET /api/v1/jobs/{id}/log`.
 * The following itself (no line lost or repeated) is lib/queue/log_follower.ts.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth, SESSION_COOKIE } from "../lib/http/auth.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, Problem, problems } from "../lib/http/errors.ts";
import { requireGlobal } from "../lib/http/guards.ts";
import type { ServerEnv, ServerWebSocket } from "../lib/http/node_request.ts";
import { errors, nativeSecurity, ProblemSchema } from "../lib/http/openapi.ts";
import { errorFields, type Logger } from "../lib/logger.ts";
import { followJobLog, type LiveLogEvent } from "../lib/queue/log_follower.ts";

const encoder = new TextEncoder();

/** Timings; the defaults suit production, tests shorten them. */
export interface LiveLogOptions {
  /** SSE comment interval that keeps proxies from closing a quiet stream. Default 15 s. */
  heartbeatMs?: number;
  /** How often a quiet stream re-reads the database, in case a bus message was lost. Default 15 s. */
  resyncMs?: number;
}

// The same JSON goes out as an SSE event's data and as a WebSocket message, so a client parses
// both alike. JSON rather than raw text because SSE treats a lone "\r" as a line break, which
// would turn a progress bar's carriage returns into newlines.
function sseEvent(e: LiveLogEvent): string {
  const data = `data: ${JSON.stringify(e)}\n\n`;
  return e.type === "log"
    ? `event: log\nid: ${e.offset}\n${data}`
    : `event: end\n${data}`;
}

const IdParam = z.object({
  id: z.coerce.number().int().positive().openapi({
    param: { name: "id", in: "path" },
    example: 7,
  }),
});
const OffsetQuery = z.object({
  offset: z.coerce.number().int().min(0).default(0).openapi({
    description: "Byte offset to start from (0: the whole log)",
  }),
}).strict();

const messageFormat =
  'Messages are JSON: `{"type":"log","offset":N,"text":"…"}` with `offset` the byte offset just ' +
  'past `text`, and `{"type":"end","status":"succeeded"}` once the job has ended ' +
  "(`succeeded`, `failed` or `cancelled`).";

/** The live log routes: SSE and WebSocket. */
export function createLiveLogRoutes(
  deps: Deps,
  options: LiveLogOptions = {},
): OpenAPIHono<AppEnv> {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const resyncMs = options.resyncMs ?? 15_000;
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const trustedOrigin = new URL(deps.config.baseUrl).origin;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  const mustExist = async (id: number) => {
    if (!await deps.queue.get(id)) {
      throw problems.notFound(`Cannot find job "${id}"`);
    }
  };
  const follow = (id: number, from: number, signal: AbortSignal) =>
    followJobLog(deps.queue, deps.bus, id, from, signal, resyncMs);

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/jobs/{id}/log/stream",
      tags: ["jobs"],
      summary: "Stream a job's log live (Server-Sent Events)",
      description:
        "Sends the log from `offset`, then each new piece as it is written, as `log` events " +
        "whose `id` is the byte offset after the piece; a reconnecting client's " +
        "`Last-Event-ID` takes precedence over `offset`, so it resumes exactly where it stopped. " +
        "When the job ends, an `end` event follows and the stream closes: close the " +
        "EventSource then, or it reconnects and gets the `end` event again. Comments " +
        "(`: keep-alive`) come every 15 s on a quiet stream. " + messageFormat +
        " The same stream is available as a WebSocket at `/api/v1/jobs/{id}/log/ws`.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        params: IdParam,
        query: OffsetQuery,
        headers: z.object({
          "last-event-id": z.string().regex(/^\d{1,15}$/).optional().openapi({
            description: "The `id` of the last event received: resume after it",
            example: "1024",
          }),
        }),
      },
      responses: {
        200: {
          description: "An event stream",
          content: {
            "text/event-stream": {
              schema: z.string().openapi({
                example:
                  'event: log\nid: 12\ndata: {"type":"log","offset":12,' +
                  '"text":"Building…\\n"}\n\nevent: end\ndata: ' +
                  '{"type":"end","status":"succeeded"}\n\n',
              }),
            },
          },
        },
        ...errors(401, 403, 404, 422),
      },
    }),
    async (c) => {
      requireGlobal(c.get("principal"), "maintainer");
      const { id } = c.req.valid("param");
      await mustExist(id);
      const resumeAt = c.req.valid("header")["last-event-id"];
      const from = resumeAt === undefined
        ? c.req.valid("query").offset
        : Number(resumeAt);
      const stop = new AbortController();
      const closing = (c.env as Partial<ServerEnv> | undefined)?.closing;
      const events = follow(
        id,
        from,
        AbortSignal.any([
          stop.signal,
          c.req.raw.signal,
          ...(closing ? [closing] : []),
        ]),
      );
      const body = sseStream(events, heartbeatMs, deps.logger, stop);
      return c.body(body, 200, {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        // nginx buffers proxied responses unless told not to.
        "X-Accel-Buffering": "no",
      });
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/jobs/{id}/log/ws",
      tags: ["jobs"],
      summary: "Stream a job's log live (WebSocket)",
      description:
        "A WebSocket upgrade (`GET` with `Upgrade: websocket`): the server sends the log from " +
        "`offset`, then each new piece as it is written, then the end, and closes with 1000. " +
        messageFormat +
        " To resume, reconnect with `offset` set to the last `offset` received. Authenticate " +
        "with a bearer token or the session cookie; a cookie-authenticated upgrade from " +
        "another origin is refused.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: IdParam, query: OffsetQuery },
      responses: {
        101: { description: "Switching Protocols: the log follows" },
        ...errors(401, 403, 404, 422),
        426: {
          description: "Not a WebSocket upgrade request",
          content: { "application/problem+json": { schema: ProblemSchema } },
        },
      },
    }),
    async (c) => {
      requireGlobal(c.get("principal"), "maintainer");
      refuseCrossSiteCookie(c, trustedOrigin);
      const { id } = c.req.valid("param");
      await mustExist(id);
      const env = c.env as Partial<ServerEnv> | undefined;
      if (!env?.upgradeWebSocket) {
        throw new Problem(
          426,
          "Upgrade required",
          "This endpoint speaks WebSocket: connect with a WebSocket client",
        );
      }
      const from = c.req.valid("query").offset;
      const closing = env.closing;
      return env.upgradeWebSocket((socket) => {
        const signal = AbortSignal.any([
          socket.signal,
          ...(closing ? [closing] : []),
        ]);
        void streamToSocket(
          socket,
          follow(id, from, signal),
          signal,
          deps.logger,
        );
      });
    },
  );

  return app;
}

/**
 * Browsers send cookies with cross-site WebSocket handshakes and apply no CORS to them, so a
 * cookie-authenticated upgrade must come from our own origin (bearer tokens carry no ambient
 * credential and need no check).
 */
function refuseCrossSiteCookie(c: Context<AppEnv>, trustedOrigin: string) {
  if (c.req.header("authorization") !== undefined) return;
  if (getCookie(c, SESSION_COOKIE) === undefined) return;
  const origin = c.req.header("origin");
  if (origin === undefined) return;
  const own = new URL(c.req.url).origin;
  if (origin === "null" || (origin !== own && origin !== trustedOrigin)) {
    throw problems.forbidden(`Cross-origin request from "${origin}" refused`);
  }
}

/** The events as an SSE body, pulled as the client reads, with heartbeat comments. */
function sseStream(
  events: AsyncGenerator<LiveLogEvent, void>,
  heartbeatMs: number,
  logger: Logger,
  stop: AbortController,
): ReadableStream<Uint8Array> {
  let pending: Promise<IteratorResult<LiveLogEvent, void>> | undefined;
  const finish = () => {
    stop.abort();
    void events.return().catch(() => {});
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      // Something at once, so the client sees the response start before the first event.
      controller.enqueue(encoder.encode(": connected\n\n"));
    },
    async pull(controller) {
      pending ??= events.next();
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const got = await Promise.race([
          pending,
          new Promise<"beat">((r) =>
            timer = setTimeout(r, heartbeatMs, "beat")
          ),
        ]);
        if (got === "beat") {
          controller.enqueue(encoder.encode(": keep-alive\n\n"));
          return;
        }
        pending = undefined;
        if (got.done) {
          controller.close();
          finish();
          return;
        }
        controller.enqueue(encoder.encode(sseEvent(got.value)));
        if (got.value.type === "end") {
          controller.close();
          finish();
        }
      } catch (err) {
        // The client reconnects with Last-Event-ID and resumes; the error goes to the log.
        logger.error("live log stream failed", errorFields(err, true));
        controller.close();
        finish();
      } finally {
        clearTimeout(timer);
      }
    },
    cancel: finish,
  });
}

/**
 * Sends the events over an accepted WebSocket, then closes it. When `signal` stops the stream,
 * the socket is already closed or the server is closing it (with 1001).
 */
async function streamToSocket(
  socket: ServerWebSocket,
  events: AsyncGenerator<LiveLogEvent, void>,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  try {
    for await (const event of events) {
      await socket.send(JSON.stringify(event));
      if (event.type === "end") break;
    }
    if (!signal.aborted) socket.close(1000, "Job ended");
  } catch (err) {
    if (signal.aborted) return;
    logger.error("live log socket failed", errorFields(err, true));
    socket.close(1011, "Internal error");
  }
}
