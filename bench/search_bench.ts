/**
 * Benchmark of the search alone: time per MCTS simulation of `mcts()` with instant test
 * doubles (a scripted policy returning fixed proposals, a reward returning fixed scores), so
 * that what is timed is the tree, PUCT selection, expansion, pruning and backup.
 *
 * Run alone: `deno run -A bench/search_bench.ts`.
 *
 * @module
 */
// deno-lint-ignore-file no-console
import {
  mcts,
  type Proposal,
  type ProposeOptions,
  type StepPolicy,
  type StepReward,
} from "../mcts/mod.ts";
import { median, progress } from "./_stats.ts";

/** Proposes K fixed steps after any path; step i of depth d is terminal when d >= 5, i = 0. */
class FixedPolicy implements StepPolicy {
  propose(_q: string, steps: readonly string[], o: ProposeOptions): Promise<Proposal[]> {
    const d = steps.length + 1;
    return Promise.resolve(Array.from({ length: o.k }, (_, i) => ({
      text: `step ${d}.${i}: x = ${i + d}`,
      logprob: -1 - i * 0.5,
      tokens: 32,
      terminal: d >= 5 && i === 0,
    })));
  }
}

/** Scores each step from its depth and its last character (fixed, no model). */
class FixedReward implements StepReward {
  score(_q: string, steps: readonly string[]): Promise<number[]> {
    return Promise.resolve(
      steps.map((s, j) => ((s.charCodeAt(s.length - 1) * 31 + j * 17) % 97) / 97),
    );
  }
}

/** Options of {@linkcode benchSearch}. */
export interface SearchBenchOptions {
  /** Simulations per search (default 2000). */
  simulations?: number;
  /** Children per expansion (default 5). */
  k?: number;
  /** Maximum depth (default 7). */
  maxDepth?: number;
  /** Repetitions (default 3). */
  reps?: number;
}

/** What {@linkcode benchSearch} measured. */
export interface SearchBenchResult {
  /** Median microseconds per simulation. */
  usPerSimulation: number;
  /** Simulations per search. */
  simulations: number;
  /** Nodes of the final tree. */
  nodes: number;
  /** Children per expansion. */
  k: number;
  /** Repetitions. */
  reps: number;
  /** Microseconds per simulation of each repetition. */
  raw: number[];
}

/**
 * Time `mcts()` with instant backends.
 *
 * @param options Size of the search and repetitions.
 * @returns The median time per simulation.
 */
export async function benchSearch(options: SearchBenchOptions = {}): Promise<SearchBenchResult> {
  const { simulations = 2000, k = 5, maxDepth = 7, reps = 3 } = options;
  const policy = new FixedPolicy(), reward = new FixedReward();
  const raw: number[] = [];
  let nodes = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const res = await mcts("What is x?", {
      policy,
      reward,
      k,
      maxDepth,
      budget: { simulations },
      seed: r,
    });
    const us = (performance.now() - t0) * 1000 / res.stats.simulations;
    raw.push(us);
    nodes = res.stats.nodes;
    progress(
      `search rep ${r + 1}/${reps}: ${
        us.toFixed(1)
      } µs/simulation (${res.stats.simulations} simulations, ${nodes} nodes)`,
    );
  }
  return { usPerSimulation: median(raw), simulations, nodes, k, reps, raw };
}

if (import.meta.main) {
  console.log(await benchSearch());
}
