/**
 * Hand-built trees and a scripted annotation tree for the self_train tests.
 *
 * @module
 */
import { annotate, type TreeNode } from "../../mcts/mod.ts";
import { ScriptedPolicy, ScriptedReward } from "../mcts/_doubles.ts";

/** A node spec: [id, parent, text, extras]. */
export type Spec = [number, number, string, Partial<TreeNode>?];

/**
 * A tree from specs (ids must be 0..n-1 in order; node 0 is the root with parent -1).
 * Depths and children lists are derived; leaves are terminal.
 */
export function buildTree(specs: Spec[]): TreeNode[] {
  const nodes: TreeNode[] = [];
  for (const [id, parent, text, extra] of specs) {
    if (id !== nodes.length) throw new Error(`spec ids must be in order: ${id}`);
    nodes.push({
      id,
      parent,
      depth: parent < 0 ? 0 : nodes[parent].depth + 1,
      text,
      logprob: -1,
      prior: 1,
      reward: parent < 0 ? NaN : 0.5,
      visits: 0,
      value: 0,
      terminal: false,
      pruned: false,
      tokens: 2,
      children: [],
      ...extra,
    });
    if (parent >= 0) nodes[parent].children.push(id);
  }
  for (const n of nodes) if (n.id !== 0 && n.children.length === 0) n.terminal = true;
  return nodes;
}

/**
 * The HNC test tree (leaves marked ✓ are correct):
 * ```
 * 0 root
 * ├─ 1 "a"
 * │  ├─ 3 "a1" ✓
 * │  ├─ 4 "a2"
 * │  ├─ 5 "a3"
 * │  │  ├─ 7 "a31" ✓
 * │  │  ├─ 8 "a32"
 * │  │  ├─ 12 "a33"
 * │  │  └─ 13 "a34"
 * │  └─ 6 "a4" ✓
 * ├─ 2 "b"
 * │  └─ 9 "b1"
 * ├─ 10 "c" ✓
 * └─ 11 "d"
 * ```
 * MC labels: 5 = 1/4, 1 = 3/7, 2 = 0, root = 4/10.
 */
export function hncTree(): TreeNode[] {
  const ok = { correct: true }, bad = { correct: false };
  return buildTree([
    [0, -1, ""],
    [1, 0, "a"],
    [2, 0, "b"],
    [3, 1, "a1", ok],
    [4, 1, "a2", bad],
    [5, 1, "a3"],
    [6, 1, "a4", ok],
    [7, 5, "a31", ok],
    [8, 5, "a32", bad],
    [9, 2, "b1", bad],
    [10, 0, "c", ok],
    [11, 0, "d", bad],
    [12, 5, "a33", bad],
    [13, 5, "a34", bad],
  ]);
}

/** Scripted steps: every node gets 4 children (cycling), answers at depth 3. */
export const SCRIPT = {
  "": [{ text: "a", logprob: -0.5 }, { text: "b", logprob: -0.7 }],
  "a": [{ text: "a1", logprob: -0.2 }, { text: "a2", logprob: -1 }],
  "a|a1": [{ text: "ANSWER 5", logprob: -0.1, terminal: true }],
  "a|a2": [
    { text: "ANSWER 7", logprob: -0.1, terminal: true },
    { text: "ANSWER 6", logprob: -0.3, terminal: true },
  ],
  "b": [{ text: "b1", logprob: -0.3 }, { text: "b2", logprob: -0.4 }],
  "b|b1": [
    { text: "ANSWER 7", logprob: -0.1, terminal: true },
    { text: "ANSWER 8", logprob: -0.1, terminal: true },
  ],
  "b|b2": [{ text: "ANSWER 7", logprob: -0.1, terminal: true }],
};

/**
 * An annotation tree of 85 nodes built by `annotate()` with the scripted policy; 7 is right.
 * Step rewards come from a scripted reward (0.5, "ANSWER 7" 0.9): without a reward, `annotate()`
 * leaves `value` NaN and the store refuses to save the tree.
 */
export function scriptedAnnotation(): Promise<TreeNode[]> {
  return annotate("What is 3 + 4?", {
    policy: new ScriptedPolicy(SCRIPT, "cycle"),
    grade: (steps) => steps.at(-1) === "ANSWER 7",
    reward: new ScriptedReward({ "ANSWER 7": 0.9 }),
    k: 4,
    maxDepth: 3,
    seed: 1,
  });
}
