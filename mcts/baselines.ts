/**
 * The baselines, under the same interfaces as the search: greedy decoding, best-of-N
 * (ranked by an outcome score or aggregated step scores), step-level greedy search (what the
 * paper calls Best-of-N for PRM/HRM), step-level beam search, and votes over answers.
 *
 * @module
 */
import { type Budget, BudgetMeter, childSeed, scoreEach } from "./_budget.ts";
import { DEFAULT_TEMPERATURE } from "./search.ts";
import type { StepPolicy, StepReward } from "./types.ts";

/** A finished (or cut) solution. */
export interface Solution {
  /** Its steps. */
  steps: string[];
  /** Step rewards, where the strategy scored them. */
  stepRewards: number[];
  /** The score the strategy ranked it by. */
  score: number;
  /** Whether its last step was terminal. */
  complete: boolean;
  /** Tokens generated for it. */
  tokens: number;
}

/** What every baseline returns. */
export interface BaselineResult {
  /** The chosen solution. */
  best: Solution;
  /** Every candidate considered (for votes and exports). */
  candidates: Solution[];
  /** Spend. */
  stats: { tokens: number; ms: number; expansions: number };
}

/** Common options. */
export interface BaselineOptions {
  /** Proposes steps. */
  policy: StepPolicy;
  /** Maximum steps (default 7). */
  maxDepth?: number;
  /** Seed. */
  seed?: number;
  /** Sampling temperature (default 1; greedy uses 0). */
  temperature?: number;
  /** Budget (tokens, time; simulations = expansions). */
  budget?: Budget;
  /** Cancellation. */
  signal?: AbortSignal;
  /** Clock. */
  now?: () => number;
}

/** Scores a whole solution (ORM, or PRM/HRM step scores aggregated). */
export type SolutionScorer = (
  question: string,
  steps: readonly string[],
  options?: { signal?: AbortSignal },
) => Promise<{ score: number; stepRewards: number[] }>;

/**
 * Extend `steps` one proposal at a time until terminal or max depth.
 *
 * @returns The completed steps, whether the end was terminal, and the tokens spent.
 */
async function rollout(
  question: string,
  start: { steps: string[]; terminal: boolean },
  o: BaselineOptions & { seed: number; temperature: number; meter: BudgetMeter },
): Promise<{ steps: string[]; complete: boolean; tokens: number }> {
  const steps = [...start.steps];
  let terminal = start.terminal, tokens = 0;
  while (!terminal && steps.length < (o.maxDepth ?? 7) && !o.meter.exhausted()) {
    const [p] = await o.policy.propose(question, steps, {
      k: 1,
      seed: childSeed(o.seed, steps.length),
      temperature: o.temperature,
      signal: o.signal,
    });
    if (!p) break;
    steps.push(p.text);
    terminal = p.terminal;
    tokens += p.tokens;
    o.meter.tokens += p.tokens;
    o.meter.simulations++;
  }
  return { steps, complete: terminal, tokens };
}

/**
 * Greedy decoding, step by step at temperature 0; from `prefix` when given (to finish a
 * partial solution, e.g. the path a search chose when its budget ran out).
 *
 * @param question The problem.
 * @param options Policy, depth, budget, prefix.
 */
export async function greedy(
  question: string,
  options: BaselineOptions & { prefix?: readonly string[] },
): Promise<BaselineResult> {
  const meter = new BudgetMeter(options.budget ?? {}, options);
  const r = await rollout(question, { steps: [...options.prefix ?? []], terminal: false }, {
    ...options,
    seed: options.seed ?? 0,
    temperature: 0,
    meter,
  });
  const best = {
    steps: r.steps,
    stepRewards: [],
    score: 0,
    complete: r.complete,
    tokens: r.tokens,
  };
  return { best, candidates: [best], stats: statsOf(meter) };
}

function statsOf(meter: BudgetMeter) {
  return { tokens: meter.tokens, ms: meter.elapsedMs, expansions: meter.simulations };
}

/**
 * Best-of-N: sample N whole solutions and keep the best by `scorer`.
 *
 * @param question The problem.
 * @param options Policy, N, the scorer (ORM or aggregated PRM/HRM).
 */
export async function bestOfN(
  question: string,
  options: BaselineOptions & { n: number; scorer: SolutionScorer },
): Promise<BaselineResult> {
  checkN(options.n);
  const meter = new BudgetMeter(options.budget ?? {}, options);
  const seed = options.seed ?? 0, temperature = options.temperature ?? DEFAULT_TEMPERATURE;
  const first = await options.policy.propose(question, [], {
    k: options.n,
    seed,
    temperature,
    signal: options.signal,
  });
  meter.tokens += first.reduce((s, p) => s + p.tokens, 0);
  const candidates: Solution[] = [];
  for (const [i, p] of first.entries()) {
    const r = await rollout(question, { steps: [p.text], terminal: p.terminal }, {
      ...options,
      seed: childSeed(seed, i + 1),
      temperature,
      meter,
    });
    const s = await options.scorer(question, r.steps, { signal: options.signal });
    candidates.push({ ...s, steps: r.steps, complete: r.complete, tokens: r.tokens + p.tokens });
  }
  return { best: argBest(candidates), candidates, stats: statsOf(meter) };
}

function checkN(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Cannot search as 'n' must be an integer >= 1: current value is ${n}`);
  }
}

/**
 * The best-scored solution; with none (the policy proposed nothing: a question over its
 * context, a dead end) an empty, unfinished one, which grades as wrong.
 *
 * @param c The candidates (ties: the first).
 * @returns The best, or the empty solution.
 */
export function argBest(c: readonly Solution[]): Solution {
  if (c.length === 0) return { steps: [], stepRewards: [], score: NaN, complete: false, tokens: 0 };
  return c.reduce((a, b) => (b.score > a.score ? b : a));
}

/**
 * Step-level greedy search: at each step sample N candidates, score each with the step
 * reward, keep the best, repeat until terminal.
 *
 * @param question The problem.
 * @param options Policy, reward, N.
 */
export async function stepGreedy(
  question: string,
  options: BaselineOptions & { n: number; reward: StepReward },
): Promise<BaselineResult> {
  return await beam(question, { ...options, width: 1, expand: options.n });
}

/**
 * Step-level beam search: keep the `width` best partial solutions (by their last step's
 * reward), expand each into `expand` candidates, until all kept ones are terminal.
 *
 * @param question The problem.
 * @param options Policy, reward, width, candidates per beam.
 */
export async function beam(
  question: string,
  options: BaselineOptions & { width: number; expand: number; reward: StepReward },
): Promise<BaselineResult> {
  checkN(options.width);
  checkN(options.expand);
  const meter = new BudgetMeter(options.budget ?? {}, options);
  const maxDepth = options.maxDepth ?? 7, seed = options.seed ?? 0;
  let beams: Solution[] = [{ steps: [], stepRewards: [], score: 0, complete: false, tokens: 0 }];
  for (let depth = 0; depth < maxDepth && beams.some((b) => !b.complete); depth++) {
    if (meter.exhausted()) break;
    const next: Solution[] = beams.filter((b) => b.complete);
    for (const [bi, b] of beams.entries()) {
      if (b.complete) continue;
      const props = await options.policy.propose(question, b.steps, {
        k: options.expand,
        seed: childSeed(seed, depth * 1000 + bi),
        temperature: options.temperature ?? DEFAULT_TEMPERATURE,
        signal: options.signal,
      });
      meter.simulations++;
      const all = props.map((p) => [...b.steps, p.text]);
      const scored = await scoreEach(options.reward, question, all, options.signal);
      for (const [i, p] of props.entries()) {
        meter.tokens += p.tokens;
        const steps = all[i];
        const r = scored[i].at(-1)!;
        next.push({
          steps,
          stepRewards: [...b.stepRewards, r],
          score: r,
          complete: p.terminal,
          tokens: b.tokens + p.tokens,
        });
      }
    }
    if (next.length === 0) break;
    beams = next.sort((a, b) => b.score - a.score).slice(0, options.width);
  }
  return { best: argBest(beams), candidates: beams, stats: statsOf(meter) };
}

/** One vote: an answer and its weight. */
export interface Ballot {
  /** The extracted answer (undefined: no answer, never wins). */
  answer: string | undefined;
  /** Weight (1 for a majority vote, the solution's score for a weighted one). */
  weight: number;
}

/**
 * The answer with the largest total weight (ties: the first seen).
 *
 * @param ballots Answers and weights.
 * @returns The winner and its share of the total weight, or undefined if no answer.
 */
export function vote(ballots: readonly Ballot[]): { answer: string; share: number } | undefined {
  const totals = new Map<string, number>();
  let all = 0;
  for (const b of ballots) {
    if (b.answer === undefined) continue;
    totals.set(b.answer, (totals.get(b.answer) ?? 0) + b.weight);
    all += b.weight;
  }
  let best: string | undefined, bestW = -Infinity;
  for (const [a, w] of totals) {
    if (w > bestW) {
      best = a;
      bestW = w;
    }
  }
  return best === undefined ? undefined : { answer: best, share: all > 0 ? bestW / all : 0 };
}
