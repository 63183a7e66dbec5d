import assert from "node:assert/strict";
import {
  annotate,
  beam,
  bestOfN,
  greedy,
  labelMonteCarlo,
  mcts,
  mergeDuplicates,
  normalizedPriors,
  prune,
  stepGreedy,
  StepTree,
  type TreeNode,
  vote,
} from "../../mcts/mod.ts";
import { Random } from "../../inference/mod.ts";
import { ScriptedPolicy, ScriptedReward } from "./_doubles.ts";

// A trap: the likely first step "a" leads only to wrong answers; the less likely "b" to the
// right one. The step reward knows it.
const TRAP = {
  "": [{ text: "a", logprob: -0.1 }, { text: "b", logprob: -2.5 }],
  "a": [{ text: "a1", logprob: -0.2 }, { text: "a2", logprob: -1 }],
  "a|a1": [{ text: "ANSWER 5", logprob: -0.1, terminal: true }],
  "a|a2": [{ text: "ANSWER 6", logprob: -0.1, terminal: true }],
  "b": [{ text: "b1", logprob: -0.3 }, { text: "b2", logprob: -1.2 }],
  "b|b1": [{ text: "ANSWER 7", logprob: -0.1, terminal: true }],
  "b|b2": [{ text: "ANSWER 8", logprob: -0.1, terminal: true }],
};
const TRAP_REWARD = {
  "a": 0.3,
  "a1": 0.2,
  "a2": 0.1,
  "ANSWER 5": 0.1,
  "ANSWER 6": 0.1,
  "b": 0.8,
  "b1": 0.9,
  "b2": 0.4,
  "ANSWER 7": 0.95,
  "ANSWER 8": 0.2,
};

Deno.test("mcts() finds the correct path that greedy misses", async () => {
  const g = await greedy("q", { policy: new ScriptedPolicy(TRAP) });
  assert.deepEqual(g.best.steps, ["a", "a1", "ANSWER 5"]);
  const r = await mcts("q", {
    policy: new ScriptedPolicy(TRAP),
    reward: new ScriptedReward(TRAP_REWARD),
    k: 4,
    budget: { simulations: 20 },
    seed: 3,
  });
  assert.deepEqual(r.steps, ["b", "b1", "ANSWER 7"]);
  assert.ok(r.complete);
  assert.deepEqual(r.stepRewards, [0.8, 0.9, 0.95]);
});

Deno.test("mcts() backs up a path's weakest step: a wrong step before well-scored ones loses", async () => {
  // "w" is a wrong step (0.2) whose continuation scores 0.95; "r" is right (0.6) then 0.7.
  const policy = {
    "": [{ text: "w", logprob: -0.1 }, { text: "r", logprob: -0.5 }],
    "w": [{ text: "ANSWER 1", logprob: -0.1, terminal: true }],
    "r": [{ text: "ANSWER 2", logprob: -0.1, terminal: true }],
  };
  const rewards = { "w": 0.2, "r": 0.6, "ANSWER 1": 0.95, "ANSWER 2": 0.7 };
  const run = (backup?: "min" | "leaf") =>
    mcts("q", {
      policy: new ScriptedPolicy(policy, "cycle"),
      reward: new ScriptedReward(rewards),
      k: 2,
      budget: { simulations: 8 },
      seed: 1,
      backup,
      choose: "mean",
    });
  const min = await run();
  assert.deepEqual(min.steps, ["r", "ANSWER 2"]);
  const w = min.nodes.find((n) => n.text === "w")!;
  assert.ok(w.value <= 0.2 + 1e-9, `"w" is worth at most its own reward, got ${w.value}`);
  assert.deepEqual((await run("leaf")).steps, ["w", "ANSWER 1"], "the old rule follows the leaf");
});

Deno.test("mcts() merges identical sibling proposals into one child with their summed prior", async () => {
  const script = {
    "": [{ text: "x", logprob: -0.1 }, { text: "x", logprob: -0.1 }, { text: "y", logprob: -1 }],
    "x": [{ text: "ANSWER 1", logprob: -0.1, terminal: true }],
    "y": [{ text: "ANSWER 2", logprob: -0.1, terminal: true }],
  };
  const run = (mergeDuplicates?: boolean) =>
    mcts("q", {
      policy: new ScriptedPolicy(script, "cycle"),
      reward: new ScriptedReward({}),
      k: 3,
      budget: { simulations: 1 },
      mergeDuplicates,
    });
  const merged = await run();
  const kids = merged.nodes.filter((n) => n.parent === 0);
  assert.deepEqual(kids.map((n) => n.text), ["x", "y"]);
  const p = normalizedPriors(script[""].map((s) => ({ ...s, tokens: 4, terminal: false })));
  assert.ok(Math.abs(kids[0].prior - (p[0] + p[1])) < 1e-12, `prior ${kids[0].prior}`);
  assert.ok(Math.abs(kids[0].prior + kids[1].prior - 1) < 1e-12);
  assert.deepEqual((await run(false)).nodes.filter((n) => n.parent === 0).map((n) => n.text), [
    "x",
    "x",
    "y",
  ]);
  // A terminal step and a non-terminal one with the same text stay apart.
  const { unique } = mergeDuplicates([
    { text: "s", logprob: -1, tokens: 1, terminal: false },
    { text: "s", logprob: -1, tokens: 1, terminal: true },
  ]);
  assert.equal(unique.length, 2);
});

Deno.test("the 'step' rule answers with the best sibling at each level; 'mean' lets a weak final step decide", async () => {
  // "a" is the better step (0.9) but its final-answer step is scored 0.1; "b" (0.5) ends on
  // 0.4. Under min backup "a"'s branch is worth 0.1, so "mean" takes "b".
  const script = {
    "": [{ text: "a", logprob: -0.1 }, { text: "b", logprob: -0.5 }],
    "a": [{ text: "ANSWER 1", logprob: -0.1, terminal: true }],
    "b": [{ text: "ANSWER 2", logprob: -0.1, terminal: true }],
  };
  const rewards = { "a": 0.9, "b": 0.5, "ANSWER 1": 0.1, "ANSWER 2": 0.4 };
  const run = (choose?: "step" | "mean") =>
    mcts("q", {
      policy: new ScriptedPolicy(script, "cycle"),
      reward: new ScriptedReward(rewards),
      k: 2,
      budget: { simulations: 8 },
      choose,
    });
  const step = await run();
  assert.deepEqual(step.steps, ["a", "ANSWER 1"], "the default is 'step'");
  assert.ok(step.complete);
  assert.deepEqual((await run("mean")).steps, ["b", "ANSWER 2"]);
});

Deno.test("mcts() with the same seed builds the same tree; another seed may differ", async () => {
  const run = (seed: number) =>
    mcts("q", {
      policy: new ScriptedPolicy(TRAP),
      reward: new ScriptedReward(TRAP_REWARD),
      k: 2,
      budget: { simulations: 6 },
      seed,
    });
  const strip = (ns: TreeNode[]) => ns.map((n) => [n.parent, n.text, n.visits, n.value]);
  assert.deepEqual(strip((await run(1)).nodes), strip((await run(1)).nodes));
  const trees = new Set<string>();
  for (let s = 0; s < 8; s++) trees.add(JSON.stringify(strip((await run(s)).nodes)));
  assert.ok(trees.size > 1, "different seeds should explore differently");
});

Deno.test("mcts() stops at its simulation, token and time budgets and on abort", async () => {
  const policy = new ScriptedPolicy(TRAP), reward = new ScriptedReward(TRAP_REWARD);
  const sims = await mcts("q", { policy, reward, budget: { simulations: 2 } });
  assert.equal(sims.stats.simulations, 2);
  const toks = await mcts("q", { policy, reward, k: 2, budget: { tokens: 8 } });
  assert.ok(toks.stats.tokens >= 8 && toks.stats.tokens <= 16);
  let t = 0;
  const timed = await mcts("q", { policy, reward, budget: { ms: 3 }, now: () => t++ });
  assert.ok(timed.stats.simulations <= 2);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(() => mcts("q", { policy, reward, signal: ac.signal }));
});

Deno.test("mcts() ends when the whole tree is explored, before the budget", async () => {
  const r = await mcts("q", {
    policy: new ScriptedPolicy(TRAP),
    reward: new ScriptedReward(TRAP_REWARD),
    k: 2,
    budget: { simulations: 1000 },
    seed: 0,
  });
  assert.ok(r.stats.simulations < 1000);
});

Deno.test("pruning never removes the best-reward child", () => {
  const rng = new Random(4);
  for (let trial = 0; trial < 500; trial++) {
    const tree = new StepTree();
    const n = 1 + rng.int(6);
    const kids = tree.expand(
      tree.root,
      Array.from({ length: n }, (_, i) => ({
        text: `s${i}`,
        logprob: -1,
        tokens: 1,
        terminal: false,
        reward: rng.next(),
      })),
    );
    const pruned = prune(kids, rng.next(), rng.next() * 0.5);
    const best = kids.reduce((a, b) => (b.reward > a.reward ? b : a));
    assert.ok(!best.pruned && !pruned.includes(best));
  }
});

Deno.test("mcts() prunes weak children and releases their caches", async () => {
  const policy = new ScriptedPolicy(TRAP, "cycle");
  const r = await mcts("q", {
    policy,
    reward: new ScriptedReward(TRAP_REWARD),
    k: 2,
    pruneGap: 0.3,
    budget: { simulations: 10 },
    seed: 2,
  });
  const prunedTexts = r.nodes.filter((n) => n.pruned).map((n) => n.text);
  assert.ok(prunedTexts.includes("a"), `pruned: ${prunedTexts}`);
  assert.ok(policy.released.includes("a"));
  assert.ok(!r.nodes.some((n) => n.parent >= 0 && r.nodes[n.parent].pruned && n.visits > 0));
});

Deno.test("labelMonteCarlo gives exact correct/leaves fractions on a hand-built tree", () => {
  // root -> x (-> x1 correct, x2 wrong, x3 correct), y (leaf wrong), z (-> z1 correct)
  const tree = new StepTree();
  const mk = (text: string) => ({ text, logprob: 0, tokens: 1, terminal: true, reward: 0 });
  const [x, y, z] = tree.expand(tree.root, [mk("x"), mk("y"), mk("z")]);
  const [x1, x2, x3] = tree.expand(x, [mk("x1"), mk("x2"), mk("x3")]);
  const [z1] = tree.expand(z, [mk("z1")]);
  x1.correct = true;
  x2.correct = false;
  x3.correct = true;
  y.correct = false;
  z1.correct = true;
  labelMonteCarlo(tree.nodes);
  assert.equal(x.mcLabel, 2 / 3);
  assert.equal(y.mcLabel, 0);
  assert.equal(z.mcLabel, 1);
  assert.equal(tree.root.mcLabel, 3 / 5);
  assert.equal(x1.mcLabel, 1);
});

Deno.test("annotate() expands every node fully and labels with Monte-Carlo scores", async () => {
  const nodes = await annotate("q", {
    policy: new ScriptedPolicy(TRAP),
    grade: (steps) => steps.at(-1) === "ANSWER 7",
    k: 2,
    maxDepth: 5,
    seed: 1,
  });
  // root: 2 children; every non-terminal gets 2; terminals none.
  for (const n of nodes) {
    if (!n.terminal && n.depth < 5) assert.equal(n.children.length, 2, `node ${n.text}`);
    if (n.terminal) assert.equal(n.children.length, 0);
  }
  const leaves = nodes.filter((n) => n.children.length === 0);
  const correct = leaves.filter((n) => n.correct).length;
  assert.equal(nodes[0].mcLabel, correct / leaves.length);
  for (const n of nodes.filter((n) => n.text === "a")) assert.equal(n.mcLabel, 0);
});

Deno.test("annotate() with fullDepth branches k ways above it and runs one rollout per branch below", async () => {
  const nodes = await annotate("q", {
    policy: new ScriptedPolicy(TRAP),
    grade: (steps) => steps.at(-1) === "ANSWER 7",
    k: 2,
    maxDepth: 5,
    fullDepth: 1,
    seed: 1,
  });
  assert.equal(nodes[0].children.length, 2, "the root branches");
  for (const n of nodes.filter((n) => n.depth >= 1 && !n.terminal)) {
    assert.equal(n.children.length, 1, `node ${n.text} has one rollout child`);
  }
  const leaves = nodes.filter((n) => n.children.length === 0);
  assert.equal(leaves.length, 2);
  assert.ok(leaves.every((n) => n.terminal), "every rollout reaches an answer");
  assert.equal(nodes[0].mcLabel, leaves.filter((n) => n.correct).length / 2);
});

Deno.test("annotate() leaves branches its budget cut ungraded and out of the labels", async () => {
  // Breadth-first with k = 2: root, a, b, a1, a2, b1 are expanded in 6 simulations; b2 waits.
  const nodes = await annotate("q", {
    policy: new ScriptedPolicy(TRAP, "cycle"),
    grade: (steps) => steps.at(-1) === "ANSWER 7",
    k: 2,
    maxDepth: 5,
    budget: { simulations: 6 },
  });
  const at = (text: string) => nodes.find((n) => n.text === text)!;
  assert.equal(at("b2").children.length, 0);
  assert.equal(at("b2").correct, undefined, "b2 was never expanded: no grade");
  assert.equal(at("b2").mcLabel, undefined, "no graded leaf under b2: no label");
  assert.equal(at("ANSWER 7").correct, true);
  assert.equal(
    at("b").mcLabel,
    1,
    "b's one graded leaf is right (a cut branch is not a wrong one)",
  );
  assert.equal(at("a").mcLabel, 0);
  assert.equal(nodes[0].mcLabel, 1 / 3, "1 right of 3 graded leaves; b2 not counted");
  const none = await annotate("q", {
    policy: new ScriptedPolicy(TRAP, "cycle"),
    grade: () => true,
    k: 2,
    budget: { simulations: 1 },
  });
  assert.ok(none.every((n) => n.mcLabel === undefined), "nothing finished: nothing labelled");
});

Deno.test("annotate() counts a dead end (no proposals) and a branch cut at max depth as wrong", async () => {
  const script = {
    "": [{ text: "a", logprob: -0.1 }, { text: "c", logprob: -0.2 }, { text: "d", logprob: -1 }],
    "a": [{ text: "ANSWER 7", logprob: -0.1, terminal: true }],
    "d": [{ text: "d1", logprob: -0.1 }],
    "d|d1": [{ text: "d2", logprob: -0.1 }],
  }; // "c" has nothing to propose
  const nodes = await annotate("q", {
    policy: new ScriptedPolicy(script, "cycle"),
    grade: (steps) => steps.at(-1) === "ANSWER 7",
    k: 3,
    fullDepth: 1, // one rollout per branch below the root
    maxDepth: 2,
  });
  const at = (text: string) => nodes.find((n) => n.text === text)!;
  assert.equal(at("c").correct, false, "dead end");
  assert.equal(at("d1").correct, false, "cut at max depth 2 without an answer");
  assert.equal(nodes[0].mcLabel, 1 / 3);
});

Deno.test("labelMonteCarlo leaves ungraded leaves out, and unlabels nodes with none graded", () => {
  const tree = new StepTree();
  const mk = (text: string) => ({ text, logprob: 0, tokens: 1, terminal: false, reward: 0 });
  const [x, y] = tree.expand(tree.root, [mk("x"), mk("y")]);
  const [x1, x2] = tree.expand(x, [mk("x1"), mk("x2")]);
  x1.correct = true; // x2 and y ungraded
  y.mcLabel = 0.5; // a stale label goes
  labelMonteCarlo(tree.nodes);
  assert.equal(x.mcLabel, 1);
  assert.equal(x2.mcLabel, undefined);
  assert.equal(y.mcLabel, undefined);
  assert.equal(tree.root.mcLabel, 1);
});

const SCORE: Record<string, number> = {
  "ANSWER 5": 0.2,
  "ANSWER 6": 0.9,
  "ANSWER 7": 0.5,
  "ANSWER 8": 0.1,
};

Deno.test("bestOfN() keeps the candidate the scorer ranks first", async () => {
  const r = await bestOfN("q", {
    policy: new ScriptedPolicy(TRAP),
    n: 8,
    seed: 5,
    scorer: (_q, steps) => Promise.resolve({ score: SCORE[steps.at(-1)!] ?? 0, stepRewards: [] }),
  });
  assert.equal(r.candidates.length, 8);
  const top = Math.max(...r.candidates.map((c) => c.score));
  assert.equal(r.best.score, top);
  assert.ok(r.candidates.every((c) => c.complete));
});

Deno.test("bestOfN() with a policy that proposes nothing answers with an empty, unfinished solution", async () => {
  // A question over the policy's context: the adapter proposes nothing (a dead end).
  const r = await bestOfN("q", {
    policy: new ScriptedPolicy({}),
    n: 4,
    scorer: () => Promise.resolve({ score: 1, stepRewards: [] }),
  });
  assert.equal(r.candidates.length, 0);
  assert.deepEqual(r.best.steps, []);
  assert.equal(r.best.complete, false);
});

Deno.test("stepGreedy() keeps the best-scored candidate at every step", async () => {
  const r = await stepGreedy("q", {
    policy: new ScriptedPolicy(TRAP, "cycle"),
    reward: new ScriptedReward(TRAP_REWARD),
    n: 2,
    seed: 1,
  });
  assert.deepEqual(r.best.steps, ["b", "b1", "ANSWER 7"]);
});

Deno.test("beam() keeps the `width` best partial solutions", async () => {
  const r = await beam("q", {
    policy: new ScriptedPolicy(TRAP, "cycle"),
    reward: new ScriptedReward(TRAP_REWARD),
    width: 2,
    expand: 2,
    seed: 1,
  });
  assert.ok(r.candidates.length <= 2);
  assert.deepEqual(r.best.steps, ["b", "b1", "ANSWER 7"]);
  const scores = r.candidates.map((c) => c.score);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
});

Deno.test("vote() picks the majority, or the heaviest answer when weighted", () => {
  const answers = ["5", "7", "5", undefined, "7", "5"];
  assert.deepEqual(vote(answers.map((answer) => ({ answer, weight: 1 }))), {
    answer: "5",
    share: 3 / 5,
  });
  const weights = [0.1, 0.9, 0.1, 1, 0.8, 0.1];
  assert.equal(vote(answers.map((answer, i) => ({ answer, weight: weights[i] })))?.answer, "7");
  assert.equal(vote([{ answer: undefined, weight: 1 }]), undefined);
});
