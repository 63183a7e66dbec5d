/**
 * Test fixtures for the store: seeded random trees and problem results.
 *
 * @module
 */
import type { ProblemResult, TreeNodeData } from "../../store/mod.ts";

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random tree of `size` nodes shaped like a search tree: root 0 with NaN reward, children
 * appended by expansion; with `shuffle`, some children lists are reversed (as HNC leaves them).
 */
export function makeTree(
  size: number,
  options: { seed?: number; shuffle?: boolean } = {},
): TreeNodeData[] {
  const r = rng(options.seed ?? 1);
  const nodes: TreeNodeData[] = [{
    id: 0,
    parent: -1,
    depth: 0,
    text: "",
    logprob: 0,
    prior: 1,
    reward: NaN,
    visits: size,
    value: 0.5,
    terminal: false,
    pruned: false,
    tokens: 0,
    children: [],
  }];
  for (let id = 1; id < size; id++) {
    const parent = nodes[Math.floor(r() * nodes.length)];
    const n: TreeNodeData = {
      id,
      parent: parent.id,
      depth: parent.depth + 1,
      text: `step ${id}: ${"x".repeat(Math.floor(r() * 40))} ünïcode ✓`,
      logprob: -r() * 20,
      prior: r(),
      reward: r(),
      visits: Math.floor(r() * 10),
      value: r(),
      terminal: r() < 0.2,
      pruned: r() < 0.1,
      tokens: 1 + Math.floor(r() * 60),
      children: [],
    };
    if (r() < 0.5) n.mcLabel = r();
    if (n.terminal && r() < 0.7) n.correct = r() < 0.5;
    parent.children.push(id);
    nodes.push(n);
  }
  if (options.shuffle) {
    for (const n of nodes) if (n.children.length > 1 && r() < 0.5) n.children.reverse();
  }
  return nodes;
}

/** A finished problem with a tree of `size` nodes and three trajectories. */
export function makeResult(
  problemId: string,
  options: { size?: number; correct?: boolean | null; seed?: number; shuffle?: boolean } = {},
): ProblemResult {
  const correct = options.correct === undefined ? true : options.correct;
  return {
    problemId,
    index: Number(problemId.replace(/\D/g, "")) || 0,
    question: `What is ${problemId}?`,
    gold: correct === null ? null : "42",
    source: "test",
    prediction: "The answer is 42.",
    answer: correct ? "42" : "41",
    correct,
    reward: 0.75,
    tokens: 120,
    seconds: 1.5,
    tree: { kind: "search", seed: 7, nodes: makeTree(options.size ?? 50, options) },
    trajectories: [
      { steps: ["a", "b"], stepRewards: [0.9, 0.8], score: 0.8, chosen: true, correct },
      { steps: ["a", "c"], stepRewards: [0.9, NaN], score: 0.4, correct: false, mcScore: 0.25 },
      { steps: ["d"], stepRewards: [0.1], score: 0.1, pseudoLabel: true, answer: "7" },
    ],
  };
}
