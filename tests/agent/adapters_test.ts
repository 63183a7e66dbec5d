import assert from "node:assert/strict";
import { PolicySteps, RewardSteps } from "../../agent/mod.ts";
import { OnnxPolicy } from "../../inference/mod.ts";
import { OnnxReward } from "../../reward/mod.ts";
import { testdataPath } from "../_helpers.ts";

// The real fixtures have a 512-token context (config.json): paths that outgrow it end the
// branch instead of failing the search.

Deno.test("a node whose prompt fills the policy's context gets no proposals", async () => {
  const policy = await OnnxPolicy.load(testdataPath("models/decoder-fp32"), { threads: 1 });
  try {
    const steps = new PolicySteps(policy, { maxStepTokens: 8 });
    const q = "Tom has 3 apples.";
    assert.ok((await steps.propose(q, ["He buys 4."], { k: 2, seed: 1, temperature: 1 })).length);
    const long = Array.from({ length: 60 }, () => "He buys 4 more apples and counts them again.");
    assert.deepEqual(await steps.propose(q, long, { k: 2, seed: 1, temperature: 1 }), []);
  } finally {
    await policy.close();
  }
});

Deno.test("a solution longer than the reward model's context scores 0 instead of failing", async () => {
  const reward = await OnnxReward.load(testdataPath("models/reward-paper-2"), { threads: 1 });
  try {
    const r = new RewardSteps(reward);
    const q = "Tom has 3 apples and buys 4 more. How many?";
    const short = ["He buys 4 more, so 3 + 4 = 7.", "The answer is 7"];
    const long = ["He counts: " + "3 + 4 = 7, ".repeat(150)];
    const fine = await r.score(q, short);
    assert.ok(fine.some((x) => x > 0));
    assert.deepEqual(await r.score(q, long), [0]);
    const many = await r.scoreMany(q, [short, long]);
    assert.deepEqual(many[0], fine);
    assert.deepEqual(many[1], [0]);
  } finally {
    await reward.close();
  }
});
