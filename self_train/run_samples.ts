/**
 * Reward samples of a stored run: PRM / HRM / HNC samples from its labelled trees, ORM samples
 * from its graded trajectories. Streamed tree by tree.
 *
 * @module
 */
import type { TreeNode } from "../mcts/mod.ts";
import type { RunStore, StoredTree, TreeKind } from "../store/mod.ts";
import { mixSeed } from "./_lines.ts";
import { hnc } from "./hnc.ts";
import { trajectoryOrmSamples, treeOrmSamples } from "./orm.ts";
import { problemsOf } from "./sft.ts";
import { type PerDepthOptions, treeSamples } from "./tree_samples.ts";
import type { RewardSample } from "./types.ts";

/** What to read off a run. */
export type RunSampleKind = "prm" | "hrm" | "hnc" | "orm";

/** Options of {@linkcode runRewardSamples}. */
export interface RunSamplesOptions extends Omit<PerDepthOptions, "rng" | "seed"> {
  /**
   * `prm`: PRM samples of every tree; `hrm`: plus merged samples; `hnc`: the `hrm` samples of
   * every tree ∪ those of its HNC tree (PAPER.md); `orm`: graded trajectories.
   */
  kind: RunSampleKind;
  /** Base seed (default 0); each tree's own seeds mix it with the problem and tree ids. */
  seed?: number;
  /** Trees read per page (default 20). */
  pageSize?: number;
  /**
   * Told which tree kind the samples come from, before the first one (`orm`: only when they
   * come from the graded leaves of annotation trees, not from trajectories).
   */
  onTreeKind?: (kind: TreeKind) => void;
  /** Told after each tree (or, for `orm`, each problem). */
  onItem?: () => void;
  /** Cancellation. */
  signal?: AbortSignal;
}

/**
 * Stream the reward samples of a run.
 *
 * Trees: the run's annotation trees (kind `"annotation"`), whose Monte-Carlo labels are
 * recomputed from their graded leaves; if it has none, its search trees (kind `"search"`), which
 * carry Monte-Carlo labels only if something labelled them: their stored `mcLabel` is used, and a
 * search tree without labels is an error that says what is missing. `hnc` needs annotation trees
 * (HNC recomputes labels from graded leaves).
 *
 * Seeds: per tree, `mixSeed(seed, problemId, treeId, purpose)` for the sampling of the tree, the
 * HNC coin, and the sampling of the HNC tree, so a tree's samples do not depend on the others.
 *
 * @param store The run store.
 * @param runId The run.
 * @param options Kind, seed, sampling settings.
 * @throws {Error} When the run does not exist, or its trees carry no labels.
 */
export async function* runRewardSamples(
  store: RunStore,
  runId: string,
  options: RunSamplesOptions,
): AsyncGenerator<RewardSample, void, undefined> {
  if (!(await store.getRun(runId))) throw new Error(`Cannot export run '${runId}': no such run`);
  const questions = new Map<string, string>();
  for await (const p of problemsOf(store, runId)) questions.set(p.problemId, p.question);
  const source = `run:${runId}`;
  if (options.kind === "orm") {
    let trajectories = 0;
    for (const [problemId, question] of questions) {
      options.signal?.throwIfAborted();
      const list = await store.listTrajectories(runId, { problemId });
      trajectories += list.length;
      yield* trajectoryOrmSamples(list, { question, problemId, source });
      options.onItem?.();
    }
    if (trajectories > 0) return;
    // A run of annotation trees stores no trajectories: its graded leaves are the solutions.
    let told = false;
    for await (const tree of store.iterTrees(runId, { kind: "annotation" })) {
      options.signal?.throwIfAborted();
      if (!told) options.onTreeKind?.("annotation");
      told = true;
      const question = questions.get(tree.problemId);
      if (question === undefined) continue;
      yield* treeOrmSamples(tree.nodes as TreeNode[], {
        question,
        problemId: tree.problemId,
        source,
      });
      options.onItem?.();
    }
    return;
  }
  let any = false;
  for await (
    const tree of store.iterTrees(runId, { kind: "annotation", pageSize: options.pageSize })
  ) {
    if (!any) options.onTreeKind?.("annotation");
    any = true;
    yield* samplesOfTree(tree, { questions, options, source });
  }
  if (any) return;
  for await (const tree of store.iterTrees(runId, { kind: "search", pageSize: options.pageSize })) {
    if (!any) options.onTreeKind?.("search");
    any = true;
    checkLabelled(tree, { runId, kind: options.kind });
    yield* samplesOfTree(tree, { questions, options, source });
  }
  if (!any) {
    throw new Error(
      `Cannot export ${options.kind} samples of run '${runId}': it has no annotation trees and no search trees. ${HOW_TO_ANNOTATE}`,
    );
  }
}

function samplesOfTree(
  tree: StoredTree,
  { questions, options, source }: {
    questions: Map<string, string>;
    options: RunSamplesOptions;
    source: string;
  },
): RewardSample[] {
  options.signal?.throwIfAborted();
  const question = questions.get(tree.problemId);
  if (question === undefined) {
    throw new Error(`Cannot export tree ${tree.id}: its problem '${tree.problemId}' is not stored`);
  }
  const seed = options.seed ?? 0;
  const stored = tree.kind === "search";
  const common = {
    fraction: options.fraction,
    single: options.single,
    round: options.round,
    question,
    source,
    problemId: tree.problemId,
    scores: stored ? "stored" as const : "recompute" as const,
  };
  const nodes = tree.nodes as TreeNode[];
  const s = (n: TreeNode[], purpose: string, merged: boolean) =>
    treeSamples(n, { ...common, merged, seed: mixSeed(seed, tree.problemId, tree.id, purpose) });
  let out: RewardSample[];
  if (options.kind === "prm") out = s(nodes, "sample", false);
  else if (options.kind === "hrm") out = s(nodes, "sample", true);
  else {
    const compressed = hnc(nodes, { seed: mixSeed(seed, tree.problemId, tree.id, "hnc") }).nodes;
    out = union(s(nodes, "sample", true), s(compressed, "hnc-sample", true));
  }
  options.onItem?.();
  return out;
}

/**
 * Samples of `a` then those of `b` not already in `a`: the same context, step and label (the
 * kind does not matter: an HNC tree's PRM sample of a moved node is the original tree's merged
 * sample of it).
 *
 * @param a The first list.
 * @param b The second list.
 */
export function union(a: readonly RewardSample[], b: readonly RewardSample[]): RewardSample[] {
  const key = (s: RewardSample) => JSON.stringify([s.question, s.previous, s.current, s.label]);
  const seen = new Set<string>();
  const out: RewardSample[] = [];
  for (const s of [...a, ...b]) {
    const k = key(s);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(s);
  }
  return out;
}

/** What to do when a run has no annotation trees (the error messages end with it). */
const HOW_TO_ANNOTATE =
  "prm, hrm and hnc samples need Monte-Carlo labels, which annotation trees carry: make them with `deno task agent --strategy annotate --problems FILE|synthetic:N --policy DIR|URL --run-id ID` (problems with gold answers; see `deno task agent --help`) and export that run. Other `deno task agent` runs store trajectories (and, for mcts, unlabelled search trees): export them with --kind orm or --kind sft";

function checkLabelled(
  tree: StoredTree,
  { runId, kind }: { runId: string; kind: RunSampleKind },
): void {
  const missing = tree.nodes.filter((n) => n.parent >= 0 && !Number.isFinite(n.mcLabel));
  const what = `${kind} samples of run '${runId}'`;
  if (missing.length > 0) {
    throw new Error(
      `Cannot export ${what}: the run has no annotation trees, and its search trees carry no Monte-Carlo labels (search tree ${tree.id} of problem '${tree.problemId}': ${missing.length} of ${
        tree.nodes.length - 1
      } nodes lack 'mcLabel'). ${HOW_TO_ANNOTATE}`,
    );
  }
  if (kind === "hnc") {
    throw new Error(
      `Cannot export ${what}: HNC recomputes Monte-Carlo labels from graded leaves, which only annotation trees have (the run has search trees only); export it with --kind prm or hrm, or see the README for runs with annotation trees`,
    );
  }
}
