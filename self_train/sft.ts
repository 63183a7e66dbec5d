/**
 * KL-regularized self-training data (PAPER.md, "Self-training"): the good solutions of a run,
 * each with the reference policy's teacher-forced log-probabilities, so the trainer can add
 * β · log(1 + KL(π_ref ‖ π_θ)) without running the reference model again.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { PolicyModel } from "../inference/mod.ts";
import type { Problem, RunStore, Trajectory } from "../store/mod.ts";
import { ancestry, labelledCopy } from "./tree_samples.ts";

/** One KL-SFT training record (a line of the `sft` export). */
export interface SftRecord {
  /** The policy's prompt for the question (`promptFor(question)`). */
  prompt: string;
  /** The solution: its steps joined by "\n\n". */
  completion: string;
  /** Token ids of the prompt under the reference policy's tokenizer. */
  prompt_ids: number[];
  /** Token ids of the completion (encoded after the prompt, no special tokens). */
  completion_ids: number[];
  /** The reference policy's log-probability of each completion token. */
  ref_logprobs: number[];
  /** The reference policy's top-k alternatives at each completion position, most likely first. */
  ref_top: { id: number; logprob: number }[][];
  /** `"trajectory"` (a stored trajectory) or `"annotation-tree"` (a path of an annotation tree). */
  source: string;
  /** The run. */
  run_id: string;
  /** The problem. */
  problem_id: string;
  /** The solution's aggregated reward; null when unknown. */
  score: number | null;
  /** Its Monte-Carlo score; null when not estimated. */
  mc_score: number | null;
  /** True when kept by agreeing with the reward-weighted majority (no gold answer). */
  pseudo_label: boolean;
  /** The reference policy's id. */
  policy_id: string;
}

/** A solution that may become a record. */
export interface SftCandidate {
  /** Its steps. */
  steps: string[];
  /** Aggregated reward (NaN when unknown). */
  score: number;
  /** Monte-Carlo score, if estimated. */
  mcScore: number | null;
  /** Graded against the gold answer (null without one). */
  correct: boolean | null;
  /** The extracted final answer, as stored. */
  answer: string | null;
  /** `"trajectory"` or `"annotation-tree"`. */
  source: string;
}

/** The Monte-Carlo score a solution needs to be trained on (the reference code's 0.95). */
export const SFT_MIN_MC = 0.95;

/** The reward a pseudo-labelled solution (no gold answer) needs when no floor is given. */
export const SFT_PSEUDO_MIN_REWARD = 0.5;

/** Thresholds of {@linkcode selectSft}. */
export interface SftThresholds {
  /** Keep solutions whose Monte-Carlo score is at least this (default 0.95, the reference's). */
  minMc?: number;
  /**
   * A reward floor. With a gold answer it applies only when given: correct solutions must also
   * reach it (an unknown reward, a run without a reward model, passes). Without one it is the
   * pseudo-label's floor (default 0.5): majority-agreeing solutions must reach it.
   */
  minReward?: number;
}

/**
 * The reward-weighted majority answer: the answer with the largest sum of scores (NaN and
 * negative scores weigh 0; null answers do not vote). Ties go to the answer seen first.
 *
 * @param candidates A problem's solutions.
 * @returns The answer, or undefined when none has an answer.
 */
export function weightedMajority(
  candidates: readonly { answer: string | null; score: number }[],
): string | undefined {
  const weight = new Map<string, number>();
  for (const c of candidates) {
    if (c.answer === null || c.answer === undefined) continue;
    const w = Number.isFinite(c.score) && c.score > 0 ? c.score : 0;
    weight.set(c.answer, (weight.get(c.answer) ?? 0) + w);
  }
  let best: string | undefined, bestW = -Infinity;
  for (const [a, w] of weight) {
    if (w > bestW) [best, bestW] = [a, w];
  }
  return best;
}

/**
 * Which of a problem's solutions to train on.
 * - With a gold answer: those with a Monte-Carlo score >= `minMc`, and those graded correct
 *   (with a known reward >= `minReward` when that is given; being right is the Monte-Carlo
 *   score of one rollout, and reward scales differ between models); `pseudoLabel` false.
 * - Without one: those with a reward >= `minReward` whose answer equals the reward-weighted
 *   majority answer of all the problem's solutions ({@linkcode weightedMajority});
 *   `pseudoLabel` true.
 *
 * @param candidates One problem's solutions.
 * @param options Whether the problem has a gold answer; thresholds.
 * @returns The kept solutions, in their order.
 */
export function selectSft(
  candidates: readonly SftCandidate[],
  options: SftThresholds & { gold: boolean },
): (SftCandidate & { pseudoLabel: boolean })[] {
  const minMc = options.minMc ?? SFT_MIN_MC, floor = options.minReward;
  if (options.gold) {
    const rewarded = (c: SftCandidate) =>
      floor === undefined || !Number.isFinite(c.score) || c.score >= floor;
    return candidates
      .filter((c) =>
        (c.mcScore !== null && c.mcScore >= minMc) || (c.correct === true && rewarded(c))
      )
      .map((c) => ({ ...c, pseudoLabel: false }));
  }
  const majority = weightedMajority(candidates);
  if (majority === undefined) return [];
  const minReward = floor ?? SFT_PSEUDO_MIN_REWARD;
  return candidates
    .filter((c) => c.score >= minReward && c.answer === majority)
    .map((c) => ({ ...c, pseudoLabel: true }));
}

/** The default step prompt of the policy: `Question: {q}\nAnswer:\n` (the agent's plain frame). */
export function plainPrompt(question: string): string {
  return `Question: ${question}\nAnswer:\n`;
}

/** Options of {@linkcode sftRecords}. */
export interface SftOptions extends SftThresholds {
  /** The REFERENCE policy whose log-probabilities are recorded. */
  policy: PolicyModel;
  /** The policy's prompt for a question (default {@linkcode plainPrompt}). */
  promptFor?: (question: string) => string;
  /** Alternatives recorded per position (default 20). */
  topK?: number;
  /** Where solutions come from (default both): stored trajectories, annotation-tree paths. */
  from?: readonly ("trajectories" | "trees")[];
  /** Problems read per page from the store (default 100). */
  pageSize?: number;
  /** Told after each problem (for a progress bar). */
  onProblem?: (info: { problemId: string; records: number }) => void;
  /** Cancellation. */
  signal?: AbortSignal;
}

/**
 * Stream the KL-SFT records of a run, problem by problem (never the whole run in memory):
 * candidates from its trajectories and from the terminal, graded paths of its annotation
 * trees (Monte-Carlo score = the leaf's, reward = the smallest step reward on the path),
 * selected by {@linkcode selectSft}, each prompt + completion given once, scored by
 * `policy.score(prompt, completion, { topK })`.
 *
 * @param store The run store.
 * @param runId The run.
 * @param options Reference policy, prompt, top-k, thresholds, sources.
 * @example
 * ```ts
 * for await (const r of sftRecords(store, "r1", { policy })) console.log(r.completion);
 * ```
 */
export async function* sftRecords(
  store: RunStore,
  runId: string,
  options: SftOptions,
): AsyncGenerator<SftRecord, void, undefined> {
  const from = options.from ?? ["trajectories", "trees"];
  // A run without a reward model stored its solutions' unknown scores as 0: read them as unknown.
  const rewardId = (await store.getRun(runId))?.rewardId;
  const scored = rewardId !== null && rewardId !== undefined;
  const promptFor = options.promptFor ?? plainPrompt;
  const seen = new Set<string>();
  for await (const problem of problemsOf(store, runId, options.pageSize ?? 100)) {
    options.signal?.throwIfAborted();
    const candidates: SftCandidate[] = [];
    if (from.includes("trajectories")) {
      const list = await store.listTrajectories(runId, { problemId: problem.problemId });
      candidates.push(...list.map((t) => fromTrajectory(t, scored)));
    }
    if (from.includes("trees")) {
      for (const t of await store.getTrees(runId, problem.problemId)) {
        if (t.kind === "annotation") candidates.push(...fromTree(t.nodes));
      }
    }
    const gold = problem.gold !== null && problem.gold !== undefined;
    let records = 0;
    for (const c of selectSft(candidates, { ...options, gold })) {
      const prompt = promptFor(problem.question), completion = c.steps.join("\n\n");
      const key = createHash("sha256").update(prompt).update("\u0000").update(completion)
        .digest("hex");
      if (seen.has(key)) continue;
      seen.add(key);
      const scored = await options.policy.score(prompt, completion, {
        topK: options.topK ?? 20,
        signal: options.signal,
      });
      records++;
      yield {
        prompt,
        completion,
        prompt_ids: scored.promptIds,
        completion_ids: scored.tokens.map((t) => t.id),
        ref_logprobs: scored.tokens.map((t) => t.logprob),
        ref_top: scored.tokens.map((t) => t.top),
        source: c.source,
        run_id: runId,
        problem_id: problem.problemId,
        score: Number.isFinite(c.score) ? c.score : null,
        mc_score: c.mcScore,
        pseudo_label: c.pseudoLabel,
        policy_id: options.policy.id,
      };
    }
    options.onProblem?.({ problemId: problem.problemId, records });
  }
}

/** A run's problems, page by page. */
export async function* problemsOf(
  store: RunStore,
  runId: string,
  pageSize = 100,
): AsyncGenerator<Problem, void, undefined> {
  for (let offset = 0;; offset += pageSize) {
    const page = await store.listProblems(runId, { limit: pageSize, offset });
    yield* page;
    if (page.length < pageSize) return;
  }
}

function fromTrajectory(t: Trajectory, scored: boolean): SftCandidate {
  return {
    steps: t.steps,
    score: scored ? t.score : NaN,
    mcScore: t.mcScore ?? null,
    correct: t.pseudoLabel ? null : t.correct ?? null,
    answer: t.answer ?? null,
    source: "trajectory",
  };
}

function fromTree(nodes: Parameters<typeof labelledCopy>[0]): SftCandidate[] {
  const tree = labelledCopy(nodes, "recompute");
  const out: SftCandidate[] = [];
  for (const n of tree) {
    if (n.parent < 0 || n.children.length > 0 || !n.terminal || n.correct === undefined) continue;
    const path = ancestry(tree, n);
    const rewards = path.map((p) => p.reward).filter(Number.isFinite);
    out.push({
      steps: path.map((p) => p.text),
      score: rewards.length ? Math.min(...rewards) : NaN,
      mcScore: n.mcLabel ?? null,
      correct: n.correct,
      answer: null,
      source: "annotation-tree",
    });
  }
  return out;
}
