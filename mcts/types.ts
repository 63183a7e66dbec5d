/**
 * The interfaces the search runs against. The search knows nothing of ONNX, HTTP or the
 * database: a policy proposes next steps, a reward scores a step in its context.
 *
 * @module
 */

/** One proposed next step. */
export interface Proposal {
  /** The step's text, without the step delimiter. */
  text: string;
  /** Sum of the token log-probabilities of the step under the policy (for PUCT priors). */
  logprob: number;
  /** Tokens generated for it. */
  tokens: number;
  /** True when the step ends the solution (it holds the final answer, or the policy stopped). */
  terminal: boolean;
}

/** Options of {@linkcode StepPolicy.propose}. */
export interface ProposeOptions {
  /** Number of candidates. */
  k: number;
  /** Seed of the sampler (candidate i uses seed + i). */
  seed: number;
  /** Sampling temperature; 0 is greedy (the policy's default when absent). */
  temperature?: number;
  /** Cancellation. */
  signal?: AbortSignal;
}

/** Proposes next steps; the agent adapts a `PolicyModel` to it. */
export interface StepPolicy {
  /**
   * Propose `k` candidate next steps after `steps` (seeded: same seed, same proposals).
   *
   * @param question The problem.
   * @param steps The steps so far.
   * @param options How many, the seed, cancellation.
   */
  propose(
    question: string,
    steps: readonly string[],
    options: ProposeOptions,
  ): Promise<Proposal[]>;
  /** Release cached state of a pruned branch (optional). */
  release?(question: string, steps: readonly string[]): void;
}

/** Scores steps; the agent adapts a `RewardModel` to it. */
export interface StepReward {
  /** Scores in [0, 1] of every step of `steps`, each in the context of those before it. */
  score(
    question: string,
    steps: readonly string[],
    options?: { signal?: AbortSignal },
  ): Promise<number[]>;
  /** Optional: scores of several solutions at once (one batched run where the backend can). */
  scoreMany?(
    question: string,
    solutions: readonly (readonly string[])[],
    options?: { signal?: AbortSignal },
  ): Promise<number[][]>;
}

/** Grades a finished solution against the gold answer, when there is one. */
export type Grader = (steps: readonly string[]) => boolean | undefined;

/** A node of a search or annotation tree, in the form stored and exported. */
export interface TreeNode {
  /** Index in the tree's node list (the root is 0). */
  id: number;
  /** Parent index; -1 for the root. */
  parent: number;
  /** Steps from the root (the root, the bare question, is 0). */
  depth: number;
  /** The step's text (empty for the root). */
  text: string;
  /** Policy log-probability of the step. */
  logprob: number;
  /** Normalized prior among siblings (PUCT). */
  prior: number;
  /** Reward-model score of this step in context; NaN for the root. */
  reward: number;
  /** Visits (MCTS). */
  visits: number;
  /** Mean backed-up value (MCTS). */
  value: number;
  /** Monte-Carlo label: correct leaves / leaves under it (annotation trees). */
  mcLabel?: number;
  /** True when the step ends the solution. */
  terminal: boolean;
  /** For terminal nodes with a gold answer: was it right. */
  correct?: boolean;
  /** True when the search pruned it. */
  pruned: boolean;
  /** Tokens generated for this step. */
  tokens: number;
  /** Child indices. */
  children: number[];
}
