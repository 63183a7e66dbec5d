/**
 * Errors of the HTTP API: one JSON shape, `{"error": {"type", "message"}}`, for every failure,
 * and zod issues turned into one line that names the field, the rule and the value given.
 *
 * @module
 */
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";

/** The error types clients see, by status. */
export const ERROR_TYPES: Readonly<Record<number, string>> = {
  400: "invalid_request",
  401: "unauthorized",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
  499: "cancelled",
  500: "internal_error",
  503: "unavailable",
  504: "timeout",
};

/** The JSON body of every error response. */
export interface ErrorBody {
  /** What went wrong. */
  error: { type: string; message: string };
}

/**
 * An HTTP error with the API's JSON body.
 *
 * @param status The status code.
 * @param message One line for the client.
 * @param options Extra response headers (e.g. `Retry-After`, `WWW-Authenticate`).
 * @returns The exception to throw.
 */
export function apiError(
  status: ContentfulStatusCode,
  message: string,
  options: { headers?: Record<string, string>; type?: string } = {},
): HTTPException {
  const body: ErrorBody = { error: { type: options.type ?? typeOf(status), message } };
  const res = new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...options.headers },
  });
  return new HTTPException(status, { message, res });
}

/** The error type of a status. */
export function typeOf(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? "internal_error" : "invalid_request");
}

/** The JSON error response of `status` (for code that builds responses itself). */
export function errorResponse(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  const body: ErrorBody = { error: { type: typeOf(status), message } };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** The value at `path` inside `data` (undefined where the path leaves it). */
function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = data;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

/** A short rendering of a value a client sent. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length === 0 ? "an empty array" : `an array of ${v.length}`;
  if (typeof v === "string") {
    return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  }
  if (typeof v === "object") return "an object";
  if (typeof v === "number" && !Number.isFinite(v)) return "a number too large to represent";
  return String(v);
}

/**
 * A client-given string to quote in a message, cut to `max` characters so that a huge value
 * does not fill the response (`"abc…" (5000 characters)`).
 *
 * @param s The string.
 * @param max Characters kept (default 64).
 * @returns The string itself when short, else its start and its length.
 */
export function clip(s: string, max = 64): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters)`;
}

function boundText(
  issue: { origin?: string; inclusive?: boolean },
  limit: unknown,
  side: "max" | "min",
): string {
  const op = side === "max" ? (issue.inclusive === false ? "<" : "<=") : (
    issue.inclusive === false ? ">" : ">="
  );
  const most = side === "max" ? "at most" : "at least";
  if (issue.origin === "string") return `must have ${most} ${plural(Number(limit), "character")}`;
  if (issue.origin === "array") return `must have ${most} ${plural(Number(limit), "item")}`;
  return `must be ${op} ${limit}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function isBlank(v: unknown): boolean {
  return typeof v === "string" && v.trim() === "";
}

function got(v: unknown, origin?: string): string {
  if (origin === "string" && typeof v === "string") return plural(v.length, "character");
  if (origin === "array" && Array.isArray(v)) return plural(v.length, "item");
  return describe(v);
}

/** One zod issue as `"path: rule, got value"`. */
function issueLine(issue: z.core.$ZodIssue, data: unknown): string {
  const where = issue.path.length ? issue.path.map(String).join(".") : "body";
  const v = valueAt(data, issue.path);
  switch (issue.code) {
    case "too_big":
      return `${where}: ${boundText(issue, issue.maximum, "max")}, got ${got(v, issue.origin)}`;
    case "too_small":
      if (issue.origin === "string" && Number(issue.minimum) === 1 && isBlank(v)) {
        return `${where}: must not be empty`;
      }
      return `${where}: ${boundText(issue, issue.minimum, "min")}, got ${got(v, issue.origin)}`;
    case "invalid_type":
      if (v === undefined) return `${where}: is required (${issue.expected})`;
      if (typeof v === "number" && !Number.isFinite(v)) {
        return `${where}: must be a finite number, got a number too large to represent`;
      }
      return `${where}: must be ${article(issue.expected)}, got ${kindOf(v)}`;
    case "invalid_union":
      return unionLine(where, issue, data);
    case "invalid_value":
      return `${where}: must be one of ${
        issue.values.map((x) => JSON.stringify(x)).join(", ")
      }, got ${describe(v)}`;
    case "unrecognized_keys":
      return `${where}: unknown field${issue.keys.length > 1 ? "s" : ""} ${
        issue.keys.map((k) => `'${k}'`).join(", ")
      }`;
    case "invalid_format":
      if (issue.format === "regex") return `${where}: ${issue.message}, got ${describe(v)}`;
      return `${where}: must be a valid ${issue.format}, got ${describe(v)}`;
    case "not_multiple_of":
      return `${where}: must be a multiple of ${issue.divisor}, got ${describe(v)}`;
    default:
      return `${where}: ${issue.message}`;
  }
}

/**
 * A failed union (a field that takes several forms): what it accepts, what was sent and, when
 * exactly one form matched the value's type, why that form failed. The accepted forms come
 * from the union's own `error` text where the schema gives one (`z.union([...], { error:
 * "a string or an array of strings" })`), else from the types its branches expect.
 */
function unionLine(
  where: string,
  issue: z.core.$ZodIssueInvalidUnion,
  data: unknown,
): string {
  const v = valueAt(data, issue.path);
  const branches = issue.errors ?? [];
  const rootType = (b: readonly z.core.$ZodIssue[]) =>
    b.find((i) => i.code === "invalid_type" && i.path.length === 0) as
      | z.core.$ZodIssueInvalidType
      | undefined;
  const own = issue.message && !/^Invalid input/.test(issue.message) ? issue.message : undefined;
  const forms = own ??
    orList(
      [...new Set(branches.map((b) => rootType(b)?.expected).filter((e) => e))].map((e) =>
        article(e!)
      ),
    );
  if (v === undefined) return `${where}: is required (${forms || "a value"})`;
  const line = `${where}: expected ${forms || "another value"}, got ${valueKind(v)}`;
  const matched = branches.filter((b) => b.length > 0 && !rootType(b));
  if (matched.length !== 1) return line;
  const inner = matched[0][0];
  if (inner.path.length === 0 && (inner.code === "too_small" || inner.code === "too_big")) {
    return `${line} (${issueLine(inner, v).replace(/^body: /, "")})`;
  }
  return `${line} (${issueLine({ ...inner, path: [...issue.path, ...inner.path] }, data)})`;
}

/** "a, b or c". */
function orList(items: string[]): string {
  return items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} or ${items.at(-1)}`;
}

/** What a value is, in a few words: `an empty array`, `an array of integers and strings`. */
function valueKind(v: unknown): string {
  if (!Array.isArray(v)) return kindOf(v);
  if (v.length === 0) return "an empty array";
  const kinds = [...new Set(v.map(elementKind))];
  return `an array of ${orList(kinds).replace(/ or ([^ ]+)$/, " and $1")}`;
}

function elementKind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "arrays";
  if (typeof v === "number") return Number.isInteger(v) ? "integers" : "numbers";
  return `${typeof v}s`;
}

function article(expected: string): string {
  if (expected === "int") return "an integer";
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number" && !Number.isInteger(v)) return `the number ${v}`;
  if (typeof v === "number") return `the integer ${v}`;
  if (typeof v === "string") return `the string ${describe(v)}`;
  return `${article(typeof v)}`;
}

/**
 * The issues of a failed parse as one message.
 *
 * @param error The zod error.
 * @param data What was parsed (to quote the values given).
 * @param options `prefix` put before each issue (e.g. "--" for command-line flags).
 * @returns E.g. `"budget.simulations: must be <= 512, got 100000"`; issues joined by "; ",
 *   repeated lines once.
 */
export function formatZodError(
  error: z.ZodError,
  data: unknown,
  options: { prefix?: string } = {},
): string {
  // One value can break two rules that read the same (zod's int() and max() on 1e300).
  const all = [...new Set(error.issues.map((i) => (options.prefix ?? "") + issueLine(i, data)))];
  const lines = all.slice(0, 5);
  if (all.length > 5) lines.push(`and ${all.length - 5} more`);
  return lines.join("; ");
}

/**
 * Parse `data` with `schema`, or throw a 400 naming the field.
 *
 * @param schema The schema.
 * @param data The decoded JSON.
 * @returns The parsed value.
 */
export function parseOr400<S extends z.ZodType>(schema: S, data: unknown): z.output<S> {
  const r = schema.safeParse(data);
  if (!r.success) throw apiError(400, formatZodError(r.error, data));
  return r.data;
}

/** True for the errors an aborted signal gives. */
export function isAbort(e: unknown): boolean {
  return (e instanceof DOMException && (e.name === "AbortError" || e.name === "TimeoutError")) ||
    (e instanceof Error && (e.name === "AbortError" || e.name === "TimeoutError"));
}
