/**
 * What goes into the run store and what comes out of it.
 *
 * @module
 */
import type { ProblemRow, RunRow, RunStatus, TrajectoryRow, TreeKind } from "./schema.ts";

/**
 * A node of a search or annotation tree: the same shape as `TreeNode` of `mcts/` (the store
 * imports nothing of ours, so it spells the shape out; a test checks both stay the same).
 */
export interface TreeNodeData {
  /** Index in the tree's node list (the root is 0). */
  id: number;
  /** Parent index; -1 for the root. */
  parent: number;
  /** Steps from the root. */
  depth: number;
  /** The step's text (empty for the root). */
  text: string;
  /** Policy log-probability of the step. */
  logprob: number;
  /** Normalized prior among siblings. */
  prior: number;
  /** Reward-model score of the step; NaN for the root (stored as NULL). */
  reward: number;
  /** Visits. */
  visits: number;
  /** Mean backed-up value. */
  value: number;
  /** Monte-Carlo label (annotation trees). */
  mcLabel?: number;
  /** True when the step ends the solution. */
  terminal: boolean;
  /** For terminal nodes with a gold answer: was it right. */
  correct?: boolean;
  /** True when the search pruned it. */
  pruned: boolean;
  /** Tokens generated for this step. */
  tokens: number;
  /** Child indices, in order. */
  children: number[];
}

/** A stored run (its row). */
export type Run = RunRow;

/** A run to create. */
export interface NewRun {
  /** The run's id (chosen by the caller; resuming uses the same id). */
  id: string;
  /** The search strategy, e.g. `"mcts"`. */
  strategy: string;
  /** The strategy's settings (stored as JSON; compared on resume). */
  config: Record<string, unknown>;
  /** The run's seed (compared on resume). */
  seed: number;
  /** Which policy model (compared on resume). */
  policyId: string;
  /** Which reward model, if any (compared on resume). */
  rewardId?: string | null;
  /** Where the problems came from: a file, a data set name (compared on resume). */
  problemsSource: string;
  /** Into how many shards the run is split, if it is. */
  shards?: number | null;
  /** Initial state (default `"running"`). */
  status?: RunStatus;
}

/** A tree to store with a problem. */
export interface TreeInput {
  /** What tree it is. */
  kind: TreeKind;
  /** The seed it was grown with. */
  seed: number;
  /** Its nodes; parents and children lists must agree. */
  nodes: readonly TreeNodeData[];
}

/** A trajectory to store with a problem. */
export interface TrajectoryInput {
  /** The steps' texts. */
  steps: readonly string[];
  /** Reward of every step (NaN allowed). */
  stepRewards: readonly number[];
  /** Aggregated score. */
  score: number;
  /** Monte-Carlo score, if estimated. */
  mcScore?: number | null;
  /** Graded against the gold answer, when there is one. */
  correct?: boolean | null;
  /** True when `correct` is a pseudo label (e.g. a majority vote), not a gold grade. */
  pseudoLabel?: boolean;
  /** True for the search's answer. */
  chosen?: boolean;
  /** The extracted final answer. */
  answer?: string | null;
}

/** One finished problem: its row, its tree and its trajectories, stored together. */
export interface ProblemResult {
  /** The problem's id (unique within the run). */
  problemId: string;
  /** Position in the problem set. */
  index: number;
  /** The question. */
  question: string;
  /** The gold answer, if known. */
  gold?: string | null;
  /** Where the problem came from. */
  source?: string | null;
  /** The shard of the worker that solved it. */
  shard?: number | null;
  /** The chosen solution's text. */
  prediction?: string | null;
  /** The extracted final answer. */
  answer?: string | null;
  /** Graded against `gold` (null without gold). */
  correct?: boolean | null;
  /** Final score of the chosen solution (NaN is stored as NULL). */
  reward?: number | null;
  /** Tokens generated for the problem. */
  tokens: number;
  /** Wall time spent on it. */
  seconds: number;
  /** When it finished (default: the store's clock). */
  finishedAt?: Date;
  /** The search tree, if any. */
  tree?: TreeInput;
  /** Trajectories (they point at the tree when there is one). */
  trajectories?: readonly TrajectoryInput[];
}

/** A stored problem (its row). */
export type Problem = ProblemRow;

/** A stored tree with its nodes rebuilt (children lists filled, NaN rewards restored). */
export interface StoredTree {
  /** The tree's id. */
  id: number;
  /** The run. */
  runId: string;
  /** The problem. */
  problemId: string;
  /** What tree it is. */
  kind: TreeKind;
  /** The seed it was grown with. */
  seed: number;
  /** Number of nodes written. */
  nodeCount: number;
  /** When it was stored. */
  createdAt: Date;
  /** The nodes, by id. */
  nodes: TreeNodeData[];
}

/** A stored trajectory (NULL step rewards read back as NaN). */
export type Trajectory = Omit<TrajectoryRow, "stepRewards"> & { stepRewards: number[] };

/** Totals of a run. */
export interface RunSummary {
  /** Problems finished. */
  problems: number;
  /** Problems graded (those with a gold answer). */
  graded: number;
  /** Graded problems answered correctly. */
  correct: number;
  /** `correct / graded`; null when nothing was graded. */
  accuracy: number | null;
  /** Tokens generated. */
  tokens: number;
  /** Wall time spent, summed over problems. */
  seconds: number;
}
