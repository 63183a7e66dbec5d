import assert from "node:assert/strict";
import {
  type AgentModels,
  loadProblems,
  PolicySteps,
  type Problem,
  RewardSteps,
  runAgent,
  solve,
} from "../../agent/mod.ts";
import { OnnxPolicy } from "../../inference/mod.ts";
import { OnnxReward, type RewardModel } from "../../reward/mod.ts";
import { openStore, type RunStore } from "../../store/mod.ts";
import { sharedDataPath, testdataPath } from "../_helpers.ts";

const POLICY = testdataPath("models/decoder-fp32");
const REWARD = testdataPath("models/reward-paper-2");

async function problems(n: number): Promise<Problem[]> {
  return (await loadProblems(sharedDataPath("gsm8k/test.jsonl"), { limit: n })).problems;
}

async function withModels<T>(fn: (m: { policy: OnnxPolicy; reward: OnnxReward }) => Promise<T>) {
  const policy = await OnnxPolicy.load(POLICY, { threads: 1 });
  const reward = await OnnxReward.load(REWARD, { threads: 1 });
  try {
    return await fn({ policy, reward });
  } finally {
    await policy.close();
    await reward.close();
  }
}

const SEARCH = { k: 2, maxDepth: 3, budget: { simulations: 3 }, steps: { maxStepTokens: 12 } };

Deno.test("runAgent stores every problem with its tree and trajectories, and a rerun skips them", async () => {
  const ps = await problems(4);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      const opts = {
        ...SEARCH,
        runId: "r1",
        store,
        models,
        strategy: "mcts" as const,
        source: "gsm8k",
        progress: false,
      };
      const first = await runAgent(ps, opts);
      assert.equal(first.problems, 4);
      assert.equal(first.solvedNow, 4);
      for (const p of ps) {
        const [tree] = await store.getTrees("r1", p.id);
        assert.ok(tree.nodes.length > 1, "a search tree with nodes");
        const trajs = await store.listTrajectories("r1", { problemId: p.id });
        assert.equal(trajs.filter((t) => t.chosen).length, 1);
      }
      const again = await runAgent(ps, opts);
      assert.equal(again.solvedNow, 0);
      assert.equal(again.skipped, 4);
      assert.equal((await store.getRun("r1"))?.status, "done");
    } finally {
      await store.close();
    }
  });
});

Deno.test("two shards of one run split the problems without overlap", async () => {
  const ps = await problems(10);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      const base = {
        runId: "s",
        store,
        models,
        strategy: "greedy" as const,
        source: "gsm8k",
        progress: false,
        maxDepth: 2,
        steps: { maxStepTokens: 6 },
      };
      const a = await runAgent(ps, { ...base, shard: { index: 0, count: 2 } });
      const b = await runAgent(ps, { ...base, shard: { index: 1, count: 2 } });
      assert.equal(a.solvedNow + b.solvedNow, 10);
      assert.equal((await store.finishedProblemIds("s")).size, 10);
    } finally {
      await store.close();
    }
  });
});

/** Options of a short greedy run on the test models, for the resume tests. */
function greedyRun(runId: string, store: RunStore, models: AgentModels) {
  return {
    runId,
    store,
    models,
    strategy: "greedy" as const,
    source: "data/gsm8k.jsonl",
    progress: false,
    maxDepth: 2,
    steps: { maxStepTokens: 6 },
  };
}

Deno.test("a run records its models' weight digests; a resume with others is refused, one without keeps them", async () => {
  const ps = await problems(2);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      const base = greedyRun("d", store, models);
      const weights = { policy: "00000000000000aa", reward: "00000000000000bb" };
      await runAgent(ps, { ...base, weights });
      assert.deepEqual((await store.getRun("d"))?.config.weights, weights);
      await assert.rejects(
        runAgent(ps, { ...base, weights: { ...weights, reward: "00000000000000cc" } }),
        /config\.weights\.reward is "00000000000000bb" in the store, "00000000000000cc" now/,
      );
      // A library caller that has no digests resumes; the stored ones stay.
      assert.equal((await runAgent(ps, base)).skipped, 2);
      assert.deepEqual((await store.getRun("d"))?.config.weights, weights);
    } finally {
      await store.close();
    }
  });
});

Deno.test("a resumed run with another policy, reward model, ORM or problem set is refused", async () => {
  const ps = await problems(4);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      const base = greedyRun("g", store, models);
      await runAgent(ps.slice(0, 3), base);
      const refused = async (change: object, what: RegExp) =>
        await assert.rejects(runAgent(ps.slice(0, 3), { ...base, ...change }), (e: Error) => {
          assert.match(e.message, /^Cannot resume run 'g': it was started with other settings/);
          assert.match(e.message, what);
          return true;
        });
      const other = (id: string) => ({ id }) as RewardModel;
      await refused(
        { models: { ...models, reward: other("prm") } },
        /reward model is "reward-paper-2" in the store, "prm" now/,
      );
      await refused(
        { models: { policy: { ...models.policy, id: "policy-selftrained" } } },
        /policy is "decoder-fp32" in the store, "policy-selftrained" now/,
      );
      await refused(
        { models: { ...models, orm: other("orm") } },
        /config\.orm is absent in the store, "orm" now/,
      );
      await refused({ source: "data/other.jsonl" }, /problems is "data\/gsm8k.jsonl" in the store/);
      // Stored before digests were recorded: resumes with them, and they are not added.
      await runAgent(ps.slice(0, 3), { ...base, weights: { policy: "00000000000000aa" } });
      assert.equal((await store.getRun("g"))?.config.weights, undefined);
      await assert.rejects(
        runAgent(ps, base),
        /Cannot resume run 'g'.*config\.problems is 3 in the store, 4 now/,
      );
      // The same source spelled another way is the same run: nothing is redone.
      const again = await runAgent(ps.slice(0, 3), { ...base, source: "./data//gsm8k.jsonl" });
      assert.equal(again.solvedNow, 0);
      assert.equal(again.skipped, 3);
    } finally {
      await store.close();
    }
  });
});

Deno.test("a run stored before the problem count was recorded still resumes", async () => {
  const ps = await problems(2);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      await store.createRun({
        id: "old",
        strategy: "greedy",
        config: {
          n: null,
          k: null,
          maxDepth: 2,
          budget: null,
          aggregation: "min",
          temperature: null,
          maxStepTokens: 6,
        },
        seed: 0,
        policyId: models.policy.id,
        rewardId: models.reward.id,
        problemsSource: "gsm8k",
      });
      const r = await runAgent(ps, {
        runId: "old",
        store,
        models,
        strategy: "greedy",
        source: "gsm8k",
        progress: false,
        maxDepth: 2,
        steps: { maxStepTokens: 6 },
      });
      assert.equal(r.solvedNow, 2);
      assert.equal((await store.getRun("old"))?.status, "done");
    } finally {
      await store.close();
    }
  });
});

Deno.test("a run records the settings that take effect: a resume naming a default matches one leaving it out", async () => {
  const ps = await problems(2);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      const base = {
        runId: "e",
        store,
        models,
        strategy: "step-greedy" as const,
        source: "gsm8k",
        progress: false,
        steps: { maxStepTokens: 6 },
        budget: { tokens: 12 },
      };
      await runAgent(ps.slice(0, 1), base);
      const config = (await store.getRun("e"))!.config;
      assert.equal(config.configVersion, 2);
      assert.equal(config.maxDepth, 12, "the depth the search used, not a stale 7");
      assert.equal(config.n, 4);
      assert.equal(config.temperature, 1);
      assert.equal(config.k, null, "step-greedy reads no k");
      // The same settings spelled out are the same run.
      const again = await runAgent(ps.slice(0, 1), { ...base, maxDepth: 12, n: 4, temperature: 1 });
      assert.equal(again.skipped, 1);
      await assert.rejects(
        runAgent(ps.slice(0, 1), { ...base, maxDepth: 7 }),
        /config\.maxDepth is 12 in the store, 7 now/,
      );
      await assert.rejects(
        runAgent(ps.slice(0, 1), { ...base, temperature: 0.5 }),
        /config\.temperature is 1 in the store, 0\.5 now/,
      );
      // The same file read as another format is other problems.
      const asMath = ps.slice(0, 1).map((p) => ({ ...p, source: "math" as const }));
      await assert.rejects(
        runAgent(asMath, base),
        /config\.format is "gsm8k" in the store, "math" now/,
      );
    } finally {
      await store.close();
    }
  });
});

Deno.test("a run stored before settings were resolved resumes against the form it was stored in", async () => {
  const ps = await problems(2);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      const config = { problems: 2, n: null, k: null, maxDepth: 7, budget: null };
      await store.createRun({
        id: "v1",
        strategy: "greedy",
        config: { ...config, aggregation: "min", temperature: null, maxStepTokens: 6 },
        seed: 0,
        policyId: models.policy.id,
        rewardId: models.reward.id,
        problemsSource: "gsm8k",
      });
      const base = { ...greedyRun("v1", store, models), source: "gsm8k", maxDepth: undefined };
      const r = await runAgent(ps, base);
      assert.equal(r.solvedNow, 2);
      assert.equal((await store.getRun("v1"))?.config.configVersion, undefined);
      await assert.rejects(
        runAgent(ps, { ...base, maxDepth: 12 }),
        /config\.maxDepth is 7 in the store, 12 now/,
      );
    } finally {
      await store.close();
    }
  });
});

Deno.test("an abort stops the run cleanly: finished problems stay committed, status 'stopped'", async () => {
  const ps = await problems(6);
  await withModels(async (models) => {
    const store = await openStore(":memory:");
    try {
      const ac = new AbortController();
      let seen = 0;
      const r = await runAgent(ps, {
        ...SEARCH,
        runId: "x",
        store,
        models,
        strategy: "mcts",
        source: "gsm8k",
        progress: false,
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === "expand" && ++seen === 5) ac.abort();
        },
      });
      assert.ok(r.stopped);
      assert.equal((await store.getRun("x"))?.status, "stopped");
      const done = await store.finishedProblemIds("x");
      assert.equal(done.size, r.problems);
      assert.ok(done.size < 6);
    } finally {
      await store.close();
    }
  });
});

Deno.test("every strategy solves a problem under the same interfaces", async () => {
  const [p] = await problems(1);
  await withModels(async (models) => {
    for (const strategy of ["mcts", "greedy", "best-of-n", "step-greedy", "beam"] as const) {
      const s = await solve(p.question, { ...SEARCH, n: 2, strategy, models, seed: 1 });
      assert.ok(s.steps.length >= 1 && s.steps.length <= 3, `${strategy}: ${s.steps.length}`);
      assert.ok(s.tokens > 0);
      if (strategy === "mcts") assert.ok(s.tree && s.tree.length > 1);
    }
  });
});

Deno.test("a policy that never emits the delimiter is cut at the per-step token limit", async () => {
  const policy = await OnnxPolicy.load(POLICY, { threads: 1 });
  try {
    const steps = new PolicySteps(policy, { delimiter: "@@never@@", maxStepTokens: 7 });
    const props = await steps.propose("q", [], { k: 3, seed: 1 });
    for (const p of props) assert.ok(p.tokens <= 7);
  } finally {
    await policy.close();
  }
});

Deno.test("a NaN or out-of-range reward is an error naming the model, never used", async () => {
  const bad = (v: number): RewardModel => ({
    id: "bad-model",
    scoreSteps: (_q, steps) => Promise.resolve(steps.map(() => v)),
    close: () => Promise.resolve(),
  });
  await assert.rejects(() => new RewardSteps(bad(NaN)).score("q", ["a"]), /bad-model.*NaN/);
  await assert.rejects(() => new RewardSteps(bad(1.5)).score("q", ["a"]), /bad-model.*1\.5/);
});

Deno.test("MCTS always answers: a path cut by the budget is finished greedily and scored", async () => {
  // Step i of the prompt "...Answer:\n" + i steps is "step i"; the fifth is the final one.
  const policy = {
    id: "counting",
    generate(prompt: string, o: { n?: number } = {}) {
      const i = prompt.split("\n\n").length - 1;
      const text = i >= 4 ? "The answer is 4" : `step ${i}\n\n`;
      return Promise.resolve(Array.from({ length: o.n ?? 1 }, () => ({
        text,
        ids: [1],
        logprobs: [-0.1],
        finishReason: i >= 4 ? "eos" as const : "stop" as const,
      })));
    },
    score: () => Promise.reject(new Error("unused")),
    close: () => Promise.resolve(),
  };
  const reward: RewardModel = {
    id: "half",
    scoreSteps: (_q, steps) => Promise.resolve(steps.map(() => 0.5)),
    close: () => Promise.resolve(),
  };
  const s = await solve("q", {
    strategy: "mcts",
    k: 2,
    budget: { simulations: 2 },
    models: { policy, reward },
  });
  assert.equal(s.complete, true);
  assert.deepEqual(s.steps, ["step 0", "step 1", "step 2", "step 3", "The answer is 4"]);
  assert.equal(s.stepRewards.length, 5);
  assert.ok(s.tree!.length <= 5, "the tree holds only what the search expanded");
});

Deno.test("annotate: each problem's tree is stored labelled, its shape is k wide to full depth and one rollout below, and a rerun skips it", async () => {
  const { BUNDLED_MODELS, generateProblems } = await import("../../agent/mod.ts");
  const policy = await OnnxPolicy.load(`${BUNDLED_MODELS}policy`, { threads: 1 });
  const store = await openStore(":memory:");
  try {
    const ps = generateProblems(3, { seed: 77 });
    const opts = {
      runId: "ann",
      store,
      models: { policy },
      strategy: "annotate" as const,
      source: "synthetic:3",
      k: 3,
      fullDepth: 2,
      temperature: 0.7,
      steps: { maxStepTokens: 48 },
      progress: false,
    };
    const first = await runAgent(ps, opts);
    assert.equal(first.strategy, "annotate");
    assert.equal(first.solvedNow, 3);
    let correctLeaves = 0;
    for (const p of ps) {
      const [tree] = await store.getTrees("ann", p.id);
      assert.equal(tree.kind, "annotation");
      const nodes = tree.nodes;
      for (const n of nodes) {
        const wide = n.depth < 2 && !n.terminal && n.depth < 12;
        if (n.children.length > 0) assert.equal(n.children.length, wide ? 3 : 1, `node ${n.id}`);
        else if (n.id !== 0) assert.equal(typeof n.correct, "boolean");
        // Each node's label is the share of correct leaves below it.
        const leaves: boolean[] = [];
        const stack = [n.id];
        while (stack.length) {
          const m = nodes[stack.pop()!];
          if (m.children.length === 0) leaves.push(m.correct === true);
          stack.push(...m.children);
        }
        assert.equal(n.mcLabel, leaves.filter(Boolean).length / leaves.length, `node ${n.id}`);
      }
      correctLeaves += nodes.filter((n) => n.correct).length;
      const row = (await store.listProblems("ann")).find((r) => r.problemId === p.id)!;
      assert.equal(row.reward, nodes[0].mcLabel, "the problem's reward is the root's label");
    }
    assert.ok(correctLeaves > 0, "the bundled policy solves some of these");
    assert.equal((await runAgent(ps, opts)).skipped, 3);
    await assert.rejects(
      runAgent(ps, { ...opts, fullDepth: 1 }),
      /other settings: config\.fullDepth is 2 in the store, 1 now/,
    );
    const goldless = ps.map(({ gold: _, ...p }) => p);
    await assert.rejects(
      runAgent(goldless, { ...opts, runId: "g" }),
      /Cannot annotate: Monte-Carlo labels need a gold answer for every problem, and 3 of 3 have none \(first: 'syn-77-0', problem 1 of the set\)/,
    );
    assert.equal(await store.getRun("g"), undefined, "nothing stored for a refused run");
  } finally {
    await store.close();
    await policy.close();
  }
});
