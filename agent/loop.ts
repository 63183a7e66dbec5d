/**
 * The agent loop: problem -> search -> grade -> store, over a whole problem set, resumable
 * and shardable, with progress on stderr.
 *
 * @module
 */
import { type PolicyModel, Progress } from "../inference/mod.ts";
import {
  annotate,
  ANNOTATE_TEMPERATURE,
  beam,
  bestOfN,
  type Budget,
  type ChooseRule,
  DEFAULT_TEMPERATURE,
  greedy,
  mcts,
  MCTS_DEFAULTS,
  type SearchEvent,
  type Solution,
  type SolutionScorer,
  stepGreedy,
  type TreeNode,
  vote,
} from "../mcts/mod.ts";
import { aggregateScores, type Aggregation, type RewardModel } from "../reward/mod.ts";
import { type RunStore, shardOf, type TrajectoryInput } from "../store/mod.ts";
import {
  DEFAULT_MAX_STEP_TOKENS,
  PolicySteps,
  type PolicyStepsOptions,
  RewardSteps,
} from "./adapters.ts";
import { answerKey, extractAnswer, gradeKindFor, gradeSolution } from "./grading.ts";
import type { Problem } from "./problems.ts";

/** Search strategies of the agent. */
export type Strategy = "mcts" | "greedy" | "best-of-n" | "step-greedy" | "beam";

/** The strategies, for validation and help. */
export const STRATEGIES: readonly Strategy[] = [
  "mcts",
  "greedy",
  "best-of-n",
  "step-greedy",
  "beam",
];

/**
 * What the agent runs: a search strategy, or `"annotate"`: the paper's annotation tree of each
 * problem (every node expanded into K children down to `fullDepth`, one sampled rollout per
 * branch below it, leaves graded against the gold answer, every node labelled with its
 * Monte-Carlo score), the data that PRM, HRM and HNC exports read.
 */
export type AgentStrategy = Strategy | "annotate";

/** The agent's strategies, for validation and help. */
export const AGENT_STRATEGIES: readonly AgentStrategy[] = [...STRATEGIES, "annotate"];

/** Annotation trees: children per node (the paper's reference code: 5). */
export const ANNOTATE_K = 5;

/**
 * Annotation trees: depth down to which every node gets K children; below it each branch is one
 * sampled rollout. 2 gives K + K² branches whose labels average several leaves, and a tree whose
 * size grows with K² times the solution length instead of K to the power of it.
 */
export const ANNOTATE_FULL_DEPTH = 2;

/** Default maximum steps of a solution: 7 operations, a correction or two, and the answer. */
export const MAX_DEPTH = 12;

/** N of best-of-n and step-greedy, and beam width, when none is given. */
export const DEFAULT_N = 4;

/**
 * Which strategies read each search setting: the one table behind the CLI's refusal of a flag
 * the strategy ignores, the server's refusal of such a field, and what a run records.
 */
export const STRATEGY_SETTINGS: {
  readonly [setting in "n" | "k" | "temperature"]: readonly AgentStrategy[];
} = {
  n: ["best-of-n", "step-greedy", "beam"],
  k: ["mcts", "beam", "annotate"],
  temperature: ["mcts", "best-of-n", "step-greedy", "beam", "annotate"], // greedy decodes at 0
};

/** MCTS's per-problem budget when none is given. */
const MCTS_BUDGET: Budget = Object.freeze({ simulations: 24 });

/** MCTS prunes children this far under their best sibling unless told otherwise. */
const MCTS_PRUNE_GAP = 0.5;

/** The models a run uses. */
export interface AgentModels {
  /** The policy. */
  policy: PolicyModel;
  /** The step reward (PRM/HRM) for mcts, step-greedy, beam, and best-of-n without an ORM. */
  reward?: RewardModel;
  /** An outcome reward model for best-of-n (scores the whole solution as one step). */
  orm?: RewardModel;
}

/** Settings of a search, per problem. */
export interface SolveOptions {
  /** Strategy. */
  strategy: Strategy;
  /** N of best-of-n and step-greedy; beam width (default 4). */
  n?: number;
  /** Children per MCTS expansion / candidates per beam (default 5). */
  k?: number;
  /** Maximum steps (default 12). */
  maxDepth?: number;
  /** Per-problem budget (MCTS default: 24 simulations). */
  budget?: Budget;
  /** How step scores fold into a solution score (default "min"). */
  aggregation?: Aggregation;
  /** Sampling temperature (default 1; greedy uses 0). */
  temperature?: number;
  /** MCTS: prune children this far under their best sibling (default 0.5). */
  pruneGap?: number;
  /** MCTS: exploration constant of PUCT (default 1.5). */
  cPuct?: number;
  /** MCTS: how the answer is chosen from the tree (default "step", the best sibling at each level). */
  choose?: ChooseRule;
  /** Seed. */
  seed?: number;
  /** Prompt frame, step delimiter, per-step token limit. */
  steps?: PolicyStepsOptions;
  /** Cancellation. */
  signal?: AbortSignal;
  /** Live search events (MCTS). */
  onEvent?: (e: SearchEvent) => void;
}

/** What solving one problem gives. */
export interface Solved {
  /** The chosen solution's steps. */
  steps: string[];
  /** Their rewards (NaN where not scored). */
  stepRewards: number[];
  /** The chosen solution's aggregate score (NaN when unscored). */
  score: number;
  /** Whether it reached a final step. */
  complete: boolean;
  /** Tokens generated. */
  tokens: number;
  /** The search tree (MCTS). */
  tree?: TreeNode[];
  /** Every candidate solution considered. */
  candidates: Solution[];
  /** Wall time in ms. */
  ms: number;
}

function needReward(models: AgentModels, strategy: Strategy): RewardModel {
  if (!models.reward) {
    throw new Error(`Strategy '${strategy}' needs a step reward model (--reward DIR|URL)`);
  }
  return models.reward;
}

/**
 * Solve one question with the chosen strategy.
 *
 * @param question The problem text.
 * @param options Models and the search settings.
 */
export async function solve(
  question: string,
  options: SolveOptions & { models: AgentModels },
): Promise<Solved> {
  const { models, strategy } = options;
  const policy = new PolicySteps(models.policy, options.steps);
  const agg = options.aggregation ?? "min";
  const common = {
    policy,
    maxDepth: options.maxDepth ?? MAX_DEPTH,
    seed: options.seed ?? 0,
    temperature: options.temperature,
    budget: options.budget,
    signal: options.signal,
  };
  const t0 = performance.now();
  if (strategy === "mcts") {
    const reward = new RewardSteps(needReward(models, strategy));
    const r = await mcts(question, {
      ...common,
      reward,
      k: options.k ?? MCTS_DEFAULTS.k,
      budget: options.budget ?? MCTS_BUDGET,
      pruneGap: options.pruneGap ?? MCTS_PRUNE_GAP,
      cPuct: options.cPuct,
      choose: options.choose,
      onEvent: options.onEvent,
    });
    const leaves = r.nodes.filter((n) => n.terminal && !n.pruned);
    const byId = (n: TreeNode) => pathOf(r.nodes, n);
    const candidates = leaves.map((n) => {
      const path = byId(n);
      const stepRewards = path.map((p) => p.reward);
      return {
        steps: path.map((p) => p.text),
        stepRewards,
        score: aggregateScores(stepRewards, agg),
        complete: true,
        tokens: path.reduce((s, p) => s + p.tokens, 0),
      };
    });
    let { steps, stepRewards, complete } = r, tokens = r.stats.tokens;
    if (!complete) {
      // The budget ran out above a final step: finish the chosen path greedily and score it,
      // so that a search always answers (the tree keeps only what the search expanded).
      const g = await greedy(question, { ...common, budget: undefined, prefix: steps });
      const rewards = await reward.score(question, g.best.steps, { signal: options.signal });
      steps = g.best.steps;
      stepRewards = [...stepRewards, ...rewards.slice(stepRewards.length)];
      complete = g.best.complete;
      tokens += g.stats.tokens;
    }
    return {
      steps,
      stepRewards,
      score: aggregateScores(stepRewards, agg),
      complete,
      tokens,
      tree: r.nodes,
      candidates,
      ms: performance.now() - t0,
    };
  }
  let res;
  if (strategy === "greedy") res = await greedy(question, common);
  else if (strategy === "best-of-n") {
    res = await bestOfN(question, {
      ...common,
      n: options.n ?? DEFAULT_N,
      scorer: scorerOf(models, agg),
    });
  } else if (strategy === "step-greedy") {
    const reward = new RewardSteps(needReward(models, strategy));
    res = await stepGreedy(question, { ...common, n: options.n ?? DEFAULT_N, reward });
  } else if (strategy === "beam") {
    const reward = new RewardSteps(needReward(models, strategy));
    res = await beam(question, {
      ...common,
      width: options.n ?? DEFAULT_N,
      expand: options.k ?? MCTS_DEFAULTS.k,
      reward,
    });
  } else {
    throw new RangeError(
      `Cannot solve as 'strategy' must be one of ${
        STRATEGIES.join(", ")
      }: current value is ${strategy}`,
    );
  }
  const b = res.best;
  return {
    steps: b.steps,
    stepRewards: b.stepRewards.length ? b.stepRewards : b.steps.map(() => NaN),
    score: strategy === "greedy" ? NaN : b.score,
    complete: b.complete,
    tokens: res.stats.tokens,
    candidates: res.candidates,
    ms: performance.now() - t0,
  };
}

function pathOf(nodes: TreeNode[], n: TreeNode): TreeNode[] {
  const out: TreeNode[] = [];
  for (let c = n; c.parent >= 0; c = nodes[c.parent]) out.push(c);
  return out.reverse();
}

/** Best-of-N scorer: the ORM on the whole solution, else aggregated step rewards. */
function scorerOf(models: AgentModels, agg: Aggregation): SolutionScorer {
  if (models.orm) {
    const orm = new RewardSteps(models.orm);
    return async (q, steps, o) => {
      const [score] = await orm.score(q, [steps.join("\n\n")], o);
      return { score, stepRewards: [] };
    };
  }
  const reward = new RewardSteps(needReward(models, "best-of-n"));
  return async (q, steps, o) => {
    const stepRewards = await reward.score(q, steps, o);
    return { score: aggregateScores(stepRewards, agg), stepRewards };
  };
}

/** Options of {@linkcode runAgent}. */
export interface RunAgentOptions extends Omit<SolveOptions, "strategy"> {
  /** The strategy, or `"annotate"` for annotation trees ({@linkcode AgentStrategy}). */
  strategy: AgentStrategy;
  /**
   * Annotation trees: depth down to which every node gets `k` children (default
   * {@linkcode ANNOTATE_FULL_DEPTH}); `maxDepth` or more expands every node fully, the paper's tree.
   */
  fullDepth?: number;
  /** The run's id (resuming uses the same id). */
  runId: string;
  /** The store. */
  store: RunStore;
  /** Models. */
  models: AgentModels;
  /** Where the problems came from (stored with the run). */
  source: string;
  /** This worker's shard of the run. */
  shard?: { index: number; count: number };
  /** Problems solved at once (default 1; remote backends take more). */
  concurrency?: number;
  /** Progress bar (default: on stderr). */
  progress?: boolean;
  /**
   * Digests of the models' weights (`weightsDigest` of inference/ for each location), stored
   * with the run: a resume whose weights differ (a model retrained in place keeps its directory
   * name, the id a run records) is refused. Without them nothing is checked (the stored digests
   * are kept); runs stored before digests were recorded resume as before.
   */
  weights?: { policy?: string; reward?: string; orm?: string };
}

/** Totals of a run, as the CLI prints them. */
export interface RunReport {
  /** The run. */
  runId: string;
  /** The strategy. */
  strategy: AgentStrategy;
  /** Problems finished in the run so far (this process and earlier ones of the same id). */
  problems: number;
  /** Of those, correct. */
  correct: number;
  /** correct / graded (NaN when nothing was graded). */
  accuracy: number;
  /** Tokens generated for the run's finished problems. */
  tokensGenerated: number;
  /** Problems finished by this process. */
  solvedNow: number;
  /** Tokens generated by this process. */
  tokensNow: number;
  /** Wall seconds of this process. */
  seconds: number;
  /** Problems skipped because an earlier run of this id finished them. */
  skipped: number;
  /** Whether a signal stopped it early. */
  stopped: boolean;
}

/**
 * Solve every problem of a set, store each result in one transaction, skip problems already
 * finished under this run id, and stop cleanly on abort (what is done stays committed).
 *
 * @param problems The problem set.
 * @param options Store, models, search settings.
 */
export async function runAgent(
  problems: readonly Problem[],
  options: RunAgentOptions,
): Promise<RunReport> {
  const { store, models, strategy } = options;
  const seed = options.seed ?? 0;
  if (strategy === "annotate") {
    const goldless = problems.filter((p) => p.gold === undefined);
    if (goldless.length > 0) {
      throw new Error(
        `Cannot annotate: Monte-Carlo labels need a gold answer for every problem, and ${goldless.length} of ${problems.length} have none (first: '${
          goldless[0].id
        }', problem ${goldless[0].index + 1} of the set)`,
      );
    }
  }
  // A run stored before the problem count was recorded resumes as it was stored.
  const prior = await store.getRun(options.runId);
  const legacy = prior !== undefined && !("problems" in prior.config);
  const weighed = prior === undefined || "weights" in prior.config;
  const weights = options.weights ?? prior?.config.weights;
  await store.getOrCreateRun({
    id: options.runId,
    strategy,
    config: {
      ...configOf(
        options,
        legacy ? undefined : problems.length,
        prior === undefined ? CONFIG_VERSION : Number(prior.config.configVersion ?? 1),
        [...new Set(problems.map((p) => p.source))].sort().join(","),
      ),
      ...(weights && weighed ? { weights } : {}),
    },
    seed,
    policyId: models.policy.id,
    rewardId: models.reward?.id ?? models.orm?.id ?? null,
    problemsSource: options.source,
    shards: options.shard?.count ?? null,
  });
  const finished = await store.finishedProblemIds(options.runId);
  const mine = problems.filter((p) =>
    !options.shard || shardOf(p.id, options.shard.count) === options.shard.index
  );
  const todo = mine.filter((p) => !finished.has(p.id));
  const bar = options.progress === false ? undefined : new Progress(`${strategy}`, {
    total: todo.length,
    unit: "problems",
  });
  const t0 = performance.now();
  let correct = 0, graded = 0, tokens = 0, done = 0, stopped = false;
  const work = async (p: Problem) => {
    const r = strategy === "annotate"
      ? await annotateAndStore(p, { ...options, seed: seed + p.index })
      : await solveAndStore(p, { ...options, strategy, seed: seed + p.index });
    done++;
    tokens += r.tokens;
    if (r.correct !== null) {
      graded++;
      if (r.correct) correct++;
    }
    const secs = (performance.now() - t0) / 1000;
    bar?.tick(1, {
      acc: graded ? `${(100 * correct / graded).toFixed(1)}%` : "-",
      "tok/s": (tokens / secs).toFixed(1),
    });
  };
  try {
    await pool(todo, options.concurrency ?? 1, work, options.signal);
  } catch (e) {
    if (!options.signal?.aborted) throw e;
    stopped = true;
  } finally {
    bar?.finish();
  }
  const allDone = !stopped &&
    (await store.finishedProblemIds(options.runId)).size >= problems.length;
  await store.setRunStatus(options.runId, stopped ? "stopped" : allDone ? "done" : "running");
  const total = await store.runSummary(options.runId);
  return {
    runId: options.runId,
    strategy,
    problems: total.problems,
    correct: total.correct,
    accuracy: total.accuracy ?? NaN,
    tokensGenerated: total.tokens,
    solvedNow: done,
    tokensNow: tokens,
    seconds: (performance.now() - t0) / 1000,
    skipped: mine.length - todo.length,
    stopped,
  };
}

/**
 * Version of the settings a run records. 2: what takes effect, defaults resolved per strategy
 * (a resume that passes a default explicitly matches one that leaves it out). Runs stored
 * without a version recorded the flags as given (unset ones null, `maxDepth` 7 when unset) and
 * resume against that form ({@linkcode legacyConfigOf}).
 */
const CONFIG_VERSION = 2;

/**
 * The run's settings, compared on resume. `problems` is the size of the whole problem set
 * (every shard sees the same), so a resume with more or fewer problems is refused; `orm` is
 * there when both a reward model and an ORM are given (the run's reward id names the step
 * reward model then; with the ORM alone it names the ORM); `format` the problems' format(s).
 * Settings a strategy does not read are null.
 */
function configOf(
  o: RunAgentOptions,
  problems: number | undefined,
  version: number,
  format: string,
): Record<string, unknown> {
  const head = problems === undefined ? {} : {
    problems,
    ...(o.models.orm && o.models.reward ? { orm: o.models.orm.id } : {}),
  };
  if (version < 2) return { ...head, ...legacyConfigOf(o) };
  const s = o.strategy, mcts = s === "mcts", annotating = s === "annotate";
  const reads = (setting: keyof typeof STRATEGY_SETTINGS) => STRATEGY_SETTINGS[setting].includes(s);
  return {
    configVersion: CONFIG_VERSION,
    ...head,
    // the format the problems were read as: the same file read as another is other problems
    format,
    n: reads("n") ? o.n ?? DEFAULT_N : null,
    k: reads("k") ? o.k ?? (annotating ? ANNOTATE_K : MCTS_DEFAULTS.k) : null,
    maxDepth: o.maxDepth ?? MAX_DEPTH,
    budget: o.budget ?? (mcts ? MCTS_BUDGET : null),
    aggregation: o.aggregation ?? "min",
    temperature: reads("temperature")
      ? o.temperature ?? (annotating ? ANNOTATE_TEMPERATURE : DEFAULT_TEMPERATURE)
      : 0,
    cPuct: mcts ? o.cPuct ?? MCTS_DEFAULTS.cPuct : null,
    choose: mcts ? o.choose ?? MCTS_DEFAULTS.choose : null,
    pruneGap: mcts ? o.pruneGap ?? MCTS_PRUNE_GAP : null,
    ...(s === "annotate" ? { fullDepth: o.fullDepth ?? ANNOTATE_FULL_DEPTH } : {}),
    maxStepTokens: o.steps?.maxStepTokens ?? DEFAULT_MAX_STEP_TOKENS,
  };
}

/** The settings as runs stored before {@linkcode CONFIG_VERSION} 2 recorded them. */
function legacyConfigOf(o: RunAgentOptions): Record<string, unknown> {
  return {
    n: o.n ?? null,
    k: o.k ?? null,
    maxDepth: o.maxDepth ?? 7,
    budget: o.budget ?? null,
    aggregation: o.aggregation ?? "min",
    temperature: o.temperature ?? null,
    ...(o.strategy === "annotate" ? { fullDepth: o.fullDepth ?? ANNOTATE_FULL_DEPTH } : {}),
    // Only when set, so that runs stored before the flag existed still resume.
    ...(o.steps?.maxStepTokens === undefined ? {} : { maxStepTokens: o.steps.maxStepTokens }),
  };
}

/**
 * Build one problem's annotation tree and store it (problem row and tree) in one transaction.
 * The problem's prediction is the majority answer of the tree's finished solutions (the gold
 * answer grades the leaves but does not pick the prediction), so the run's accuracy is that of
 * a majority vote over the tree; its `reward` is the root's Monte-Carlo score, the share of the
 * tree's solutions that are right. No trajectories: exports read the tree's graded leaves.
 */
async function annotateAndStore(
  p: Problem,
  options: RunAgentOptions,
): Promise<{ correct: boolean | null; tokens: number }> {
  const t0 = performance.now();
  const gold = p.gold;
  if (gold === undefined) {
    throw new Error(`Cannot annotate problem '${p.id}': it has no gold answer`);
  }
  const kind = gradeKindFor(p);
  const seed = options.seed ?? 0;
  const nodes = await annotate(p.question, {
    policy: new PolicySteps(options.models.policy, options.steps),
    reward: options.models.reward ? new RewardSteps(options.models.reward) : undefined,
    grade: (steps) => gradeSolution(steps.join("\n\n"), gold, { kind }).correct,
    k: options.k ?? ANNOTATE_K,
    maxDepth: options.maxDepth ?? MAX_DEPTH,
    fullDepth: options.fullDepth ?? ANNOTATE_FULL_DEPTH,
    temperature: options.temperature,
    budget: options.budget,
    seed,
    signal: options.signal,
  });
  options.signal?.throwIfAborted();
  const leaves = nodes.filter((n) => n.terminal && n.children.length === 0)
    .map((n) => {
      const steps = pathOf(nodes, n).map((s) => s.text);
      return { steps, answer: answerOf(steps.join("\n\n"), kind) ?? undefined };
    });
  const won = vote(leaves.map((l) => ({ answer: l.answer, weight: 1 })));
  const chosen = won ? leaves.find((l) => l.answer === won.answer)! : undefined;
  const text = chosen ? chosen.steps.join("\n\n") : "";
  const grade = gradeSolution(text, gold, { kind });
  const tokens = nodes.reduce((s, n) => s + n.tokens, 0);
  await options.store.saveProblemResult(options.runId, {
    problemId: p.id,
    index: p.index,
    question: p.question,
    gold,
    source: p.source,
    shard: options.shard?.index ?? null,
    prediction: text,
    answer: grade.predicted ?? null,
    correct: grade.correct,
    reward: nodes[0].mcLabel ?? null,
    tokens,
    seconds: (performance.now() - t0) / 1000,
    tree: { kind: "annotation", seed, nodes },
  });
  return { correct: grade.correct, tokens };
}

/** Solve one problem and store it (problem row, tree, trajectories) in one transaction. */
async function solveAndStore(
  p: Problem,
  options: RunAgentOptions & { strategy: Strategy },
): Promise<{ correct: boolean | null; tokens: number }> {
  const s = await solve(p.question, options);
  const kind = gradeKindFor(p);
  const text = s.steps.join("\n\n");
  const grade = p.gold !== undefined ? gradeSolution(text, p.gold, { kind }) : undefined;
  const trajectories: TrajectoryInput[] = [
    toTrajectory({ steps: s.steps, stepRewards: s.stepRewards, score: s.score }, p, true),
    ...s.candidates
      .filter((c) => c.steps.join("\n\n") !== text)
      .map((c) => toTrajectory(c, p, false)),
  ];
  await options.store.saveProblemResult(options.runId, {
    problemId: p.id,
    index: p.index,
    question: p.question,
    gold: p.gold ?? null,
    source: p.source,
    shard: options.shard?.index ?? null,
    prediction: text,
    answer: grade?.predicted ?? null,
    correct: grade ? grade.correct : null,
    reward: Number.isFinite(s.score) ? s.score : null,
    tokens: s.tokens,
    seconds: s.ms / 1000,
    tree: s.tree ? { kind: "search", seed: options.seed ?? 0, nodes: s.tree } : undefined,
    trajectories,
  });
  return { correct: grade ? grade.correct : null, tokens: s.tokens };
}

function toTrajectory(
  c: { steps: string[]; stepRewards: number[]; score: number },
  p: Problem,
  chosen: boolean,
): TrajectoryInput {
  const kind = gradeKindFor(p);
  const text = c.steps.join("\n\n");
  const g = p.gold !== undefined ? gradeSolution(text, p.gold, { kind }) : undefined;
  return {
    steps: c.steps,
    stepRewards: c.stepRewards,
    score: Number.isFinite(c.score) ? c.score : 0,
    correct: g ? g.correct : null,
    chosen,
    answer: g?.predicted ?? answerOf(text, kind),
  };
}

function answerOf(text: string, kind: "number" | "math"): string | null {
  const a = extractAnswer(text, { kind });
  return a === undefined ? null : answerKey(a, { kind });
}

/** Run `work` over `items`, at most `limit` at once; stop taking new items on abort. */
async function pool<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      await work(items[next++]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, lane));
}
