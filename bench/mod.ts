/**
 * `deno task bench`: every benchmark in one run, progress on stderr, a markdown report on
 * stdout (and in `--out FILE` when given).
 *
 * Options: `--quick` (fewer rounds, shorter sequences: a smoke run), `--only
 * decode|siblings|reward|malloc|search|store|server` (repeatable or comma-separated), `--out
 * FILE`.
 *
 * @module
 */
// deno-lint-ignore-file no-console
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import {
  benchDecode,
  benchMalloc,
  benchReward,
  benchSiblings,
  type DecodeResult,
  MALLOC_ENV,
  type MallocResult,
  type RewardResult,
  type SiblingsResult,
  THREADS,
} from "./engine_bench.ts";
import { benchSearch, type SearchBenchResult } from "./search_bench.ts";
import { benchServer, type ServerBenchResult, serverTable } from "./server_bench.ts";
import { benchStore, type StoreBenchResult } from "./store_bench.ts";
import {
  fmt,
  median,
  pairedRatio,
  PRESSURE,
  progress,
  type Row,
  since,
  spread,
  table,
  verdict,
} from "./_stats.ts";
import { TJS_VERSION } from "./_tjs.ts";

// The cheap sections first: the server's memory figures are this process's RSS, which the
// 2 GB model sessions would leave raised.
const SECTIONS = [
  "search",
  "store",
  "server",
  "decode",
  "siblings",
  "reward",
  "malloc",
] as const;
type Section = typeof SECTIONS[number];

interface Results {
  decode?: DecodeResult;
  siblings?: SiblingsResult;
  reward?: RewardResult;
  malloc?: MallocResult;
  search?: SearchBenchResult;
  store?: StoreBenchResult;
  server?: ServerBenchResult;
}

/** The usage line of `deno task bench`. */
export const BENCH_USAGE = `deno task bench [--quick] [--only ${
  SECTIONS.join("|")
}]... [--out FILE]`;

/** A bad flag: one line and exit code 2, like the CLI's. */
export class BenchUsageError extends Error {
  override name = "BenchUsageError";
}

function parse(args: string[]): { quick: boolean; only: Section[]; out?: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        quick: { type: "boolean", default: false },
        only: { type: "string", multiple: true },
        out: { type: "string" },
      },
    }));
  } catch (e) {
    throw new BenchUsageError(`${(e as Error).message}; usage: ${BENCH_USAGE}`);
  }
  const only = (values.only ?? []).flatMap((s) => s.split(","));
  if (values.only !== undefined && only.filter(Boolean).length === 0) {
    throw new BenchUsageError(`--only needs a section: one of ${SECTIONS.join(", ")}`);
  }
  for (const s of only) {
    if (!(SECTIONS as readonly string[]).includes(s)) {
      throw new BenchUsageError(
        `--only must name sections among ${SECTIONS.join(", ")}: got '${s}'`,
      );
    }
  }
  return {
    quick: values.quick!,
    only: only.length ? only as Section[] : [...SECTIONS],
    out: values.out,
  };
}

async function machine(): Promise<string[]> {
  const read = (p: string) => Deno.readTextFile(p).catch(() => "");
  const cpu = (await read("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "?";
  const memKb = Number((await read("/proc/meminfo")).match(/^MemTotal:\s*(\d+)/m)?.[1] ?? NaN);
  const os = (await read("/etc/os-release")).match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1] ?? "?";
  return [
    `- CPU: ${cpu}, nproc ${navigator.hardwareConcurrency}`,
    `- RAM: ${(memKb / 2 ** 20).toFixed(1)} GiB`,
    `- OS: ${os}, kernel ${Deno.osRelease()} (${Deno.build.arch})`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), onnxruntime-node ${ort.env.versions.node}, @huggingface/transformers ${TJS_VERSION}`,
    `- Date: ${new Date().toUTCString()}`,
  ];
}

/** A row with the CPU pressure (other processes) seen during a section. */
function pressureRow(raw: Record<string, number[]>): Row {
  const p = raw[PRESSURE] ?? [];
  return {
    measure: "CPU pressure after each measurement (/proc/pressure/cpu some avg10)",
    value: `${fmt(median(p))}%`,
    note: `range ${spread(p)}%: time in which a runnable task waited for a CPU`,
  };
}

const gb = (bytesPerS: number) => `${(bytesPerS / 1e9).toFixed(1)} GB/s`;
const tokS = (ms: number) => `${fmt(ms)} ms/token (${fmt(1000 / ms)} tok/s)`;

function decodeTable(d: DecodeResult): string {
  const r = d.raw;
  const tjs = typeof d.tjsMs === "number"
    ? {
      value: tokS(d.tjsMs),
      note: `${(d.bareMs / d.tjsMs).toFixed(3)} x bare speed (paired by round ${
        pairedRatio(r["bare (ms/step)"], r["transformers.js (ms/step)"]).toFixed(3)
      }); range ${spread(r["transformers.js (ms/step)"])} ms; same tokens as bare: ${
        d.agree.tjs ? "yes" : "no"
      }; its prefill ${fmt(d.tjsPrefillS ?? NaN)} s`,
    }
    : { value: "n/a", note: d.tjsMs };
  const ratio = d.bareMs / d.projectMs;
  const paired = pairedRatio(r["bare (ms/step)"], r["project (ms/step)"]);
  const p = d.profile;
  const rows: Row[] = [
    {
      measure: "read bandwidth, JS loop summing 1 GiB Float64Array (1 thread)",
      value: gb(d.bandwidth.js),
      note: `range ${spread(r["bandwidth js (GB/s)"])}; DESIGN.md's C loop: ~25 GB/s`,
    },
    {
      measure: "read bandwidth, onnxruntime ReduceSum over 1 GiB, 1 thread",
      value: gb(d.bandwidth.ort1),
      note: `range ${spread(r["bandwidth ort 1 thread (GB/s)"])}`,
    },
    {
      measure: "read bandwidth, onnxruntime ReduceSum over 1 GiB, 2 threads",
      value: gb(d.bandwidth.ort2),
      note: `range ${spread(r["bandwidth ort 2 threads (GB/s)"])}; used for the ceiling`,
    },
    {
      measure: `ceiling: ${
        (d.weightBytes / 1e9).toFixed(3)
      } GB of weights read per token / 2-thread bandwidth`,
      value: tokS(d.ceilingMs),
      note: "no decode can beat this",
    },
    {
      measure:
        `bare onnxruntime-node loop (${d.steps} decode steps after ${d.promptTokens} tokens)`,
      value: tokS(d.bareMs),
      note: `${(d.ceilingMs / d.bareMs).toFixed(2)} of the ceiling's speed; range ${
        spread(r["bare (ms/step)"])
      } ms`,
    },
    {
      measure: "project `OnnxPolicy.generate()` (prompt cached)",
      value: tokS(d.projectMs),
      note: `**${ratio.toFixed(3)} x bare** (target >= 0.97: ${
        verdict(ratio, 0.97)
      }); paired by round ${paired.toFixed(3)}; range ${
        spread(r["project (ms/step)"])
      } ms; same tokens as bare: ${d.agree.project ? "yes" : "no"}`,
    },
    { measure: "transformers.js `generate()` (decode part)", ...tjs },
    {
      measure: "project step, profiled: inside `forward()` / rest of generate()",
      value: `${fmt(p.forwardMs)} / ${fmt(p.outsideMs)} ms`,
      note: `rest = sampling + text decode + cache bookkeeping`,
    },
    {
      measure: "alone: sampleToken greedy / temperature 1 (151936 logits); text decode",
      value: `${fmt(p.sampleGreedyMs)} / ${fmt(p.sampleT1Ms)} ms; ${fmt(p.textDecodeMs)} ms`,
      note: "per token",
    },
    pressureRow(r),
  ];
  return table(`Decode, batch 1, greedy, fp32, ${THREADS} threads (${d.reps} rounds)`, rows);
}

/**
 * The weight products alone on k rows vs 1, and the cold ratio a batch-k step costing only that
 * much more would give: k (P + S t1) / (P + S t1 r), P the prefill, S the decode steps, t1 a
 * batch-1 step, r the products' ratio.
 */
function matmulRow(s: SiblingsResult, prefill: number, b1Ms: number, steps: number): Row {
  const m = s.matmul, r = m.batchMs / m.oneMs, t1 = b1Ms / 1000;
  const bound = s.k * (prefill + steps * t1) / (prefill + steps * t1 * r);
  return {
    measure: `weight products of 3 layers alone (${
      fmt(m.weightBytes / 1e6)
    } MB fp32): ${s.k} rows / 1 row`,
    value: `${fmt(m.batchMs)} / ${fmt(m.oneMs)} ms`,
    note: `${r.toFixed(2)}: a batch-${s.k} step costing only this would give ${
      bound.toFixed(2)
    } x cold; ranges ${spread(m.raw[`${s.k} rows (ms)`])} / ${spread(m.raw["1 row (ms)"])} ms`,
  };
}

function siblingsTable(s: SiblingsResult): string {
  const cold = s.independentCold / s.batchedCold, warm = s.independentWarm / s.batchedWarm;
  const r = s.raw;
  const steps = s.newTokens - 1;
  const b6 = s.batchedWarm / steps * 1000, b1 = s.independentWarm / (s.k * steps) * 1000;
  const prefill = s.batchedCold - s.batchedWarm;
  const rows: Row[] = [
    {
      measure:
        `batched: generate(n: ${s.k}), cold cache (1 prefill of ${s.prefixTokens} + batched decode)`,
      value: `${fmt(s.batchedCold)} s`,
      note: `range ${spread(r["batched cold (s)"])} s`,
    },
    {
      measure: `independent: ${s.k} x (clear cache, generate(n: 1))`,
      value: `${fmt(s.independentCold)} s`,
      note: `**${cold.toFixed(2)} x** batched (target >= 5: ${verdict(cold, 5)}); paired ${
        pairedRatio(r["independent cold (s)"], r["batched cold (s)"]).toFixed(2)
      }; range ${spread(r["independent cold (s)"])} s`,
    },
    {
      measure: `batched, prefix already cached (expanding a computed node)`,
      value: `${fmt(s.batchedWarm)} s`,
      note: `range ${spread(r["batched warm (s)"])} s`,
    },
    {
      measure: `independent, prefix already cached (${s.k} x generate(n: 1))`,
      value: `${fmt(s.independentWarm)} s`,
      note: `**${warm.toFixed(2)} x** batched; paired ${
        pairedRatio(r["independent warm (s)"], r["batched warm (s)"]).toFixed(2)
      }; range ${spread(r["independent warm (s)"])} s`,
    },
    {
      measure: "children identical batched and alone (same seeds)",
      value: `${s.sameChildren} of ${s.k}`,
      note: `tokens: batched ${s.tokens.batched}, independent ${s.tokens.independent}`,
    },
    {
      measure: `one decode step (from the warm runs): batch ${s.k} / batch 1`,
      value: `${fmt(b6)} / ${fmt(b1)} ms`,
      note: `a batch-${s.k} step costs ${
        (b6 / b1).toFixed(2)
      } batch-1 steps; prefill of the prefix ~${fmt(prefill)} s`,
    },
    matmulRow(s, prefill, b1, steps),
    pressureRow(r),
  ];
  return table(
    `K = ${s.k} children of ${s.newTokens} tokens from a ${s.prefixTokens}-token prefix, temperature 1 (${s.reps} rounds)`,
    rows,
  );
}

function rewardTable(w: RewardResult): string {
  const ratio = w.whole / w.incremental;
  const rows: Row[] = [
    {
      measure: `incremental (KV prefix tree + memo): scoreSteps with 1..${w.steps} steps`,
      value: `${fmt(w.incremental)} s`,
      note: `${w.positions.incremental} positions run; range ${spread(w.raw["incremental (s)"])} s`,
    },
    {
      measure: "re-running each text whole (incremental: false)",
      value: `${fmt(w.whole)} s`,
      note: `**${ratio.toFixed(2)} x** incremental (target >= 3: ${verdict(ratio, 3)}); paired ${
        pairedRatio(w.raw["whole (s)"], w.raw["incremental (s)"]).toFixed(2)
      }; ${w.positions.whole} positions run; range ${spread(w.raw["whole (s)"])} s`,
    },
    {
      measure: "largest score difference between the two",
      value: w.maxScoreDiff.toExponential(1),
      note: `question ${w.tokens.question} tokens, whole text ${w.tokens.total} tokens`,
    },
    pressureRow(w.raw),
  ];
  return table(
    `Reward, math-shepherd head on the bench model, ${w.steps}-step trajectory (${w.reps} rounds)`,
    rows,
  );
}

function mallocTable(m: MallocResult): string {
  const env = Object.entries(MALLOC_ENV).map(([k, v]) => `${k}=${v}`).join(" ");
  const r = m.raw;
  const rows: Row[] = [
    {
      measure: "bare loop: default glibc malloc / MALLOC_* set",
      value: `${fmt(m.plain.bare)} / ${fmt(m.tuned.bare)} ms/token`,
      note: `**${(m.plain.bare / m.tuned.bare).toFixed(2)} x** faster with them (paired ${
        pairedRatio(r["bare, default malloc (ms/step)"], r["bare, MALLOC_* set (ms/step)"]).toFixed(
          2,
        )
      }); ranges ${spread(r["bare, default malloc (ms/step)"])} / ${
        spread(r["bare, MALLOC_* set (ms/step)"])
      } ms`,
    },
    {
      measure: "project generate(): default glibc malloc / MALLOC_* set",
      value: `${fmt(m.plain.project)} / ${fmt(m.tuned.project)} ms/token`,
      note: `**${(m.plain.project / m.tuned.project).toFixed(2)} x** faster with them (paired ${
        pairedRatio(r["project, default malloc (ms/step)"], r["project, MALLOC_* set (ms/step)"])
          .toFixed(2)
      }); ranges ${spread(r["project, default malloc (ms/step)"])} / ${
        spread(r["project, MALLOC_* set (ms/step)"])
      } ms`,
    },
    {
      measure: "project / bare speed, default / MALLOC_* set",
      value: `${(m.plain.bare / m.plain.project).toFixed(3)} / ${
        (m.tuned.bare / m.tuned.project).toFixed(3)
      }`,
      note: "same process, one run each",
    },
    pressureRow(r),
  ];
  return table(
    `Decode in fresh processes, glibc malloc default vs \`${env}\` (${m.reps} rounds)`,
    rows,
  );
}

function searchTable(s: SearchBenchResult, decode?: DecodeResult): string {
  const msTok = decode?.projectMs;
  const rows: Row[] = [{
    measure: `mcts(), instant test doubles, ${s.simulations} simulations, k ${s.k}`,
    value: `${fmt(s.usPerSimulation)} µs/simulation`,
    note: msTok
      ? `${(s.usPerSimulation / 1000 / msTok * 100).toFixed(3)}% of one decoded token (${
        fmt(msTok)
      } ms); ${s.nodes} nodes`
      : `${s.nodes} nodes (run with decode for the ratio to model time)`,
  }];
  return table(`Search overhead (${s.reps} repetitions)`, rows);
}

function storeTable(s: StoreBenchResult): string {
  const rows: Row[] = [
    {
      measure: `tree nodes written (file database, trees of ${s.treeSize})`,
      value: `${s.nodesPerSecond} nodes/s`,
      note: `${fmt(s.msPerProblem)} ms per problem saved`,
    },
    { measure: "one tree read back", value: `${fmt(s.msPerTreeRead)} ms`, note: "" },
  ];
  return table(`Store (${s.reps} repetitions, ${s.problemsPerRep} problems each)`, rows);
}

/**
 * Run the selected sections and build the report.
 *
 * @param args Command-line arguments.
 * @returns The markdown report.
 */
export async function runBenchmarks(args: string[]): Promise<string> {
  const o = parse(args);
  const t0 = performance.now();
  const load0 = Deno.loadavg();
  progress(`start; load average ${load0.map((x) => x.toFixed(2)).join(" ")}; ${o.only}`);
  const q = o.quick;
  const res: Results = {};
  for (const s of o.only) {
    const ts = performance.now();
    if (s === "decode") {
      res.decode = await benchDecode(
        q ? { promptTokens: 64, newTokens: 17, reps: 2, bandwidthBytes: 2 ** 28 } : {},
      );
    } else if (s === "siblings") {
      res.siblings = await benchSiblings(q ? { prefixTokens: 128, newTokens: 16, reps: 2 } : {});
    } else if (s === "reward") {
      res.reward = await benchReward(q ? { steps: 3, reps: 2 } : {});
    } else if (s === "malloc") {
      res.malloc = await benchMalloc(q ? { promptTokens: 64, newTokens: 17, reps: 1 } : {});
    } else if (s === "search") {
      res.search = await benchSearch(q ? { simulations: 300 } : {});
    } else if (s === "store") {
      res.store = await benchStore(q ? { problems: 5, reps: 3 } : {});
    } else {
      res.server = await benchServer({ quick: q });
    }
    progress(`${s} done in ${since(ts).toFixed(0)} s`);
  }
  const load1 = Deno.loadavg();
  const parts = [
    "## Machine and run",
    "",
    ...(await machine()),
    `- Load average (1/5/15 min) at start: ${load0.map((x) => x.toFixed(2)).join(" ")}; at end: ${
      load1.map((x) => x.toFixed(2)).join(" ")
    }`,
    `- Run: \`deno task bench${args.length ? " " + args.join(" ") : ""}\`, ${
      since(t0).toFixed(0)
    } s`,
    "",
    "## Results",
    "",
  ];
  if (res.decode) parts.push(decodeTable(res.decode));
  if (res.siblings) parts.push(siblingsTable(res.siblings));
  if (res.reward) parts.push(rewardTable(res.reward));
  if (res.malloc) parts.push(mallocTable(res.malloc));
  if (res.search) parts.push(searchTable(res.search, res.decode));
  if (res.store) parts.push(storeTable(res.store));
  if (res.server) {
    parts.push(
      "### Server (bench/server_bench.ts, tiny test models)\n",
      serverTable(res.server),
      "",
    );
  }
  const report = parts.join("\n");
  if (o.out) await Deno.writeTextFile(o.out, report);
  return report;
}

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(
      `${BENCH_USAGE}\n  results and the machine go to stdout (and FILE); see BENCHMARKS.md`,
    );
    Deno.exit(0);
  }
  try {
    console.log(await runBenchmarks(Deno.args));
  } catch (e) {
    if (!(e instanceof BenchUsageError)) throw e;
    console.error(`bench: ${e.message}`);
    Deno.exit(2);
  }
}
