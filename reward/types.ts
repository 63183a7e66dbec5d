/**
 * The reward-model interface: in-process ONNX heads and remote servers implement it.
 *
 * @module
 */

/** Options of one scoring call. */
export interface ScoreOptions {
  /** Cancels the scoring. */
  signal?: AbortSignal;
}

/** A process (or outcome) reward model: one score in [0, 1] per step. */
export interface RewardModel {
  /** Model id. */
  readonly id: string;
  /**
   * Score every step of a solution given the question and the steps before it. Returns one
   * number in [0, 1] per step. Implementations that hold a KV cache score a trajectory
   * incrementally: calling again with one more step only runs the new tokens.
   */
  scoreSteps(question: string, steps: readonly string[], options?: ScoreOptions): Promise<number[]>;
  /**
   * Score several solutions of one question, each as {@linkcode RewardModel.scoreSteps} would.
   * Optional: backends that can put them into one batched run implement it (the search
   * scores every candidate of an expansion at once); callers fall back to `scoreSteps`.
   */
  scoreMany?(
    question: string,
    solutions: readonly (readonly string[])[],
    options?: ScoreOptions,
  ): Promise<number[][]>;
  /** Free sessions and caches. */
  close(): Promise<void>;
}

/** How step scores of a whole solution fold into one. */
export type Aggregation = "min" | "last" | "product" | "mean";

/** Head layouts the engine loads. */
export type RewardHead = "token-classification" | "lm-tokens" | "sequence-classification";

/** Input formats of those heads. */
export type RewardFormat = "qwen-prm" | "math-shepherd" | "paper";

/** The contents of `reward.json` in a reward model directory (each field overridable by a CLI flag). */
export interface RewardConfig {
  /** Head layout. */
  head: RewardHead;
  /** Input format. */
  format: RewardFormat;
  /** math-shepherd: the tag after every step (default " ки"). */
  step_tag?: string;
  /** math-shepherd: the positive and the negative label token (default ["+", "-"]). */
  label_tokens?: [string, string];
  /** qwen-prm: the separator token after every step (default "<extra_0>"). */
  step_token?: string;
  /** qwen-prm: the system prompt. */
  system_prompt?: string;
}
