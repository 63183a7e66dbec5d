/**
 * Monte-Carlo tree search over reasoning steps with PUCT selection, where a node's value is
 * the (hierarchical) reward model's score of its step, optionally blended with a rollout to a
 * terminal answer. Low-reward children are pruned at expansion, and their cached state
 * released.
 *
 * @module
 */
import { type Budget, BudgetMeter, childSeed, scoreEach } from "./_budget.ts";
import { normalizedPriors, StepTree } from "./tree.ts";
import type { Proposal, StepPolicy, StepReward, TreeNode } from "./types.ts";

/** Every {@linkcode ChooseRule}, the default first. */
export const CHOOSE_RULES = ["step", "mean", "visits", "reward"] as const;

/** How the final trajectory is chosen from the tree. */
export type ChooseRule = typeof CHOOSE_RULES[number];

/** A search event, for live views. */
export type SearchEvent =
  | { type: "expand"; parent: number; children: TreeNode[] }
  | { type: "prune"; nodes: number[] }
  | { type: "best"; path: number[] }
  | { type: "simulation"; count: number };

/** Options of {@linkcode mcts}. */
export interface MctsOptions {
  /** Proposes steps. */
  policy: StepPolicy;
  /** Scores steps. */
  reward: StepReward;
  /** Children per expansion (default 5). */
  k?: number;
  /** Maximum steps of a solution (default 7). */
  maxDepth?: number;
  /** Exploration constant of PUCT (default 1.5). */
  cPuct?: number;
  /** Budget (default 32 simulations). */
  budget?: Budget;
  /** Children scoring under this are pruned (default 0: none). */
  pruneBelow?: number;
  /** Children scoring more than this under their best sibling are pruned (default 1: none). */
  pruneGap?: number;
  /** Weight of a rollout's final reward in a new node's value, 0..1 (default 0: no rollouts). */
  rolloutWeight?: number;
  /** Sampling temperature of expansions (default 1). */
  temperature?: number;
  /**
   * Rule for the answer (default "step"): see {@linkcode choosePath}. "step" compares sibling
   * steps only, which is what a step reward model is trained to rank; "mean" compares backed-up
   * values of whole branches, where the lowest-scored step (often the bare final answer) decides.
   */
  choose?: ChooseRule;
  /**
   * What a simulation backs up into each node on its path (default "min"): "min", the lowest
   * step reward from that node down to the evaluated one (a path is as good as its weakest
   * step, as the "min" aggregation of step scores); "leaf", the evaluated node's value alone
   * (a wrong step followed by well-scored steps then looks as good as a right one).
   */
  backup?: "min" | "leaf";
  /**
   * Merge identical sibling proposals into one child whose prior is their sum (default true).
   * A sampler at a low temperature often proposes the same step several times; kept apart,
   * the copies tie on value and PUCT spreads the budget over identical subtrees.
   */
  mergeDuplicates?: boolean;
  /** Seed. Same seed, same tree (given deterministic backends). */
  seed?: number;
  /** Cancellation. */
  signal?: AbortSignal;
  /** Clock in ms (default performance.now). */
  now?: () => number;
  /** Live events. */
  onEvent?: (e: SearchEvent) => void;
}

/** What a search returns. */
export interface SearchResult {
  /** The chosen solution's steps. */
  steps: string[];
  /** Rewards of those steps. */
  stepRewards: number[];
  /** Node ids of the chosen path (root first). */
  path: number[];
  /** Whether the chosen path reached a terminal step. */
  complete: boolean;
  /** The whole tree. */
  nodes: TreeNode[];
  /** Spend. */
  stats: { simulations: number; tokens: number; ms: number; nodes: number };
}

/** PUCT score of `child` under a parent with `parentVisits` visits. */
export function puct(child: TreeNode, parentVisits: number, cPuct: number): number {
  return child.value + cPuct * child.prior * Math.sqrt(parentVisits + 1) / (1 + child.visits);
}

/** Sampling temperature of proposed steps when none is given (MCTS and the baselines). */
export const DEFAULT_TEMPERATURE = 1;

/** MCTS settings when none are given: children per expansion, PUCT constant, answer rule. */
export const MCTS_DEFAULTS: {
  readonly k: number;
  readonly cPuct: number;
  readonly choose: ChooseRule;
} = { k: 5, cPuct: 1.5, choose: "step" };

function validate(o: MctsOptions) {
  const k = o.k ?? MCTS_DEFAULTS.k,
    maxDepth = o.maxDepth ?? 7,
    cPuct = o.cPuct ?? MCTS_DEFAULTS.cPuct;
  const rolloutWeight = o.rolloutWeight ?? 0;
  const check = (name: string, v: number, ok: boolean) => {
    if (!ok) {
      throw new RangeError(`Cannot search as '${name}' is out of range: current value is ${v}`);
    }
  };
  check("k", k, Number.isInteger(k) && k >= 1);
  check("maxDepth", maxDepth, Number.isInteger(maxDepth) && maxDepth >= 1);
  check("cPuct", cPuct, cPuct >= 0);
  check("rolloutWeight", rolloutWeight, rolloutWeight >= 0 && rolloutWeight <= 1);
  return { k, maxDepth, cPuct, rolloutWeight };
}

/**
 * Search for a solution of `question`.
 *
 * @param question The problem text.
 * @param options Backends, shape of the search, budget, seed.
 * @returns The chosen trajectory and the tree.
 */
export async function mcts(question: string, options: MctsOptions): Promise<SearchResult> {
  const { k, maxDepth, cPuct, rolloutWeight } = validate(options);
  const meter = new BudgetMeter(options.budget ?? { simulations: 32 }, options);
  const tree = new StepTree();
  const seed = options.seed ?? 0;
  const ctx = { question, tree, meter, options, k, maxDepth, seed };
  const choose = options.choose ?? MCTS_DEFAULTS.choose;
  let best = "";
  while (!meter.exhausted()) {
    const leaf = select(tree, cPuct, maxDepth);
    if (!leaf) break; // every branch is finished or pruned
    let value = leaf.reward;
    if (!leaf.terminal && leaf.depth < maxDepth) {
      const kids = await expand(ctx, leaf);
      const live = kids.filter((c) => !c.pruned);
      value = live.length ? Math.max(...live.map((c) => c.value)) : 0;
      if (rolloutWeight > 0 && live.length) value = await withRollout(ctx, live, rolloutWeight);
      if (kids.length === 0) leaf.terminal = true; // the policy had nothing to add
    }
    backpropagate(tree, leaf, value, options.backup ?? "min");
    meter.simulations++;
    options.onEvent?.({ type: "simulation", count: meter.simulations });
    const path = choosePath(tree, choose).map((n) => n.id).join();
    if (path !== best) {
      best = path;
      options.onEvent?.({ type: "best", path: path.split(",").map(Number) });
    }
  }
  return finish(tree, meter, choose);
}

/** Descend by PUCT to a node that is not expanded yet; undefined when nothing is left. */
function select(tree: StepTree, cPuct: number, maxDepth: number): TreeNode | undefined {
  let node = tree.root;
  for (;;) {
    if (node.children.length === 0) return exhaustedBranch(tree, node, maxDepth) ? undefined : node;
    const live = tree.live(node).filter((c) => !exhaustedBranch(tree, c, maxDepth));
    if (live.length === 0) return undefined;
    node = live.reduce((a, b) => puct(b, node.visits, cPuct) > puct(a, node.visits, cPuct) ? b : a);
  }
}

/** True when nothing under `node` can be expanded any more. */
function exhaustedBranch(tree: StepTree, node: TreeNode, maxDepth: number): boolean {
  if (node.children.length === 0) {
    return (node.terminal || node.depth >= maxDepth) && node.visits > 0;
  }
  return tree.live(node).every((c) => exhaustedBranch(tree, c, maxDepth));
}

interface Ctx {
  question: string;
  tree: StepTree;
  meter: BudgetMeter;
  options: MctsOptions;
  k: number;
  maxDepth: number;
  seed: number;
}

/** Propose K children of `leaf`, score each, prune the weak ones. */
async function expand(ctx: Ctx, leaf: TreeNode): Promise<TreeNode[]> {
  const { question, tree, options } = ctx;
  const steps = tree.steps(leaf);
  const proposals = await options.policy.propose(question, steps, {
    k: ctx.k,
    seed: childSeed(ctx.seed, leaf.id),
    temperature: options.temperature ?? DEFAULT_TEMPERATURE,
    signal: options.signal,
  });
  ctx.meter.tokens += proposals.reduce((s, p) => s + p.tokens, 0);
  const { unique, priors } = options.mergeDuplicates === false
    ? { unique: proposals, priors: undefined }
    : mergeDuplicates(proposals);
  const scored = await scoreEach(
    options.reward,
    question,
    unique.map((p) => [...steps, p.text]),
    options.signal,
  );
  const rewards = scored.map((s) => s.at(-1)!);
  const kids = tree.expand(leaf, unique.map((p, i) => ({ ...p, reward: rewards[i] })), priors);
  const pruned = prune(kids, options.pruneBelow ?? 0, options.pruneGap ?? 1);
  options.onEvent?.({ type: "expand", parent: leaf.id, children: kids });
  if (pruned.length) {
    for (const n of pruned) options.policy.release?.(question, tree.steps(n));
    options.onEvent?.({ type: "prune", nodes: pruned.map((n) => n.id) });
  }
  return kids;
}

/**
 * Identical proposals (same text, same terminal flag) as one, first seen first; each keeps
 * the sum of its copies' normalized priors.
 *
 * @param proposals The sampled candidates.
 * @returns The distinct candidates and their priors (summing to 1).
 */
export function mergeDuplicates(
  proposals: readonly Proposal[],
): { unique: Proposal[]; priors: number[] } {
  const all = normalizedPriors(proposals);
  const at = new Map<string, number>();
  const unique: Proposal[] = [], priors: number[] = [];
  proposals.forEach((p, i) => {
    const key = `${p.terminal ? 1 : 0}${p.text}`;
    const j = at.get(key);
    if (j === undefined) {
      at.set(key, unique.length);
      unique.push(p);
      priors.push(all[i]);
    } else priors[j] += all[i];
  });
  return { unique, priors };
}

/**
 * Mark children under `below` or more than `gap` under the best sibling as pruned; the best
 * child is never pruned.
 *
 * @returns The pruned nodes.
 */
export function prune(kids: TreeNode[], below: number, gap: number): TreeNode[] {
  if (kids.length === 0) return [];
  const best = kids.reduce((a, b) => (b.reward > a.reward ? b : a));
  const out: TreeNode[] = [];
  for (const c of kids) {
    if (c === best) continue;
    if (c.reward < below || best.reward - c.reward > gap) {
      c.pruned = true;
      out.push(c);
    }
  }
  return out;
}

/** Blend the best new child's value with the final reward of a greedy rollout from it. */
async function withRollout(ctx: Ctx, live: TreeNode[], weight: number): Promise<number> {
  const start = live.reduce((a, b) => (b.value > a.value ? b : a));
  const { question, options } = ctx;
  const steps = ctx.tree.steps(start);
  let terminal = start.terminal;
  while (!terminal && steps.length < ctx.maxDepth) {
    const [p] = await options.policy.propose(question, steps, {
      k: 1,
      seed: childSeed(ctx.seed, -start.id - 1),
      temperature: 0,
      signal: options.signal,
    });
    if (!p) break;
    ctx.meter.tokens += p.tokens;
    steps.push(p.text);
    terminal = p.terminal;
  }
  const scores = await options.reward.score(question, steps, { signal: options.signal });
  const final = scores.at(-1) ?? start.value;
  start.value = (1 - weight) * start.value + weight * final;
  return start.value;
}

function backpropagate(
  tree: StepTree,
  leaf: TreeNode,
  value: number,
  backup: "min" | "leaf",
): void {
  // leaf to root: under "min" each node gets the weakest step reward from it down
  for (const n of tree.path(leaf).reverse()) {
    if (backup === "min" && n.id !== 0 && Number.isFinite(n.reward)) {
      value = Math.min(value, n.reward);
    }
    n.visits++;
    if (n.id !== 0 && n.visits === 1 && n.children.length === 0) {
      n.value = value;
    } else {
      n.value += (value - n.value) / n.visits;
    }
  }
}

/**
 * The path the rule picks: from the root, repeatedly the live child with the best step reward
 * ("step"), the best mean value ("mean") or the most visits ("visits"); or ("reward") the path
 * to the terminal leaf with the best step reward. A path that ends above a final step is
 * finished by the caller.
 */
export function choosePath(tree: StepTree, rule: ChooseRule): TreeNode[] {
  if (rule === "reward") {
    const ends = tree.nodes.filter((n) => n.terminal && !n.pruned);
    if (ends.length) return tree.path(ends.reduce((a, b) => (b.reward > a.reward ? b : a)));
    rule = "mean";
  }
  const key = rule === "visits"
    ? (n: TreeNode) => n.visits + n.value * 1e-6
    : rule === "step"
    ? (n: TreeNode) => n.reward
    : (n: TreeNode) => n.value;
  let node = tree.root;
  for (;;) {
    const live = tree.live(node);
    if (live.length === 0) return tree.path(node);
    node = live.reduce((a, b) => (key(b) > key(a) ? b : a));
  }
}

function finish(tree: StepTree, meter: BudgetMeter, rule: ChooseRule): SearchResult {
  const path = choosePath(tree, rule);
  const end = path[path.length - 1];
  return {
    steps: tree.steps(end),
    stepRewards: path.slice(1).map((n) => n.reward),
    path: path.map((n) => n.id),
    complete: end.terminal,
    nodes: tree.nodes,
    stats: {
      simulations: meter.simulations,
      tokens: meter.tokens,
      ms: meter.elapsedMs,
      nodes: tree.nodes.length,
    },
  };
}
