/**
 * What every route shares: the models (loading in the background until ready), the store,
 * the work queue, the metrics, and the helpers that read a request safely.
 *
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { RewardModel } from "../reward/mod.ts";
import type { RunStore } from "../store/mod.ts";
import type { ServerConfig } from "./_config.ts";
import { apiError, clip } from "./_errors.ts";
import type { Metrics } from "./_metrics.ts";
import { QueueFullError, type Ticket, type WorkQueue } from "./_queue.ts";
import type { ServerPolicy } from "./_served_policy.ts";

/** The loaded models. */
export interface LoadedModels {
  /** The policy, counting its tokens into the metrics. */
  policy: ServerPolicy;
  /** The step reward model, if the server has one. */
  reward?: RewardModel;
}

/** Models that may still be loading. */
export class ModelSlot {
  #models?: LoadedModels;
  #error?: Error;

  /**
   * @param models The models, or a promise of them (the server answers 503 until it settles).
   */
  constructor(models: LoadedModels | Promise<LoadedModels>) {
    if (models instanceof Promise) {
      models.then((m) => this.#models = m, (e) => this.#error = e as Error);
    } else this.#models = models;
  }

  /** True once the models are loaded. */
  get ready(): boolean {
    return this.#models !== undefined;
  }

  /** Why loading failed, if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** The models when loaded, else undefined. */
  get current(): LoadedModels | undefined {
    return this.#models;
  }

  /** The models, or a 503 saying they are still loading (or failed to). */
  need(): LoadedModels {
    if (this.#models) return this.#models;
    if (this.#error) {
      throw apiError(503, `The models failed to load: ${this.#error.message}`);
    }
    throw apiError(503, "The models are still loading; try again shortly", {
      headers: { "retry-after": "2" },
    });
  }
}

/** State shared by the routes. */
export interface AppContext {
  /** The models. */
  models: ModelSlot;
  /** The run store, if any. */
  store?: RunStore;
  /** Settings. */
  config: ServerConfig;
  /** The model work queue. */
  queue: WorkQueue;
  /** Metrics. */
  metrics: Metrics;
  /** Aborted when the server shuts down: cancels every request in flight. */
  shutdown?: AbortSignal;
  /** Told of unexpected errors (the client only sees "internal error"). */
  report(error: unknown): void;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** True for `application/json` and the `+json` types (parameters such as charset aside). */
function isJsonType(contentType: string): boolean {
  const type = contentType.split(";", 1)[0].trim().toLowerCase();
  return type === "application/json" || /^application\/[\w.+-]*\+json$/.test(type);
}

/**
 * The request body as JSON: 415 for a body declared as another media type (a missing
 * `Content-Type` is read as JSON), 400 for an empty body, invalid UTF-8 or broken JSON.
 *
 * @param c The request context.
 * @returns The decoded value.
 */
export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header("content-type");
  if (type !== undefined && type.trim() !== "" && !isJsonType(type)) {
    throw apiError(
      415,
      `Content-Type: the body must be JSON (application/json), got '${
        clip(type.trim(), 100)
      }' (with curl, add -H 'content-type: application/json')`,
    );
  }
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length === 0) throw apiError(400, "The request body is empty: expected a JSON object");
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw apiError(400, "The request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw apiError(400, `The request body is not valid JSON: ${(e as Error).message}`);
  }
}

/** A request's cancellation: the client leaving, the time limit, or the server stopping. */
export interface RequestSignal {
  /** Aborted by any of the three. */
  signal: AbortSignal;
  /** Aborted by the time limit alone. */
  timeout: AbortSignal;
  /** Abort the request's work from the handler (e.g. a closed stream). */
  abort(reason?: unknown): void;
}

/**
 * The signal of a request's work.
 *
 * @param c The request context.
 * @param ctx The app context (time limit, shutdown).
 */
export function requestSignal(c: Context, ctx: AppContext): RequestSignal {
  const timeout = AbortSignal.timeout(Math.ceil(ctx.config.timeoutSeconds * 1000));
  const own = new AbortController();
  const parts = [c.req.raw.signal, timeout, own.signal];
  if (ctx.shutdown) parts.push(ctx.shutdown);
  return {
    signal: AbortSignal.any(parts),
    timeout,
    abort: (reason) =>
      own.abort(reason ?? new DOMException("The request was cancelled", "AbortError")),
  };
}

/**
 * A place in the work queue, or a 429 with `Retry-After` at once when it is full.
 *
 * @param ctx The app context.
 * @param signal Leaves the queue when it aborts.
 */
export function reserve(ctx: AppContext, signal: AbortSignal): Ticket {
  try {
    return ctx.queue.reserve(signal);
  } catch (e) {
    if (e instanceof QueueFullError) {
      ctx.metrics.rejected.inc();
      throw apiError(429, e.message, { headers: { "retry-after": String(e.retryAfter) } });
    }
    throw e;
  }
}

/**
 * The error to answer when a request's work was aborted.
 *
 * @param rs The request's signals.
 * @param ctx The app context.
 */
export function abortError(rs: RequestSignal, ctx: AppContext): Error {
  if (rs.timeout.aborted) {
    return apiError(504, `The request took longer than its time limit and was stopped`);
  }
  if (ctx.shutdown?.aborted) return apiError(503, "The server is shutting down");
  return apiError(499 as ContentfulStatusCode, "The client closed the request");
}
