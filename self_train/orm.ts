/**
 * Outcome reward samples: whole solutions labelled by their final answer's correctness.
 *
 * In the exports an ORM sample is written as: `paper` = `paperPrompt(question, all steps but
 * the last, last step)` (what a paper-format reward model scores for the last step, i.e. the
 * "last" aggregation); `trl` and `openrlhf` = the whole solution as ONE step (steps joined by
 * "\n\n") with the outcome label, since an outcome says nothing about single steps.
 *
 * @module
 */
import type { TreeNode } from "../mcts/mod.ts";
import type { Trajectory } from "../store/mod.ts";
import { ancestry } from "./tree_samples.ts";
import type { RewardSample } from "./types.ts";

/** Options of the ORM sample builders. */
export interface OrmOptions {
  /** The problem statement. */
  question: string;
  /** The samples' `source`. */
  source?: string;
  /** The samples' `problemId`. */
  problemId?: string;
}

/**
 * ORM samples of a tree: one per root-to-leaf path whose leaf is terminal and graded
 * (`correct` true or false; ungraded or cut-off leaves give none). Label 1 when the leaf is
 * correct, else 0. The solution is split as `previous` (all steps but the last) and `current`
 * (the last step); `previousLabels` is left out (see {@linkcode RewardSample}). Identical
 * solutions are given once.
 *
 * @param nodes The tree (index = id, root 0).
 * @param options Question, source, problem id.
 */
export function treeOrmSamples(nodes: readonly TreeNode[], options: OrmOptions): RewardSample[] {
  const paths: { steps: string[]; correct: boolean; meta: Record<string, unknown> }[] = [];
  for (const n of nodes) {
    if (n.parent < 0 || n.children.length > 0 || !n.terminal || n.correct === undefined) continue;
    paths.push({
      steps: ancestry(nodes, n).map((p) => p.text),
      correct: n.correct,
      meta: { node: n.id },
    });
  }
  return toSamples(paths, { ...options, source: options.source ?? "tree" });
}

/**
 * ORM samples of stored trajectories: one per trajectory graded against a gold answer
 * (`correct` not null; pseudo labels count only when `pseudoLabels` is true), label 1 when
 * correct. Identical solutions are given once.
 *
 * @param trajectories A problem's trajectories.
 * @param options Question, source, problem id; whether pseudo-labelled ones count.
 */
export function trajectoryOrmSamples(
  trajectories: readonly Trajectory[],
  options: OrmOptions & { pseudoLabels?: boolean },
): RewardSample[] {
  const paths = trajectories
    .filter((t) =>
      t.correct !== null && t.steps.length > 0 && (!t.pseudoLabel || options.pseudoLabels)
    )
    .map((t) => ({ steps: t.steps, correct: t.correct!, meta: { trajectory: t.id } }));
  return toSamples(paths, { ...options, source: options.source ?? "trajectories" });
}

function toSamples(
  paths: { steps: string[]; correct: boolean; meta: Record<string, unknown> }[],
  options: OrmOptions & { source: string },
): RewardSample[] {
  const seen = new Set<string>();
  const out: RewardSample[] = [];
  for (const p of paths) {
    const key = JSON.stringify(p.steps);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({
      question: options.question,
      previous: p.steps.slice(0, -1),
      current: p.steps.at(-1)!,
      label: p.correct ? 1 : 0,
      kind: "orm",
      source: options.source,
      problemId: options.problemId,
      meta: p.meta,
    });
  }
  return out;
}
