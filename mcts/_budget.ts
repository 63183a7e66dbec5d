/**
 * Search budgets (simulations, generated tokens and wall time, whichever ends first), and
 * the helpers every search shares.
 *
 * @module
 */

import type { StepReward } from "./types.ts";

/** Limits of one search; absent fields are unlimited. */
export interface Budget {
  /** Simulations (MCTS) or expansions (other strategies). */
  simulations?: number;
  /** Generated tokens. */
  tokens?: number;
  /** Wall time in milliseconds. */
  ms?: number;
}

/** Counts what a search spent and says when to stop. */
export class BudgetMeter {
  readonly #b: Budget;
  readonly #now: () => number;
  readonly #start: number;
  readonly #signal?: AbortSignal;
  /** Simulations done. */
  simulations = 0;
  /** Tokens generated. */
  tokens = 0;

  constructor(budget: Budget, options: { now?: () => number; signal?: AbortSignal } = {}) {
    for (const [k, v] of Object.entries(budget)) {
      if (v !== undefined && !(typeof v === "number" && v >= 0)) {
        throw new RangeError(
          `Cannot search as 'budget.${k}' must be a number >= 0: current value is ${v}`,
        );
      }
    }
    this.#b = budget;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.#signal = options.signal;
  }

  /** Milliseconds since the start. */
  get elapsedMs(): number {
    return this.#now() - this.#start;
  }

  /** True once any limit is reached; throws if the signal was aborted. */
  exhausted(): boolean {
    this.#signal?.throwIfAborted();
    const b = this.#b;
    return (b.simulations !== undefined && this.simulations >= b.simulations) ||
      (b.tokens !== undefined && this.tokens >= b.tokens) ||
      (b.ms !== undefined && this.elapsedMs >= b.ms);
  }
}

/** Mix a seed with a node id into a new 31-bit seed (deterministic). */
export function childSeed(seed: number, id: number): number {
  let h = (seed ^ 0x5bd1e995) >>> 0;
  h = Math.imul(h ^ (id + 0x9e3779b9), 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h & 0x7fffffff;
}

/** Scores of several solutions: one batched call where the reward offers it. */
export async function scoreEach(
  reward: StepReward,
  question: string,
  solutions: readonly (readonly string[])[],
  signal?: AbortSignal,
): Promise<number[][]> {
  if (reward.scoreMany) return await reward.scoreMany(question, solutions, { signal });
  const out: number[][] = [];
  for (const steps of solutions) out.push(await reward.score(question, steps, { signal }));
  return out;
}
