/**
 * JSON over HTTP with per-attempt timeouts and retries, shared by the remote policy and the
 * remote reward model (re-exported through `mod.ts`).
 *
 * @module
 */

/** Options of {@linkcode postJson} and {@linkcode getJson}. */
/**
 * The HTTP settings among a remote backend's options (everything but the signal).
 *
 * @param o Options that carry HTTP settings.
 * @returns Just those settings.
 */
export function httpOptionsOf(o: Omit<HttpOptions, "signal">): HttpOptions {
  return {
    apiKey: o.apiKey,
    timeoutMs: o.timeoutMs,
    retries: o.retries,
    backoffMs: o.backoffMs,
    maxBackoffMs: o.maxBackoffMs,
  };
}

/** Settings of one HTTP call with retries. */
export interface HttpOptions {
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Time limit of one attempt in milliseconds, body included (default 60 000). */
  timeoutMs?: number;
  /** Further attempts after the first on 408, 429, 5xx, network errors and timeouts (default 3). */
  retries?: number;
  /** Base of the exponential backoff in milliseconds (default 500): attempt i waits about base * 2^(i-1). */
  backoffMs?: number;
  /** Longest wait between attempts, `Retry-After` included (default 30 000). */
  maxBackoffMs?: number;
  /** Cancels the request and any wait between attempts; never retried. */
  signal?: AbortSignal;
}

/** Why a {@linkcode RemoteError} was thrown. */
export type RemoteErrorKind = "http" | "network" | "timeout" | "invalid-response";

/**
 * A remote server failed: an HTTP error status, a network error, a timeout, or a response
 * that could not be read. Thrown after the retries are spent (or at once where retrying
 * cannot help, e.g. HTTP 400).
 */
export class RemoteError extends Error {
  /** What went wrong. */
  readonly kind: RemoteErrorKind;
  /** The URL requested. */
  readonly url: string;
  /** The HTTP status, when the server answered. */
  readonly status: number | undefined;
  /** The server's message (or the start of its body), truncated to 500 characters. */
  readonly body: string;
  /** Attempts made. */
  readonly attempts: number;

  /**
   * Create the error.
   *
   * @param message What happened, naming the URL.
   * @param details The fields above, and the underlying error as `cause`.
   */
  constructor(
    message: string,
    details: {
      kind: RemoteErrorKind;
      url: string;
      status?: number;
      body?: string;
      attempts?: number;
      cause?: unknown;
    },
  ) {
    super(message, { cause: details.cause });
    this.name = "RemoteError";
    this.kind = details.kind;
    this.url = details.url;
    this.status = details.status;
    this.body = details.body ?? "";
    this.attempts = details.attempts ?? 1;
  }
}

const BODY_LIMIT = 500;
const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);

interface Settings {
  apiKey?: string;
  timeoutMs: number;
  retries: number;
  backoffMs: number;
  maxBackoffMs: number;
}

type Outcome =
  | { ok: true; value: unknown }
  | { ok: false; error: RemoteError; retry: boolean; waitMs?: number };

/**
 * POST `body` as JSON and parse the JSON answer, retrying transient failures.
 *
 * @param url The endpoint.
 * @param body Any JSON-serializable value.
 * @param options Key, timeout, retries, signal.
 * @returns The parsed response body.
 * @throws RemoteError when the server fails (after retries where they apply); the signal's
 * reason when `options.signal` aborts; RangeError for bad options.
 * @example
 * ```ts
 * const out = await postJson("http://127.0.0.1:8000/v1/completions", { prompt: "Hi" }, {
 *   timeoutMs: 10_000,
 * });
 * ```
 */
export function postJson(url: string, body: unknown, options: HttpOptions = {}): Promise<unknown> {
  return requestJson(url, "POST", body, options);
}

/**
 * GET `url` and parse the JSON answer, retrying transient failures.
 *
 * @param url The endpoint.
 * @param options Key, timeout, retries, signal.
 * @returns The parsed response body.
 * @throws RemoteError, the signal's reason, or RangeError, as {@linkcode postJson}.
 */
export function getJson(url: string, options: HttpOptions = {}): Promise<unknown> {
  return requestJson(url, "GET", undefined, options);
}

/**
 * The server root of an OpenAI-compatible base URL: trailing slashes and a trailing `/v1`
 * removed, so that both `http://host:8000` and `http://host:8000/v1/` work.
 *
 * @param baseUrl The base URL as the user gave it.
 * @returns The root, e.g. `http://host:8000`.
 * @throws TypeError when `baseUrl` is not an http(s) URL.
 */
export function serverRoot(baseUrl: string): string {
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    throw new TypeError(`Cannot use 'baseUrl' as it is not a URL: current value is "${baseUrl}"`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new TypeError(`Cannot use 'baseUrl' as it is not http(s): current value is "${baseUrl}"`);
  }
  return u.href.replace(/\/+$/, "").replace(/\/v1$/, "");
}

/**
 * The first model id a server lists at `GET /v1/models`.
 *
 * @param baseUrl Server root or `.../v1` URL.
 * @param options As {@linkcode getJson}.
 * @returns The id of `data[0]`.
 * @throws RemoteError when the server fails or lists no model.
 */
export async function firstModelId(baseUrl: string, options: HttpOptions = {}): Promise<string> {
  const url = `${serverRoot(baseUrl)}/v1/models`;
  const out = await getJson(url, options) as { data?: { id?: unknown }[] } | null;
  const id = Array.isArray(out?.data) ? out.data[0]?.id : undefined;
  if (typeof id !== "string" || id === "") {
    throw new RemoteError(
      `GET ${url} listed no model (expected {"data": [{"id": "..."}]}); pass 'model' explicitly`,
      { kind: "invalid-response", url, body: truncate(JSON.stringify(out) ?? "") },
    );
  }
  return id;
}

async function requestJson(
  url: string,
  method: "GET" | "POST",
  body: unknown,
  options: HttpOptions,
): Promise<unknown> {
  const s = settings(options);
  const attempts = s.retries + 1;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  for (let i = 1;; i++) {
    options.signal?.throwIfAborted();
    const r = await attempt(url, method, payload, s, options.signal);
    if (r.ok) return r.value;
    if (!r.retry || i >= attempts) throw withAttempts(r.error, i);
    await sleep(Math.min(r.waitMs ?? backoff(s, i), s.maxBackoffMs), options.signal);
  }
}

function settings(o: HttpOptions): Settings {
  const s = {
    apiKey: o.apiKey,
    timeoutMs: o.timeoutMs ?? 60_000,
    retries: o.retries ?? 3,
    backoffMs: o.backoffMs ?? 500,
    maxBackoffMs: o.maxBackoffMs ?? 30_000,
  };
  for (const key of ["timeoutMs", "backoffMs", "maxBackoffMs"] as const) {
    if (!(Number.isFinite(s[key]) && s[key] >= 0)) {
      throw new RangeError(
        `Cannot send the request as '${key}' must be a number >= 0: current value is ${s[key]}`,
      );
    }
  }
  if (!Number.isInteger(s.retries) || s.retries < 0) {
    throw new RangeError(
      `Cannot send the request as 'retries' must be an integer >= 0: current value is ${s.retries}`,
    );
  }
  return s;
}

/** One attempt: fetch, read, parse; classify failures as retryable or not. */
async function attempt(
  url: string,
  method: string,
  payload: string | undefined,
  s: Settings,
  signal: AbortSignal | undefined,
): Promise<Outcome> {
  const timeout = AbortSignal.timeout(s.timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const headers: Record<string, string> = { accept: "application/json" };
  if (payload !== undefined) headers["content-type"] = "application/json";
  if (s.apiKey) headers.authorization = `Bearer ${s.apiKey}`;
  let text: string;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: payload, signal: combined });
    text = await res.text();
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if (timeout.aborted) {
      const error = new RemoteError(`${method} ${url} timed out after ${s.timeoutMs} ms`, {
        kind: "timeout",
        url,
        cause: e,
      });
      return { ok: false, error, retry: true };
    }
    const error = new RemoteError(`${method} ${url} failed: ${(e as Error)?.message ?? e}`, {
      kind: "network",
      url,
      cause: e,
    });
    return { ok: false, error, retry: true };
  }
  if (!res.ok) return httpFailure(url, method, res, text);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    const error = new RemoteError(
      `${method} ${url} answered HTTP ${res.status} with a body that is not JSON: ${
        truncate(text)
      }`,
      { kind: "invalid-response", url, status: res.status, body: truncate(text), cause: e },
    );
    return { ok: false, error, retry: false };
  }
}

function httpFailure(url: string, method: string, res: Response, text: string): Outcome {
  const message = serverMessage(text);
  const error = new RemoteError(
    `${method} ${url} failed with HTTP ${res.status}${
      res.statusText ? ` ${res.statusText}` : ""
    }: ${message || "(empty body)"}`,
    { kind: "http", url, status: res.status, body: message },
  );
  const retry = RETRY_STATUS.has(res.status) || res.status >= 500;
  return { ok: false, error, retry, waitMs: retryAfterMs(res.headers.get("retry-after")) };
}

/** The `message` of an OpenAI/vLLM error body (`{error: {message}}` or `{message}`), else the text. */
function serverMessage(text: string): string {
  try {
    const j = JSON.parse(text);
    const m = j?.error?.message ?? j?.message ?? j?.detail ??
      (typeof j?.error === "string" ? j.error : undefined);
    if (typeof m === "string") return truncate(m);
    if (m !== undefined) return truncate(JSON.stringify(m));
  } catch {
    // not JSON: use the raw text
  }
  return truncate(text.trim());
}

function truncate(s: string): string {
  return s.length > BODY_LIMIT ? `${s.slice(0, BODY_LIMIT)}... (${s.length} chars)` : s;
}

/** Milliseconds from a `Retry-After` header (seconds or an HTTP date), if it has one. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Exponential backoff with jitter: uniform in [d/2, d], d = base * 2^(attempt-1). */
function backoff(s: Settings, attempt: number): number {
  const d = s.backoffMs * 2 ** (attempt - 1);
  return d / 2 + Math.random() * d / 2;
}

function withAttempts(e: RemoteError, attempts: number): RemoteError {
  if (attempts === 1) return e;
  return new RemoteError(`${e.message} (after ${attempts} attempts)`, {
    kind: e.kind,
    url: e.url,
    status: e.status,
    body: e.body,
    attempts,
    cause: e.cause,
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
