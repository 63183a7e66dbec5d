/**
 * The search tree: nodes in an array, parents by index, the steps of a node by walking up.
 *
 * @module
 */
import type { Proposal, TreeNode } from "./types.ts";

/** A tree of reasoning steps rooted at the bare question. */
export class StepTree {
  /** Nodes; index = id; 0 is the root. */
  readonly nodes: TreeNode[] = [];

  constructor() {
    this.nodes.push({
      id: 0,
      parent: -1,
      depth: 0,
      text: "",
      logprob: 0,
      prior: 1,
      reward: NaN,
      visits: 0,
      value: 0,
      terminal: false,
      pruned: false,
      tokens: 0,
      children: [],
    });
  }

  /** The root. */
  get root(): TreeNode {
    return this.nodes[0];
  }

  /** Node by id. */
  get(id: number): TreeNode {
    const n = this.nodes[id];
    if (!n) throw new RangeError(`Cannot get node ${id}: the tree has ${this.nodes.length} nodes`);
    return n;
  }

  /**
   * Add children proposed for `parent`, with priors normalized over the siblings unless given.
   *
   * @param parent The node expanded.
   * @param proposals The candidate steps and their rewards.
   * @param priors The children's priors (default {@linkcode normalizedPriors} of `proposals`).
   * @returns The new nodes.
   */
  expand(
    parent: TreeNode,
    proposals: readonly (Proposal & { reward: number })[],
    priors: readonly number[] = normalizedPriors(proposals),
  ): TreeNode[] {
    return proposals.map((p, i) => {
      const node: TreeNode = {
        id: this.nodes.length,
        parent: parent.id,
        depth: parent.depth + 1,
        text: p.text,
        logprob: p.logprob,
        prior: priors[i],
        reward: p.reward,
        visits: 0,
        value: p.reward,
        terminal: p.terminal,
        pruned: false,
        tokens: p.tokens,
        children: [],
      };
      this.nodes.push(node);
      parent.children.push(node.id);
      return node;
    });
  }

  /** Steps from the root to `node` (the root has none). */
  steps(node: TreeNode): string[] {
    const out: string[] = [];
    for (let n = node; n.parent >= 0; n = this.nodes[n.parent]) out.push(n.text);
    return out.reverse();
  }

  /** Nodes from the root to `node`, root included. */
  path(node: TreeNode): TreeNode[] {
    const out: TreeNode[] = [];
    for (
      let n: TreeNode | undefined = node;
      n;
      n = n.parent >= 0 ? this.nodes[n.parent] : undefined
    ) {
      out.push(n);
    }
    return out.reverse();
  }

  /** Children of `node` that were not pruned. */
  live(node: TreeNode): TreeNode[] {
    return node.children.map((c) => this.nodes[c]).filter((c) => !c.pruned);
  }

  /** Leaves (nodes without children). */
  leaves(): TreeNode[] {
    return this.nodes.filter((n) => n.children.length === 0 && n.id !== 0);
  }
}

/**
 * Priors of siblings: softmax of their mean per-token log-probabilities (so that long steps
 * are not punished for their length).
 */
export function normalizedPriors(proposals: readonly Proposal[]): number[] {
  if (proposals.length === 0) return [];
  const s = proposals.map((p) => p.logprob / Math.max(1, p.tokens));
  const max = Math.max(...s);
  const e = s.map((x) => Math.exp(x - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/**
 * Monte-Carlo labels: for every node, correct leaves / graded leaves in its subtree (a leaf is 1
 * if `correct` is true, 0 if false). A leaf without a grade (`correct` undefined: a branch an
 * annotation budget cut before it reached an answer) is not a rollout outcome and is left out of
 * every count; a node with no graded leaf under it gets no `mcLabel` (it is deleted).
 *
 * @param nodes The tree's nodes (index = id, children lists filled).
 */
export function labelMonteCarlo(nodes: TreeNode[]): void {
  const correct = new Array(nodes.length).fill(0);
  const leaves = new Array(nodes.length).fill(0);
  // Children always have larger ids than parents in these trees only when built by expansion;
  // HNC re-attaches subtrees, so walk in post-order explicitly.
  const order: number[] = [];
  const stack = [0];
  while (stack.length) {
    const id = stack.pop()!;
    order.push(id);
    stack.push(...nodes[id].children);
  }
  for (let i = order.length - 1; i >= 0; i--) {
    const n = nodes[order[i]];
    if (n.children.length === 0) {
      leaves[n.id] = n.correct === undefined ? 0 : 1;
      correct[n.id] = n.correct ? 1 : 0;
    } else {
      for (const c of n.children) {
        leaves[n.id] += leaves[c];
        correct[n.id] += correct[c];
      }
    }
    if (leaves[n.id] > 0) n.mcLabel = correct[n.id] / leaves[n.id];
    else delete n.mcLabel;
  }
}
