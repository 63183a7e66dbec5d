/**
 * Benchmark of the run store: tree-node writes per second into a file database (trees of
 * 1000 nodes saved with their problems, several repetitions, median).
 *
 * Run alone: `deno run -A bench/store_bench.ts`.
 *
 * @module
 */
import { openStore, type TreeNodeData } from "../store/mod.ts";
import { median } from "./_stats.ts";

/** What {@linkcode benchStore} measured. */
export interface StoreBenchResult {
  /** Median over repetitions of nodes written per second (problem row, tree, nodes, trajectories). */
  nodesPerSecond: number;
  /** Median milliseconds to save one problem with its tree. */
  msPerProblem: number;
  /** Median milliseconds to read one tree back (rebuilt). */
  msPerTreeRead: number;
  /** Nodes per tree. */
  treeSize: number;
  /** Problems saved per repetition. */
  problemsPerRep: number;
  /** Repetitions. */
  reps: number;
}

/** A tree of `size` nodes with a random shape (deterministic). */
function tree(size: number): TreeNodeData[] {
  let s = 12345;
  const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  const nodes: TreeNodeData[] = [];
  for (let id = 0; id < size; id++) {
    const parent = id === 0 ? undefined : nodes[Math.floor(r() * id)];
    nodes.push({
      id,
      parent: parent?.id ?? -1,
      depth: parent ? parent.depth + 1 : 0,
      text: id === 0
        ? ""
        : `Step ${id}: multiply both sides by ${Math.floor(r() * 100)} and simplify.`,
      logprob: -r() * 30,
      prior: r(),
      reward: id === 0 ? NaN : r(),
      visits: Math.floor(r() * 20),
      value: r(),
      mcLabel: r(),
      terminal: r() < 0.2,
      pruned: r() < 0.1,
      tokens: 10 + Math.floor(r() * 50),
      children: [],
    });
    parent?.children.push(id);
  }
  return nodes;
}

/**
 * Measure node writes per second into a fresh file database in a temporary folder.
 *
 * @param options Nodes per tree, problems per repetition, repetitions.
 * @returns The medians.
 */
export async function benchStore(
  options: { treeSize?: number; problems?: number; reps?: number } = {},
): Promise<StoreBenchResult> {
  const { treeSize = 1000, problems = 20, reps = 5 } = options;
  const dir = await Deno.makeTempDir({ prefix: "arborist-bench-" });
  const store = await openStore(`${dir}/bench.db`);
  const nodes = tree(treeSize);
  const rates: number[] = [];
  const reads: number[] = [];
  try {
    for (let rep = 0; rep < reps; rep++) {
      const runId = `bench-${rep}`;
      await store.createRun({
        id: runId,
        strategy: "mcts",
        config: {},
        seed: rep,
        policyId: "bench",
        problemsSource: "bench",
      });
      const t0 = performance.now();
      const ids: number[] = [];
      for (let p = 0; p < problems; p++) {
        const { treeId } = await store.saveProblemResult(runId, {
          problemId: `p${p}`,
          index: p,
          question: "What is 6 times 7?",
          tokens: 100,
          seconds: 1,
          tree: { kind: "search", seed: p, nodes },
          trajectories: [{ steps: ["a", "b"], stepRewards: [0.5, 0.5], score: 0.5 }],
        });
        ids.push(treeId!);
      }
      rates.push((problems * treeSize) / ((performance.now() - t0) / 1000));
      const t1 = performance.now();
      for (const id of ids) await store.getTree(id);
      reads.push((performance.now() - t1) / ids.length);
    }
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
  const nodesPerSecond = median(rates);
  return {
    nodesPerSecond: Math.round(nodesPerSecond),
    msPerProblem: (treeSize / nodesPerSecond) * 1000,
    msPerTreeRead: median(reads),
    treeSize,
    problemsPerRep: problems,
    reps,
  };
}

if (import.meta.main) {
  // deno-lint-ignore no-console
  console.log(await benchStore());
}
