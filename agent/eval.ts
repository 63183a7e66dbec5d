/**
 * Best-of-N evaluation: accuracy against N for strategies and scorers (ORM, PRM, HRM, ...),
 * with 95% Wilson intervals, as a markdown table and an SVG plot.
 *
 * Best-of-N samples the largest N once per problem and ranks nested prefixes of those
 * samples for every smaller N, as is usual (the curves are then paired, not independent).
 * Step-level greedy search is run separately for every N.
 *
 * @module
 */
import { type PolicyModel, Progress } from "../inference/mod.ts";
import { argBest, bestOfN, greedy, type Solution, stepGreedy } from "../mcts/mod.ts";
import { aggregateScores, type Aggregation, type RewardModel } from "../reward/mod.ts";
import { PolicySteps, type PolicyStepsOptions, RewardSteps } from "./adapters.ts";
import { gradeKindFor, gradeSolution } from "./grading.ts";
import { MAX_DEPTH } from "./loop.ts";
import type { Problem } from "./problems.ts";

/** A named reward model and how it ranks whole solutions. */
export interface Scorer {
  /** Name in the table ("ORM", "PRM", "HRM"). */
  name: string;
  /** The model. */
  model: RewardModel;
  /** "outcome": score the whole solution as one step; "process": aggregate step scores. */
  kind: "outcome" | "process";
  /**
   * The strategies this scorer takes part in (default: every requested one it can do). The
   * paper's table: the ORM in best-of-n only, PRM and HRM in step-greedy only.
   */
  strategies?: readonly EvalStrategy[];
}

/** Whether `sc` takes part in `strategy`. */
function joins(sc: Pick<Scorer, "kind" | "strategies">, strategy: EvalStrategy): boolean {
  if (strategy === "greedy") return false;
  if (strategy === "step-greedy" && sc.kind !== "process") return false;
  return sc.strategies === undefined || sc.strategies.includes(strategy);
}

/** Evaluated strategies ("greedy" is the policy alone, one point at N = 1, no scorer). */
export type EvalStrategy = "best-of-n" | "step-greedy" | "greedy";

/** What one problem contributed: the keys `strategy|scorer|n` it got right. */
export interface ProblemHits {
  /** Problem id. */
  id: string;
  /** Keys of the points this problem is correct in. */
  hits: string[];
}

/** Options of {@linkcode evaluate}. */
export interface EvalOptions {
  /** The policy. */
  policy: PolicyModel;
  /** The scorers to compare. */
  scorers: readonly Scorer[];
  /** The Ns (ascending). */
  ns: readonly number[];
  /** Strategies (default best-of-n). */
  strategies?: readonly EvalStrategy[];
  /** Aggregation of step scores for process scorers in best-of-n (default "min"). */
  aggregation?: Aggregation;
  /** Maximum steps (default 12). */
  maxDepth?: number;
  /** Sampling temperature (default 1). */
  temperature?: number;
  /** Seed. */
  seed?: number;
  /** Step prompt and limits. */
  steps?: PolicyStepsOptions;
  /** Cancellation. */
  signal?: AbortSignal;
  /** Progress bar (default on). */
  progress?: boolean;
  /** Results of problems already evaluated (a resumed run): they are counted, not rerun. */
  done?: ReadonlyMap<string, readonly string[]>;
  /** Called after each problem (to journal it, so that a stopped run can resume). */
  onProblem?: (r: ProblemHits) => void | Promise<void>;
}

/** One cell: accuracy of a strategy+scorer at one N. */
export interface EvalPoint {
  /** Strategy. */
  strategy: EvalStrategy;
  /** Scorer name. */
  scorer: string;
  /** N. */
  n: number;
  /** Problems graded. */
  total: number;
  /** Correct. */
  correct: number;
  /** correct / total. */
  accuracy: number;
  /** 95% Wilson interval. */
  low: number;
  /** 95% Wilson interval. */
  high: number;
}

/** 95% Wilson score interval of k successes in n trials. */
export function wilson(k: number, n: number, z = 1.96): { low: number; high: number } {
  if (n === 0) return { low: 0, high: 1 };
  const p = k / n, z2 = z * z;
  const center = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  return { low: Math.max(0, center - half), high: Math.min(1, center + half) };
}

/**
 * The rows an evaluation gives: greedy (when asked) and each strategy with each scorer that
 * joins it (step-greedy takes process scorers only; a scorer's own `strategies` restricts it).
 * Empty when nothing would be measured (say, `step-greedy` with an ORM alone).
 *
 * @param scorers Scorers, or their names, kinds and strategies.
 * @param strategies The strategies asked for.
 * @returns `[strategy, scorer]` pairs (`"-"` for greedy's scorer), in table order.
 */
export function evalRows(
  scorers: readonly Pick<Scorer, "name" | "kind" | "strategies">[],
  strategies: readonly EvalStrategy[],
): [EvalStrategy, string][] {
  const rows: [EvalStrategy, string][] = strategies.includes("greedy") ? [["greedy", "-"]] : [];
  for (const strategy of strategies) {
    if (strategy === "greedy") continue;
    for (const sc of scorers) if (joins(sc, strategy)) rows.push([strategy, sc.name]);
  }
  return rows;
}

/**
 * Run the evaluation over problems that have gold answers.
 *
 * @param problems The problems (those without gold are skipped).
 * @param options Policy, scorers, Ns, strategies.
 * @returns One point per strategy, scorer and N.
 */
export async function evaluate(
  problems: readonly Problem[],
  options: EvalOptions,
): Promise<EvalPoint[]> {
  const ns = [...options.ns].sort((a, b) => a - b);
  if (ns.length === 0 || ns.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new RangeError(`Cannot evaluate as 'ns' must be integers >= 1: current value is ${ns}`);
  }
  const graded = problems.filter((p) => p.gold !== undefined);
  const strategies = options.strategies ?? ["best-of-n"];
  const rows = evalRows(options.scorers, strategies);
  if (rows.length === 0) {
    throw new RangeError(
      `Cannot evaluate: no strategy of ${JSON.stringify(strategies)} joins a scorer of ${
        JSON.stringify(options.scorers.map((s) => `${s.name} (${s.kind})`))
      } (step-greedy takes process scorers, best-of-n any scorer, greedy none)`,
    );
  }
  const tally = new Map<string, number>();
  const count = (hits: readonly string[]) => {
    for (const k of hits) tally.set(k, (tally.get(k) ?? 0) + 1);
  };
  const steps = new PolicySteps(options.policy, options.steps);
  const todo: Problem[] = [];
  for (const p of graded) {
    const had = options.done?.get(p.id);
    if (had) count(had);
    else todo.push(p);
  }
  const bar = options.progress === false
    ? undefined
    : new Progress("eval", { total: todo.length, unit: "problems" });
  for (const p of todo) {
    options.signal?.throwIfAborted();
    const hits = await evaluateOne(p, steps, strategies, ns, options);
    count(hits);
    await options.onProblem?.({ id: p.id, hits });
    bar?.tick(1);
  }
  bar?.finish();
  const out: EvalPoint[] = [];
  const point = (strategy: EvalStrategy, scorer: string, n: number): EvalPoint => {
    const correct = tally.get(pointKey(strategy, scorer, n)) ?? 0, total = graded.length;
    return {
      strategy,
      scorer,
      n,
      total,
      correct,
      accuracy: total ? correct / total : 0,
      ...wilson(correct, total),
    };
  };
  for (const [strategy, scorer] of rows) {
    if (strategy === "greedy") out.push(point("greedy", "-", 1));
    else for (const n of ns) out.push(point(strategy, scorer, n));
  }
  return out;
}

/**
 * Greedy accuracy of `policy` on `problems` (the policy alone, temperature 0).
 *
 * @returns The one greedy point, with its 95% interval.
 */
export async function greedyAccuracy(
  problems: readonly Problem[],
  policy: PolicyModel,
  options: { progress?: boolean } = {},
): Promise<EvalPoint> {
  const [pt] = await evaluate(problems, {
    policy,
    scorers: [],
    ns: [1],
    strategies: ["greedy"],
    progress: options.progress,
  });
  return pt;
}

/** The key of one point in {@linkcode ProblemHits}. */
export function pointKey(strategy: EvalStrategy, scorer: string, n: number): string {
  return `${strategy}|${scorer}|${n}`;
}

async function evaluateOne(
  p: Problem,
  steps: PolicySteps,
  strategies: readonly EvalStrategy[],
  ns: readonly number[],
  options: EvalOptions,
): Promise<string[]> {
  const hits: string[] = [];
  const seed = (options.seed ?? 0) + p.index * 7919;
  const ok = (sol: Solution) =>
    gradeSolution(sol.steps.join("\n\n"), p.gold!, { kind: gradeKindFor(p) }).correct;
  const common = {
    policy: steps,
    seed,
    maxDepth: options.maxDepth ?? MAX_DEPTH,
    temperature: options.temperature,
    signal: options.signal,
  };
  if (strategies.includes("greedy") && ok((await greedy(p.question, common)).best)) {
    hits.push(pointKey("greedy", "-", 1));
  }
  if (strategies.includes("best-of-n") && options.scorers.some((sc) => joins(sc, "best-of-n"))) {
    const pool = await samplePool(p.question, steps, ns[ns.length - 1], { ...options, seed });
    for (const sc of options.scorers.filter((s) => joins(s, "best-of-n"))) {
      const scored = await scoreAll(p.question, pool, sc, options.aggregation ?? "min");
      for (const n of ns) {
        // No candidates (the policy proposed nothing, e.g. a question over its context): the
        // empty solution, a miss.
        if (ok(argBest(scored.slice(0, n)))) hits.push(pointKey("best-of-n", sc.name, n));
      }
    }
  }
  if (strategies.includes("step-greedy")) {
    for (const sc of options.scorers.filter((s) => joins(s, "step-greedy"))) {
      const reward = new RewardSteps(sc.model);
      for (const n of ns) {
        const r = await stepGreedy(p.question, { ...common, reward, n });
        if (ok(r.best)) hits.push(pointKey("step-greedy", sc.name, n));
      }
    }
  }
  return hits;
}

/** N whole solutions of one question (candidate i is the same for every N). */
async function samplePool(
  question: string,
  steps: PolicySteps,
  n: number,
  o: EvalOptions & { seed: number },
): Promise<Solution[]> {
  const r = await bestOfN(question, {
    policy: steps,
    n,
    seed: o.seed,
    maxDepth: o.maxDepth ?? MAX_DEPTH,
    temperature: o.temperature,
    signal: o.signal,
    scorer: () => Promise.resolve({ score: 0, stepRewards: [] }),
  });
  return r.candidates;
}

async function scoreAll(
  question: string,
  pool: Solution[],
  sc: Scorer,
  agg: Aggregation,
): Promise<Solution[]> {
  const reward = new RewardSteps(sc.model);
  if (sc.kind === "outcome") {
    const scores = await reward.scoreMany(question, pool.map((s) => [s.steps.join("\n\n")]));
    return pool.map((s, i) => ({ ...s, score: scores[i][0] }));
  }
  const scores = await reward.scoreMany(question, pool.map((s) => s.steps));
  return pool.map((s, i) => ({
    ...s,
    stepRewards: scores[i],
    score: aggregateScores(scores[i], agg),
  }));
}

/** The greedy reference point (drawn as a line, not a curve) apart from the curves' points. */
function splitGreedy(all: readonly EvalPoint[]): { ref?: EvalPoint; points: EvalPoint[] } {
  return {
    ref: all.find((p) => p.strategy === "greedy"),
    points: all.filter((p) => p.strategy !== "greedy"),
  };
}

/** The points as a markdown table: one row per strategy+scorer, one column per N. */
export function evalTable(all: readonly EvalPoint[]): string {
  const { ref, points } = splitGreedy(all);
  const ns = [...new Set(points.map((p) => p.n))].sort((a, b) => a - b);
  const rows = [...new Set(points.map((p) => `${p.strategy}|${p.scorer}`))];
  const head = `| strategy | scorer | ${ns.map((n) => `N=${n}`).join(" | ")} |`;
  const sep = `|---|---|${ns.map(() => "---").join("|")}|`;
  const body = rows.map((r) => {
    const [strategy, scorer] = r.split("|");
    const cells = ns.map((n) => {
      const p = points.find((q) => q.strategy === strategy && q.scorer === scorer && q.n === n);
      return p ? `${p.accuracy.toFixed(3)} [${p.low.toFixed(3)}, ${p.high.toFixed(3)}]` : "-";
    });
    return `| ${strategy} | ${scorer} | ${cells.join(" | ")} |`;
  });
  const total = all[0]?.total ?? 0;
  const greedyLine = ref
    ? [
      `Greedy decoding (the policy alone): ${ref.accuracy.toFixed(3)} [${ref.low.toFixed(3)}, ${
        ref.high.toFixed(3)
      }].`,
    ]
    : [];
  return [
    ...(body.length ? [head, sep, ...body, ""] : []),
    `Accuracy [95% Wilson interval] over ${total} problems.`,
    ...greedyLine,
  ].join("\n");
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/** The points as an SVG line plot of accuracy against N (log2 axis), with interval bands. */
export function evalSvg(all: readonly EvalPoint[], title = "Best-of-N accuracy"): string {
  const { ref, points } = splitGreedy(all);
  const W = 640, H = 400, L = 60, R = 150, T = 40, B = 50;
  const ns = [...new Set(points.map((p) => p.n))].sort((a, b) => a - b);
  const lx = (n: number) => Math.log2(n);
  const [x0, x1] = [lx(ns[0] ?? 1), lx(ns[ns.length - 1] ?? 2)];
  const sx = (n: number) => L + (x1 === x0 ? 0.5 : (lx(n) - x0) / (x1 - x0)) * (W - L - R);
  const sy = (a: number) => T + (1 - a) * (H - T - B);
  const rows = [...new Set(points.map((p) => `${p.strategy}|${p.scorer}`))];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - R / 2}" y="22" text-anchor="middle" font-size="15">${
      escapeXml(title)
    }</text>`,
  ];
  for (let a = 0; a <= 1.0001; a += 0.2) {
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${sy(a)}" y2="${sy(a)}" stroke="#ddd"/>`,
      `<text x="${L - 8}" y="${sy(a) + 4}" text-anchor="end">${a.toFixed(1)}</text>`,
    );
  }
  for (const n of ns) {
    parts.push(`<text x="${sx(n)}" y="${H - B + 18}" text-anchor="middle">${n}</text>`);
  }
  parts.push(
    `<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">N</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${
      (T + H - B) / 2
    })">accuracy</text>`,
  );
  rows.forEach((r, i) => {
    const c = COLORS[i % COLORS.length];
    const ps = ns.map((n) => points.find((p) => `${p.strategy}|${p.scorer}` === r && p.n === n))
      .filter((p): p is EvalPoint => p !== undefined);
    const band = [
      ...ps.map((p) => `${sx(p.n)},${sy(p.high)}`),
      ...ps.reverse().map((p) => `${sx(p.n)},${sy(p.low)}`),
    ];
    ps.reverse();
    parts.push(
      `<polygon points="${band.join(" ")}" fill="${c}" fill-opacity="0.12" stroke="none"/>`,
      `<polyline points="${
        ps.map((p) => `${sx(p.n)},${sy(p.accuracy)}`).join(" ")
      }" fill="none" stroke="${c}" stroke-width="2"/>`,
      ...ps.map((p) => `<circle cx="${sx(p.n)}" cy="${sy(p.accuracy)}" r="3" fill="${c}"/>`),
      `<line x1="${W - R + 12}" x2="${W - R + 32}" y1="${T + 10 + i * 18}" y2="${
        T + 10 + i * 18
      }" stroke="${c}" stroke-width="2"/>`,
      `<text x="${W - R + 38}" y="${T + 14 + i * 18}">${escapeXml(r.replace("|", " / "))}</text>`,
    );
  });
  if (ref) {
    const y = sy(ref.accuracy), i = rows.length;
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#555" stroke-dasharray="5 4"/>`,
      `<line x1="${W - R + 12}" x2="${W - R + 32}" y1="${T + 10 + i * 18}" y2="${
        T + 10 + i * 18
      }" stroke="#555" stroke-dasharray="5 4"/>`,
      `<text x="${W - R + 38}" y="${T + 14 + i * 18}">greedy</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("\n");
}

function escapeXml(s: string): string {
  return s.replace(
    /[<>&"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!,
  );
}
