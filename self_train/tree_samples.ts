/**
 * Reward samples read off a Monte-Carlo-labelled tree (PAPER.md, "Auto-labelled trees"):
 * per-depth sampling of nodes, each giving a PRM sample and, for HRM, a merged sample.
 *
 * @module
 */
import { Random } from "../inference/mod.ts";
import { labelMonteCarlo, type TreeNode } from "../mcts/mod.ts";
import type { RewardSample } from "./types.ts";

/** How the per-depth quota `fraction × group size` is rounded to a whole number of nodes. */
export type QuotaRounding = "ceil" | "floor";

/** Options of {@linkcode sampleNodesPerDepth}. */
export interface PerDepthOptions {
  /** The random source (seeded); or give `seed`. */
  rng?: Random;
  /** Seed of a fresh `Random` when `rng` is absent (default 0). */
  seed?: number;
  /** Share of a score group taken at least (default 0.1: PAPER.md's 10%). */
  fraction?: number;
  /** Nodes taken from a depth whose nodes all have one score (default 5). */
  single?: number;
  /**
   * Rounding of `fraction × group size` (default `"ceil"`, so a group of 15 gives 2; the
   * reference code truncates with Python's `int()`, which is `"floor"`).
   */
  round?: QuotaRounding;
}

/**
 * How many nodes a score group of `size` gives when the depth has several distinct scores and
 * its smallest group has `smallest` nodes: max(smallest, round(fraction × size)), never more
 * than the group holds.
 *
 * @param size The group's size.
 * @param smallest The smallest group's size at that depth.
 * @param options Fraction and rounding.
 */
export function groupQuota(
  size: number,
  smallest: number,
  options: { fraction?: number; round?: QuotaRounding } = {},
): number {
  const x = size * (options.fraction ?? 0.1);
  // 0.1 * 30 is 3.0000000000000004 in floating point: round with a little slack.
  const share = (options.round ?? "ceil") === "ceil" ? Math.ceil(x - 1e-9) : Math.floor(x + 1e-9);
  return Math.min(size, Math.max(smallest, share));
}

/**
 * PAPER.md's per-depth sampling. For every depth >= 1 (the root is never sampled) group the
 * nodes by their `mcLabel`; if the depth has more than one distinct score, take
 * {@linkcode groupQuota} nodes from each group, else up to `single` (5) nodes. Nodes are drawn
 * without replacement by a seeded partial Fisher–Yates shuffle, groups in ascending score,
 * nodes in id order before the draw.
 *
 * @param nodes A labelled tree (index = id; every non-root node has `mcLabel`).
 * @param options Seed or rng, fraction, single-score quota, rounding.
 * @returns The sampled nodes, by depth then id.
 * @throws {RangeError} When a non-root node has no finite `mcLabel`.
 */
export function sampleNodesPerDepth(
  nodes: readonly TreeNode[],
  options: PerDepthOptions = {},
): TreeNode[] {
  const rng = options.rng ?? new Random(options.seed ?? 0);
  const byDepth = new Map<number, TreeNode[]>();
  for (const n of nodes) {
    if (n.parent < 0) continue;
    scoreOf(n);
    const list = byDepth.get(n.depth) ?? [];
    list.push(n);
    byDepth.set(n.depth, list);
  }
  const out: TreeNode[] = [];
  for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
    const level = byDepth.get(depth)!.sort((a, b) => a.id - b.id);
    const groups = Map.groupBy(level, scoreOf);
    const scores = [...groups.keys()].sort((a, b) => a - b);
    if (scores.length === 1) {
      out.push(...draw(level, { k: Math.min(options.single ?? 5, level.length), rng }));
      continue;
    }
    const smallest = Math.min(...scores.map((s) => groups.get(s)!.length));
    for (const s of scores) {
      const g = groups.get(s)!;
      out.push(...draw(g, { k: groupQuota(g.length, smallest, options), rng }));
    }
  }
  return out.sort((a, b) => a.depth - b.depth || a.id - b.id);
}

/** `k` items of `list` drawn without replacement (partial Fisher–Yates). */
function draw<T>(list: readonly T[], { k, rng }: { k: number; rng: Random }): T[] {
  const a = [...list];
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(a.length - i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, k);
}

function scoreOf(n: TreeNode): number {
  if (typeof n.mcLabel !== "number" || !Number.isFinite(n.mcLabel)) {
    throw new RangeError(
      `Cannot sample node ${n.id} (depth ${n.depth}): it has no Monte-Carlo label ('mcLabel' must be a finite number: got ${n.mcLabel})`,
    );
  }
  return n.mcLabel;
}

/** Options of {@linkcode treeSamples}. */
export interface TreeSampleOptions extends PerDepthOptions {
  /** The problem statement. */
  question: string;
  /** Also give a merged (HRM) sample per sampled node of depth >= 2 (default false). */
  merged?: boolean;
  /**
   * Where the scores come from: `"recompute"` (default) labels a copy of the tree with
   * `labelMonteCarlo` (a leaf counts 1 iff `correct` is true, ungraded leaves not at all; nodes
   * left without a label give no sample); `"stored"` uses the nodes' own `mcLabel` (every
   * non-root node must have one).
   */
  scores?: "recompute" | "stored";
  /** The samples' `source` (default `"tree"`). */
  source?: string;
  /** The samples' `problemId`. */
  problemId?: string;
}

/**
 * Reward samples of a tree: per-depth sampling ({@linkcode sampleNodesPerDepth}); each sampled
 * node gives a PRM sample (previous = its ancestors' steps, current = its step, label = its
 * Monte-Carlo score) and, with `merged`, when its depth is >= 2, a merged sample (previous =
 * the ancestors above its parent, current = parent's step + "\n\n" + its step, label = its own
 * score). `previousLabels` holds the ancestors' scores. The input is not changed.
 *
 * @param nodes The tree (index = id, root 0).
 * @param options Question, merged samples, score source, sampling.
 * @returns PRM samples, each followed by its merged sample.
 * @example
 * ```ts
 * const samples = treeSamples(nodes, { question: "1+1?", merged: true, seed: 7 });
 * ```
 */
export function treeSamples(
  nodes: readonly TreeNode[],
  options: TreeSampleOptions,
): RewardSample[] {
  const tree = labelledCopy(nodes, options.scores ?? "recompute");
  const base = { question: options.question, source: options.source ?? "tree" };
  const out: RewardSample[] = [];
  // A node with no graded leaf below it (only branches an annotation budget cut) has no label
  // after a recompute: it is no sample. Its ancestors keep theirs if they have other leaves.
  const labelled = tree.filter((n) => n.parent < 0 || n.mcLabel !== undefined);
  for (const n of sampleNodesPerDepth(labelled, options)) {
    const path = ancestry(tree, n); // root excluded, n included
    const steps = path.map((p) => p.text), labels = path.map((p) => p.mcLabel!);
    const meta = { node: n.id, depth: n.depth };
    const common = { ...base, problemId: options.problemId, label: n.mcLabel!, meta };
    out.push({
      ...common,
      previous: steps.slice(0, -1),
      previousLabels: labels.slice(0, -1),
      current: n.text,
      kind: "prm",
    });
    if (options.merged && path.length >= 2) {
      out.push({
        ...common,
        previous: steps.slice(0, -2),
        previousLabels: labels.slice(0, -2),
        current: `${steps.at(-2)}\n\n${n.text}`,
        kind: "hrm-merged",
      });
    }
  }
  return out;
}

/** A deep copy of a tree with checked ids, labelled as asked. */
export function labelledCopy(
  nodes: readonly TreeNode[],
  scores: "recompute" | "stored",
): TreeNode[] {
  if (nodes.length === 0 || nodes[0].parent !== -1) {
    throw new RangeError("Cannot read a tree without a root: node 0 must have parent -1");
  }
  const copy = nodes.map((n, i) => {
    if (n.id !== i) throw new RangeError(`Cannot read a tree: node at index ${i} has id ${n.id}`);
    return { ...n, children: [...n.children] };
  });
  if (scores === "recompute") labelMonteCarlo(copy);
  else copy.forEach((n) => n.parent >= 0 && scoreOf(n));
  return copy;
}

/** Nodes from the root's child down to `node` (the root excluded). */
export function ancestry(nodes: readonly TreeNode[], node: TreeNode): TreeNode[] {
  const out: TreeNode[] = [];
  for (let n = node; n.parent >= 0; n = nodes[n.parent]) {
    out.push(n);
    if (out.length > nodes.length) {
      throw new RangeError(`Cannot walk up from node ${node.id}: the parents form a cycle`);
    }
  }
  return out.reverse();
}
