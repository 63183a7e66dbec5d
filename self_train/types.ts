/**
 * The shapes every data set of this folder is made of.
 *
 * @module
 */

/**
 * What a reward sample is:
 * - `"prm"`: one step judged in the context of the steps before it;
 * - `"hrm-merged"`: two consecutive steps merged (joined by `"\n\n"`) into the current step,
 *   labelled with the second step's label (PAPER.md, "HRM");
 * - `"orm"`: a whole solution, labelled by its final answer's correctness.
 */
export type SampleKind = "prm" | "hrm-merged" | "orm";

/** The sample kinds, in the order manifests count them. */
export const SAMPLE_KINDS: readonly SampleKind[] = ["prm", "hrm-merged", "orm"];

/** One training sample of a reward model: a step in its context and its label. */
export interface RewardSample {
  /** The problem statement. */
  question: string;
  /** The steps before the current one, in order (the chosen path). */
  previous: string[];
  /** The step judged (for `"hrm-merged"`: two steps joined by `"\n\n"`). */
  current: string;
  /**
   * The label in [0, 1]: 1/0 from human ratings or final-answer correctness, the Monte-Carlo
   * score (correct leaves / leaves) for samples read off annotation trees.
   */
  label: number;
  /** What kind of sample it is. */
  kind: SampleKind;
  /** Where it came from, e.g. `"prm800k:phase1_test.jsonl"` or `"run:r1"`. */
  source: string;
  /** The problem's id within its source, when it has one. */
  problemId?: string;
  /**
   * A label for each step of `previous` (same length), for the stepwise formats (TRL,
   * OpenRLHF) that label every step. PRM800K: 1 for a chosen step (0 when its rating is -1);
   * trees: each ancestor's Monte-Carlo score. Absent for `"orm"` samples: an outcome label says
   * nothing of single steps, so stepwise formats write the solution as one step.
   */
  previousLabels?: number[];
  /** Anything else worth keeping (e.g. the tree node id). */
  meta?: Record<string, unknown>;
}
