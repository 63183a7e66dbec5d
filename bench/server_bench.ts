/**
 * Load benchmark of the HTTP server with the tiny test models: a second process (this file
 * run with `--load`) drives `POST /v1/rewards` and `POST /v1/reason` (plain and as 100
 * concurrent SSE streams) on loopback; this process serves and samples its own resident
 * memory (the models' workers included). Throughput, p50/p99 latency, peak RSS; the SSE
 * round runs twice with new seeds, so a second peak no higher than the first shows memory
 * stays bounded.
 *
 * Run alone: `deno run -A bench/server_bench.ts` (add `--quick` for a smoke run).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { createApp, ServedPolicy, WorkerReward } from "../server/mod.ts";

const POLICY = fileURLToPath(new URL("../tests/testdata/models/decoder-fp32", import.meta.url));
const REWARD = fileURLToPath(new URL("../tests/testdata/models/reward-paper-2", import.meta.url));

/** One load scenario. */
export interface Scenario {
  /** Name in the report. */
  name: string;
  /** Route. */
  path: string;
  /** JSON body. */
  body: Record<string, unknown>;
  /** Requests in flight at once. */
  concurrency: number;
  /** Requests in all. */
  requests: number;
  /** Give request i the seed `seedBase + i` (different searches; absent: the body's seed). */
  seedBase?: number;
}

/** What one scenario measured (the load generator's view). */
export interface ScenarioResult {
  /** Scenario name. */
  name: string;
  /** Requests in flight at once. */
  concurrency: number;
  /** Requests sent. */
  requests: number;
  /** Answered 200 (streams: read to their `result` event). */
  ok: number;
  /** Answered 429 (queue full). */
  rejected: number;
  /** Anything else. */
  failed: number;
  /** Completed requests per second. */
  rps: number;
  /** Median latency to the whole answer (streams: to the end of the stream), ms. */
  p50Ms: number;
  /** 99th percentile latency, ms. */
  p99Ms: number;
  /** Wall seconds. */
  seconds: number;
  /** Peak resident memory of the server process during the scenario, MiB. */
  peakRssMiB: number;
}

/** What {@linkcode benchServer} measured. */
export interface ServerBenchResult {
  /** Per scenario. */
  scenarios: ScenarioResult[];
  /** Server RSS after loading the models, before any load, MiB. */
  idleRssMiB: number;
  /** Server RSS after all scenarios, MiB. */
  finalRssMiB: number;
  /** The policy's KV cache after all scenarios, MiB (searches free theirs when they end). */
  finalKvCacheMiB: number;
  /** The server's limits during the run. */
  server: { maxConcurrency: number; maxQueue: number };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** One request to its end: 200 only when a stream ended with its `result` event. */
async function once(url: string, s: Scenario, i: number): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const body = s.seedBase === undefined ? s.body : { ...s.body, seed: s.seedBase + i };
  const res = await fetch(url + s.path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let status = res.status;
  if (status === 200 && s.body.stream && !text.includes("event: result")) status = 599;
  return { status, ms: performance.now() - t0 };
}

/** The load generator (runs in the second process). */
async function drive(url: string, s: Scenario): Promise<Omit<ScenarioResult, "peakRssMiB">> {
  const latencies: number[] = [];
  let next = 0, ok = 0, rejected = 0, failed = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < s.requests) {
      const r = await once(url, s, next++).catch(() => ({ status: 0, ms: 0 }));
      if (r.status === 200) {
        ok++;
        latencies.push(r.ms);
      } else if (r.status === 429) rejected++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, lane));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    name: s.name,
    concurrency: s.concurrency,
    requests: s.requests,
    ok,
    rejected,
    failed,
    rps: ok / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    seconds,
  };
}

/** Run one scenario in a second process; sample this process's RSS meanwhile. */
async function runScenario(
  url: string,
  s: Scenario,
  timeoutMs: number,
): Promise<ScenarioResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", fileURLToPath(import.meta.url), "--load", url, JSON.stringify(s)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let peak = Deno.memoryUsage().rss;
  const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 50);
  const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    if (!out.success) throw new Error(`the load generator of '${s.name}' failed (${out.code})`);
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    return { ...r, peakRssMiB: peak / 2 ** 20 };
  } finally {
    clearInterval(sampler);
    clearTimeout(killer);
  }
}

/** The scenarios (smaller with `quick`). */
export function scenarios(quick = false): Scenario[] {
  const q = "Tom has 3 apples and buys 4 more. How many apples does he have?";
  const steps = ["Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is 7."];
  const search = { question: q, k: 3, max_step_tokens: 16, budget: { simulations: 8 } };
  const small = { question: q, k: 2, max_step_tokens: 8, budget: { simulations: 4 } };
  return [
    {
      name: "rewards",
      path: "/v1/rewards",
      body: { question: q, steps },
      concurrency: 16,
      requests: quick ? 80 : 400,
    },
    {
      name: "reason",
      path: "/v1/reason",
      body: search,
      concurrency: 8,
      requests: quick ? 8 : 40,
      seedBase: 0,
    },
    ...[1, 2].map((round) => ({
      name: `reason-sse-100 #${round}`,
      path: "/v1/reason",
      body: { ...small, stream: true },
      concurrency: 100,
      requests: quick ? 100 : 200,
      seedBase: round * 1000,
    })),
  ];
}

/**
 * Serve the tiny models on loopback and load them from a second process.
 *
 * @param options `quick` for a smoke run; the server's concurrency and queue.
 * @returns Throughput, latency and memory per scenario.
 */
export async function benchServer(
  options: { quick?: boolean; maxConcurrency?: number; maxQueue?: number } = {},
): Promise<ServerBenchResult> {
  const maxConcurrency = options.maxConcurrency ?? 4;
  const maxQueue = options.maxQueue ?? 128;
  const [policy, reward] = await Promise.all([
    ServedPolicy.load(POLICY, { threads: 1, cacheBytes: 128 * 2 ** 20 }), // as `serve`
    WorkerReward.load(REWARD, { threads: 1 }),
  ]);
  const app = createApp({ policy, reward, config: { maxConcurrency, maxQueue } });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  try {
    const idleRssMiB = Deno.memoryUsage().rss / 2 ** 20;
    const results: ScenarioResult[] = [];
    for (const s of scenarios(options.quick)) results.push(await runScenario(url, s, 300_000));
    return {
      scenarios: results,
      idleRssMiB,
      finalRssMiB: Deno.memoryUsage().rss / 2 ** 20,
      finalKvCacheMiB: policy.cacheBytes / 2 ** 20,
      server: { maxConcurrency, maxQueue },
    };
  } finally {
    await server.shutdown();
    await Promise.allSettled([policy.close(), reward.close()]);
  }
}

/** The results as a markdown table. */
export function serverTable(r: ServerBenchResult): string {
  const rows = r.scenarios.map((s) =>
    `| ${s.name} | ${s.concurrency} | ${s.ok}/${s.requests} | ${s.rejected} | ${
      s.rps.toFixed(1)
    } | ${s.p50Ms.toFixed(0)} | ${s.p99Ms.toFixed(0)} | ${s.peakRssMiB.toFixed(0)} |`
  );
  return [
    `Server: max concurrency ${r.server.maxConcurrency}, queue ${r.server.maxQueue}; RSS idle ${
      r.idleRssMiB.toFixed(0)
    } MiB, after ${r.finalRssMiB.toFixed(0)} MiB; KV cache after ${
      r.finalKvCacheMiB.toFixed(1)
    } MiB`,
    "",
    "| scenario | concurrent | ok | 429 | req/s | p50 ms | p99 ms | peak RSS MiB |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { load: { type: "string" }, quick: { type: "boolean" } },
    allowPositionals: true,
  });
  const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
  if (values.load) {
    out(JSON.stringify(await drive(values.load, JSON.parse(positionals[0]))));
  } else {
    const r = await benchServer({ quick: values.quick });
    out(serverTable(r));
    out(JSON.stringify(r));
  }
}
