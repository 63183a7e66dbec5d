// deno-lint-ignore-file no-console -- the server's entry reports on stderr by design
/**
 * `arborist serve`: open the models, listen, and shut down gracefully on SIGINT/SIGTERM
 * (stop accepting, let requests in flight finish up to a deadline, then cancel them, then
 * close the models and the store).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { isUrl } from "../agent/mod.ts";
import { type PolicyModel, RemotePolicy } from "../inference/mod.ts";
import { RemoteReward, type RewardModel } from "../reward/mod.ts";
import { openStore } from "../store/mod.ts";
import { createApp } from "./app.ts";
import { errorResponse, formatZodError } from "./_errors.ts";
import { ServedPolicy } from "./_served_policy.ts";
import { WorkerReward } from "./_worker_reward.ts";

/** The flags of `serve`, in `node:util` `parseArgs` form (for the CLI to merge in). */
export const SERVE_OPTIONS = {
  port: { type: "string" },
  host: { type: "string" },
  policy: { type: "string" },
  reward: { type: "string" },
  db: { type: "string" },
  "auth-token": { type: "string" },
  token: { type: "string" },
  cors: { type: "string" },
  "max-queue": { type: "string" },
  "max-concurrency": { type: "string" },
  "timeout-seconds": { type: "string" },
  "shutdown-seconds": { type: "string" },
  threads: { type: "string" },
  "kv-cache-mib": { type: "string" },
  "api-key": { type: "string" },
  "cached-only": { type: "boolean" },
} as const;

/** One line of usage for `serve`. */
export const SERVE_USAGE =
  "serve [--policy DIR|URL (default: the bundled models/policy)] [--reward DIR|URL (default with it: models/hrm)] [--port 8787] [--host 127.0.0.1] [--db data/arborist.db] [--auth-token T (the database's, for a libsql server; or env LIBSQL_AUTH_TOKEN)] [--token T (or env ARBORIST_TOKEN)] [--cors ORIGIN] [--max-queue 32] [--max-concurrency 2] [--timeout-seconds 300] [--shutdown-seconds 10] [--threads N] [--kv-cache-mib 128] [--api-key K] [--cached-only]";

const int = (min: number, max: number) => z.coerce.number().pipe(z.int().min(min).max(max));

const flagsSchema = z.looseObject({
  port: int(0, 65535).default(8787),
  host: z.string().min(1).default("127.0.0.1"),
  policy: z.string().min(1).optional(),
  reward: z.string().min(1).optional(),
  db: z.string().min(1).default("data/arborist.db"),
  "auth-token": z.string().min(1).optional(),
  token: z.string().min(1).optional(),
  cors: z.string().min(1).optional(),
  "max-queue": int(0, 100_000).optional(),
  "max-concurrency": int(1, 256).optional(),
  "timeout-seconds": z.coerce.number().pipe(z.number().gt(0).max(86_400)).optional(),
  "shutdown-seconds": z.coerce.number().pipe(z.number().min(0).max(3600)).default(10),
  threads: int(1, 256).optional(),
  "kv-cache-mib": int(0, 1 << 20).default(128),
  "api-key": z.string().optional(),
  "cached-only": z.boolean().optional(),
});

/** The checked flags of `serve`. */
export type ServeFlags = z.infer<typeof flagsSchema>;

/** The bundled models: `<repo>/models/policy` and the step reward `<repo>/models/hrm`. */
export const BUNDLED = {
  policy: fileURLToPath(new URL("../models/policy", import.meta.url)),
  reward: fileURLToPath(new URL("../models/hrm", import.meta.url)),
};

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Check the flags of `serve`: types, ranges, the token rule and `--cached-only`.
 *
 * @param values Parsed flags (strings and booleans).
 * @param env Where `ARBORIST_TOKEN` is read (default: the process environment).
 * @param bundled The bundled models where they exist (default: looked up in `models/`); used
 *   when `--policy` is absent.
 * @returns The flags with defaults, `token` filled from the environment.
 * @throws RangeError starting with "--" when a flag is wrong (the CLI exits 2), Error when a
 *   combination is refused.
 */
export function parseServeFlags(
  values: Record<string, unknown>,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  bundled: { policy?: string; reward?: string } = bundledModels(),
): ServeFlags {
  const r = flagsSchema.safeParse(values);
  // A RangeError starting with "--" is a usage error: the CLI prints it and exits 2.
  if (!r.success) throw new RangeError(formatZodError(r.error, values, { prefix: "--" }));
  const f = r.data;
  f.token ??= env("ARBORIST_TOKEN") || undefined;
  if (!f.policy && bundled.policy) {
    f.policy = bundled.policy;
    f.reward ??= bundled.reward;
  }
  if (!f.policy) {
    throw new Error(
      `serve needs --policy DIR|URL (a model directory or an OpenAI-compatible URL): the bundled ${BUNDLED.policy} is not built yet`,
    );
  }
  if (!isLoopback(f.host) && !f.token) {
    throw new Error(
      `Refusing to listen on ${f.host} without a token: anyone who can reach it could use the models. Pass --token T or set ARBORIST_TOKEN (a token is required on every address but loopback), or use --host 127.0.0.1`,
    );
  }
  if (f["cached-only"]) {
    for (const name of ["policy", "reward"] as const) {
      const at = f[name];
      if (at && isUrl(at)) {
        throw new RangeError(
          `--cached-only runs without network: --${name} must be a local directory, got ${at}`,
        );
      }
    }
    if (/^(libsql|https?|wss?):/i.test(f.db)) {
      throw new RangeError(
        `--cached-only runs without network: --db must be a local file, got ${f.db}`,
      );
    }
  }
  return f;
}

function bundledModels(): { policy?: string; reward?: string } {
  const there = (dir: string) => existsSync(`${dir}/config.json`) ? dir : undefined;
  return { policy: there(BUNDLED.policy), reward: there(BUNDLED.reward) };
}

function openPolicyFor(f: ServeFlags): Promise<PolicyModel> {
  const at = f.policy!;
  if (isUrl(at)) return RemotePolicy.connect({ baseUrl: at, apiKey: f["api-key"] });
  return ServedPolicy.load(at, { threads: f.threads, cacheBytes: f["kv-cache-mib"] * 2 ** 20 });
}

function openRewardFor(f: ServeFlags): Promise<RewardModel | undefined> {
  const at = f.reward;
  if (!at) return Promise.resolve(undefined);
  if (isUrl(at)) return RemoteReward.connect({ baseUrl: at, apiKey: f["api-key"] });
  return WorkerReward.load(at, { threads: f.threads });
}

/** One line for a socket that cannot be opened, naming the address. */
function listenError(f: ServeFlags, e: unknown): Error {
  const at = `${
    f.host.includes(":") && !f.host.startsWith("[") ? `[${f.host}]` : f.host
  }:${f.port}`;
  if (e instanceof Deno.errors.AddrInUse) {
    return new Error(
      `Cannot listen on ${at}: the address is already in use (another server is running there?); choose another --port or --host`,
    );
  }
  return new Error(`Cannot listen on ${at}: ${(e as Error)?.message ?? e}`);
}

/** Exit code after a second SIGINT/SIGTERM cut the shutdown short (128 + SIGINT). */
const FORCED_EXIT = 130;

/**
 * Run the server until SIGINT or SIGTERM. It listens before it opens the database and the
 * models, so a taken port fails at once and leaves no file behind. The first signal stops
 * accepting and gives requests in flight `--shutdown-seconds` to finish; a second one cancels
 * them at once and the command ends with {@linkcode FORCED_EXIT}.
 *
 * @param values The flags (see {@linkcode SERVE_OPTIONS}).
 * @returns When the server has stopped and everything is closed: nothing after a graceful stop,
 *   130 after a second signal.
 * @throws Error naming host:port when the socket cannot be opened.
 */
export async function serveCommand(values: Record<string, unknown>): Promise<void | number> {
  const f = parseServeFlags(values);
  let handle: (req: Request) => Response | Promise<Response> = () =>
    errorResponse(503, "The server is starting", { "retry-after": "1" });
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      port: f.port,
      hostname: f.host,
      onListen: (a) => console.error(`arborist: listening on http://${a.hostname}:${a.port}/`),
    }, (req) => handle(req));
  } catch (e) {
    throw listenError(f, e);
  }
  let store: Awaited<ReturnType<typeof openStore>>;
  try {
    store = await openStore(f.db, {
      authToken: f["auth-token"] ?? Deno.env.get("LIBSQL_AUTH_TOKEN") ?? undefined,
    });
  } catch (e) {
    await server.shutdown();
    throw e;
  }
  const policy = openPolicyFor(f);
  const reward = openRewardFor(f);
  const stop = new AbortController();
  const app = createApp({
    policy,
    reward,
    store,
    signal: stop.signal,
    config: {
      token: f.token,
      cors: f.cors,
      maxQueue: f["max-queue"],
      maxConcurrency: f["max-concurrency"],
      timeoutSeconds: f["timeout-seconds"],
    },
    onError: (e) => console.error(`arborist: internal error: ${(e as Error)?.stack ?? e}`),
  });
  handle = (req) => app.fetch(req);
  const closeAll = async () => {
    const settled = await Promise.allSettled([policy, reward]);
    await Promise.allSettled([
      ...settled.map((s) => s.status === "fulfilled" ? s.value?.close() : undefined),
      store.close(),
    ]);
  };
  let stopping: Promise<void> | undefined;
  let forced: (() => void) | undefined;
  const cutShort = new Promise<void>((resolve) => forced = resolve);
  let exitCode: number | undefined;
  let forceTimer: ReturnType<typeof setTimeout> | undefined;
  const onSignal = () => {
    if (stopping) {
      if (exitCode !== undefined) return;
      exitCode = FORCED_EXIT;
      console.error("arborist: second signal: cancelling the requests in flight and exiting");
      stop.abort(new DOMException("shutdown", "AbortError"));
      // Whatever still holds the server after a short while is not waited for.
      forceTimer = setTimeout(() => forced?.(), 2000);
      return;
    }
    const secs = f["shutdown-seconds"];
    console.error(
      `arborist: stopping; requests in flight get ${secs} s to finish (a second signal stops at once)`,
    );
    const timer = setTimeout(
      () => stop.abort(new DOMException("shutdown", "AbortError")),
      secs * 1000,
    );
    stopping = server.shutdown().finally(() => clearTimeout(timer));
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    const [p, r] = await Promise.all([policy, reward]).catch((e) => {
      console.error(`arborist: cannot load the models: ${(e as Error).message}`);
      onSignal();
      throw e;
    });
    console.error(`arborist: ready (policy ${p.id}${r ? `, reward ${r.id}` : ""})`);
    await Promise.race([server.finished.then(() => stopping), cutShort]);
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    const closing = closeAll();
    if (exitCode === undefined) await closing;
    else {
      let t: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([closing, new Promise((ok) => t = setTimeout(ok, 2000))]);
      clearTimeout(t);
    }
    clearTimeout(forceTimer);
    console.error("arborist: stopped");
  }
  return exitCode;
}
