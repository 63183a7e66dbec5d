/**
 * The paper's annotation tree: expand every node fully (K children, to max depth), grade the
 * terminal leaves against the gold answer, and label every node with its Monte-Carlo score
 * (correct leaves / graded leaves below). A leaf cut at max depth without an answer counts as
 * wrong; a branch the budget stopped before it reached an answer or max depth is left ungraded
 * and out of the labels (it is no rollout outcome), so a node with only such branches below it
 * has no label.
 *
 * @module
 */
import { type Budget, BudgetMeter, childSeed } from "./_budget.ts";
import { labelMonteCarlo, StepTree } from "./tree.ts";
import type { Grader, StepPolicy, StepReward, TreeNode } from "./types.ts";

/** Sampling temperature of an annotation tree when none is given (the reference code's). */
export const ANNOTATE_TEMPERATURE = 0.1;

/** Options of {@linkcode annotate}. */
export interface AnnotateOptions {
  /** Proposes steps. */
  policy: StepPolicy;
  /** Grades a finished solution. */
  grade: Grader;
  /** Optional: also record each step's reward-model score. */
  reward?: StepReward;
  /** Children per node (reference code: 5). */
  k?: number;
  /** Maximum depth (reference code: 5; paper: 7). */
  maxDepth?: number;
  /**
   * Depth from which a node gets one child instead of `k` (default: none, the paper's full
   * tree). Below it each branch is one sampled rollout to an answer, so long solutions reach
   * their end within a budget instead of being cut (and counted wrong) by a full tree that
   * grows as k^depth. Labels above it still average every leaf under the node.
   */
  fullDepth?: number;
  /** Sampling temperature (reference code: 0.1). */
  temperature?: number;
  /**
   * Budget: stops expanding when spent. The tree is built breadth-first, so a budget cuts its
   * deepest level: those branches stay ungraded and out of the labels.
   */
  budget?: Budget;
  /** Seed. */
  seed?: number;
  /** Cancellation. */
  signal?: AbortSignal;
  /** Clock. */
  now?: () => number;
}

/**
 * Build and label an annotation tree for `question`.
 *
 * @param question The problem.
 * @param options Policy, grader, shape.
 * @returns The nodes (index = id) with `terminal` set, `correct` on graded leaves and `mcLabel`
 *   on every node with a graded leaf below it.
 */
export async function annotate(question: string, options: AnnotateOptions): Promise<TreeNode[]> {
  const k = options.k ?? 5, maxDepth = options.maxDepth ?? 5, seed = options.seed ?? 0;
  const meter = new BudgetMeter(options.budget ?? {}, options);
  const tree = new StepTree();
  const queue: TreeNode[] = [tree.root];
  while (queue.length && !meter.exhausted()) {
    const node = queue.shift()!;
    const steps = tree.steps(node);
    const props = await options.policy.propose(question, steps, {
      k: node.depth < (options.fullDepth ?? Infinity) ? k : 1,
      seed: childSeed(seed, node.id),
      temperature: options.temperature ?? ANNOTATE_TEMPERATURE,
      signal: options.signal,
    });
    meter.simulations++;
    meter.tokens += props.reduce((s, p) => s + p.tokens, 0);
    const rewards = options.reward
      ? await Promise.all(
        props.map(async (p) => (await options.reward!.score(question, [...steps, p.text])).at(-1)!),
      )
      : props.map(() => NaN);
    const kids = tree.expand(node, props.map((p, i) => ({ ...p, reward: rewards[i] })));
    for (const k of kids) if (Number.isNaN(k.value)) k.value = 0; // unscored: no value estimate
    for (const c of kids) {
      if (!c.terminal && c.depth < maxDepth) queue.push(c);
    }
  }
  const waiting = new Set(queue); // never expanded: the budget ran out first
  for (const n of tree.nodes) {
    if (n.id === 0 || n.children.length > 0) continue;
    if (n.terminal) n.correct = options.grade(tree.steps(n)) ?? false;
    // Cut at max depth, or a dead end (the policy proposed nothing), without an answer: wrong.
    else if (!waiting.has(n)) n.correct = false;
    // else: the budget stopped this branch before it was expanded; it stays ungraded
  }
  labelMonteCarlo(tree.nodes);
  return tree.nodes;
}
