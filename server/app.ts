/**
 * The HTTP API as a Hono app: {@linkcode createApp} wires the routes, authentication, body
 * limits, CORS, metrics and the one error handler that gives every failure the same JSON shape.
 * It opens no socket: `serveCommand` (or a test's `app.request()`) does that.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { matchedRoutes } from "hono/route";
import type { RewardModel } from "../reward/mod.ts";
import type { RunStore } from "../store/mod.ts";
import { resolveConfig, type ServerConfig, type ServerConfigInput } from "./_config.ts";
import { type AppContext, type LoadedModels, ModelSlot } from "./_context.ts";
import { clip, errorResponse } from "./_errors.ts";
import { Metrics } from "./_metrics.ts";
import { registerOpenAi } from "./_openai.ts";
import { DOCS_HTML, openApiDocument } from "./_openapi.ts";
import { PAGE_HTML } from "./_page.ts";
import { WorkQueue } from "./_queue.ts";
import { registerReason } from "./_reason.ts";
import { registerRewards } from "./_rewards.ts";
import { registerRuns } from "./_runs.ts";
import { counted, type ServerPolicy } from "./_served_policy.ts";

/** The version reported by `/openapi.json` and `/health`. */
export const VERSION = "0.1.0";

/** What {@linkcode createApp} needs. */
export interface AppDeps {
  /** The policy (a promise while it loads: model routes answer 503 until it settles). */
  policy: ServerPolicy | Promise<ServerPolicy>;
  /** The step reward model (needed by every strategy but greedy, and by `/v1/rewards`). */
  reward?: RewardModel | Promise<RewardModel | undefined>;
  /** The run store behind `/v1/runs` and `/v1/exports`. */
  store?: RunStore;
  /** Settings (defaults for what is absent). */
  config?: ServerConfigInput;
  /** Aborting it cancels every request in flight (graceful shutdown past its deadline). */
  signal?: AbortSignal;
  /** Told of unexpected errors; clients only see "internal server error". */
  onError?: (error: unknown) => void;
}

/** Paths that answer without a token: liveness, readiness, the page and the docs. */
const OPEN_PATHS = new Set(["/", "/health", "/ready", "/docs", "/openapi.json"]);

function digest(s: string): Uint8Array {
  return createHash("sha256").update(s).digest();
}

/** A constant-time check of `Authorization: Bearer <token>`. */
function authorized(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  return m !== null && timingSafeEqual(digest(m[1].trim()), digest(token));
}

/** Why a request without the right token is refused: none sent, another scheme, or wrong. */
function unauthorizedText(header: string | undefined): string {
  const send = "send Authorization: Bearer <token>";
  if (!header?.trim()) return `The bearer token is missing: ${send}`;
  const scheme = header.trim().split(/\s+/, 1)[0];
  if (!/^Bearer$/i.test(scheme)) {
    return `The Authorization header must use the Bearer scheme, got '${
      clip(scheme, 20)
    }': ${send}`;
  }
  const why = /\s\S/.test(header.trim()) ? "is wrong" : "is missing after 'Bearer'";
  return `The bearer token ${why}: ${send}`;
}

/** The route patterns of `app` as regular expressions, with their methods. */
function routeTable(app: Hono): { re: RegExp; method: string }[] {
  return app.routes.filter((r) => r.method !== "ALL").map((r) => ({
    method: r.method,
    re: new RegExp(
      "^" +
        r.path.split("/").map((part) =>
          part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
        ).join("/") + "$",
    ),
  }));
}

/** The methods a path answers to (GET also answers HEAD); empty when no route has the path. */
function methodsOf(table: { re: RegExp; method: string }[], path: string): string[] {
  const found = new Set(table.filter((r) => r.re.test(path)).map((r) => r.method));
  if (found.has("GET")) found.add("HEAD");
  return [...found];
}

/** The route label of a request: its registered path, or "unmatched". */
function routeOf(c: Parameters<Parameters<Hono["use"]>[1]>[0]): string {
  const routes = matchedRoutes(c).filter((r) => r.method !== "ALL");
  return routes.at(-1)?.path ?? "unmatched";
}

function modelsOf(deps: AppDeps, metrics: Metrics): LoadedModels | Promise<LoadedModels> {
  const counters = {
    inFlight: 0,
    onTokens: (n: number) => metrics.tokens.inc({}, n),
    onInFlight(d: number) {
      this.inFlight += d;
    },
  };
  metrics.gauge(
    "arborist_policy_calls_in_flight",
    "Policy calls (generate, score, echo) running or queued in the model worker.",
    () => counters.inFlight,
  );
  const wrap = (policy: ServerPolicy, reward?: RewardModel): LoadedModels => ({
    policy: counted(policy, counters),
    reward,
  });
  if (!(deps.policy instanceof Promise) && !(deps.reward instanceof Promise)) {
    return wrap(deps.policy, deps.reward);
  }
  return Promise.all([deps.policy, deps.reward]).then(([p, r]) => wrap(p, r));
}

/**
 * Build the API.
 *
 * @param deps Models, store, settings, shutdown signal.
 * @returns The Hono app (serve it with `Deno.serve({...}, app.fetch)`).
 * @example
 * ```ts
 * const app = createApp({ policy, reward, store, config: { token: "secret" } });
 * const res = await app.request("/health");
 * ```
 */
export function createApp(deps: AppDeps): Hono {
  const config: ServerConfig = resolveConfig(deps.config);
  const metrics = new Metrics();
  const ctx: AppContext = {
    models: new ModelSlot(modelsOf(deps, metrics)),
    store: deps.store,
    config,
    queue: new WorkQueue({ concurrency: config.maxConcurrency, maxQueue: config.maxQueue }),
    metrics,
    shutdown: deps.signal,
    report: deps.onError ?? (() => {}),
  };
  addGauges(ctx);
  const app = new Hono();
  app.onError((err) => {
    if (err instanceof HTTPException) {
      return err.res ?? errorResponse(err.status, err.message);
    }
    ctx.report(err);
    return errorResponse(500, "Internal server error");
  });
  // built at the first unmatched request, when every route is registered
  let routes: { re: RegExp; method: string }[] | undefined;
  app.notFound((c) => {
    const allowed = methodsOf(routes ??= routeTable(app), c.req.path);
    if (allowed.length > 0) {
      return errorResponse(
        405,
        `Method ${c.req.method} is not allowed on ${clip(c.req.path)}: use ${allowed.join(" or ")}`,
        { allow: allowed.join(", ") },
      );
    }
    return errorResponse(404, `No route ${c.req.method} ${clip(c.req.path)}`);
  });
  app.use("*", async (c, next) => {
    const t0 = performance.now();
    await next();
    const labels = { route: routeOf(c), method: c.req.method, status: String(c.res.status) };
    metrics.requests.inc(labels);
    metrics.latency.observe(labels, (performance.now() - t0) / 1000);
  });
  if (config.cors) {
    app.use(
      "*",
      cors({
        origin: config.cors,
        allowHeaders: ["authorization", "content-type"],
        allowMethods: ["GET", "POST", "OPTIONS"],
        maxAge: 600,
      }),
    );
  }
  if (config.token) {
    const token = config.token;
    app.use("*", async (c, next) => {
      if (OPEN_PATHS.has(c.req.path) || authorized(c.req.header("authorization"), token)) {
        return await next();
      }
      return errorResponse(401, unauthorizedText(c.req.header("authorization")), {
        "www-authenticate": 'Bearer realm="arborist"',
      });
    });
  }
  app.use(
    "*",
    bodyLimit({
      maxSize: config.maxBodyBytes,
      onError: () =>
        errorResponse(413, `The request body is larger than ${config.maxBodyBytes} bytes`),
    }),
  );
  registerBasics(app, ctx);
  registerReason(app, ctx);
  registerOpenAi(app, ctx);
  registerRewards(app, ctx);
  registerRuns(app, ctx);
  return app;
}

function addGauges(ctx: AppContext): void {
  const m = ctx.metrics;
  m.gauge("arborist_queue_waiting", "Requests waiting for a model slot.", () => ctx.queue.waiting);
  m.gauge("arborist_queue_running", "Model requests running.", () => ctx.queue.running);
  m.gauge(
    "arborist_kv_cache_bytes",
    "Bytes held by the policy's KV prefix cache (after its last call).",
    () => ctx.models.current?.policy.cacheBytes ?? 0,
  );
  m.gauge("arborist_models_ready", "1 once the models are loaded.", () => ctx.models.ready ? 1 : 0);
  m.gauge(
    "arborist_process_resident_memory_bytes",
    "Resident set size of the server process.",
    () => Deno.memoryUsage().rss,
  );
}

function registerBasics(app: Hono, ctx: AppContext): void {
  const started = performance.now();
  app.get("/health", (c) =>
    c.json({
      status: "ok",
      version: VERSION,
      ready: ctx.models.ready,
      uptime_seconds: (performance.now() - started) / 1000,
      queue: { running: ctx.queue.running, waiting: ctx.queue.waiting },
    }));
  app.get("/ready", (c) => {
    const m = ctx.models.current;
    if (!m) {
      const why = ctx.models.error
        ? `The models failed to load: ${ctx.models.error.message}`
        : "The models are still loading";
      return errorResponse(503, why, { "retry-after": "2" });
    }
    return c.json({ status: "ready", policy: m.policy.id, reward: m.reward?.id ?? null });
  });
  app.get("/metrics", (c) => {
    c.header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    return c.body(ctx.metrics.render());
  });
  app.get("/openapi.json", (c) => c.json(openApiDocument(ctx.config.limits, VERSION)));
  app.get("/docs", (c) => c.html(DOCS_HTML));
  app.get("/", (c) => c.html(PAGE_HTML));
}
