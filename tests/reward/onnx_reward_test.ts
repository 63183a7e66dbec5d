import assert from "node:assert/strict";
import { aggregateScores, OnnxReward, readRewardConfig } from "../../reward/mod.ts";
import { copyFixture, testdataPath } from "../_helpers.ts";

const Q = "Tom has 3 apples and buys 4 more. How many apples does he have?";
const STEPS = [
  "Tom starts with 3 apples.",
  "He buys 4 more, so 3 + 4 = 7.",
  "The answer is 7",
];

async function scores(dir: string, steps = STEPS, opts = {}): Promise<number[]> {
  const r = await OnnxReward.load(testdataPath(`models/${dir}`), { threads: 1, ...opts });
  try {
    return await r.scoreSteps(Q, steps);
  } finally {
    await r.close();
  }
}

for (const dir of ["reward-qwen-prm", "reward-math-shepherd", "reward-paper-2", "reward-paper-1"]) {
  Deno.test(`${dir}: one score in [0, 1] per step, not all equal, deterministic`, async () => {
    const s = await scores(dir);
    assert.equal(s.length, STEPS.length);
    assert.ok(s.every((x) => x >= 0 && x <= 1), `${s}`);
    assert.ok(new Set(s.map((x) => x.toFixed(6))).size > 1, `${s}`);
    assert.deepEqual(await scores(dir), s);
  });

  Deno.test(`${dir}: a step's score depends only on the steps up to it`, async () => {
    const full = await scores(dir);
    const prefix = await scores(dir, STEPS.slice(0, 2));
    prefix.forEach((x, i) => assert.ok(Math.abs(x - full[i]) < 1e-5, `step ${i}`));
    assert.deepEqual(await scores(dir, []), []);
  });
}

Deno.test("math-shepherd with a KV cache scores incrementally: one more step runs only its tokens", async () => {
  const r = await OnnxReward.load(testdataPath("models/reward-math-shepherd"), { threads: 1 });
  const fresh = await OnnxReward.load(testdataPath("models/reward-math-shepherd"), { threads: 1 });
  try {
    const growing: number[] = [];
    for (let k = 1; k <= STEPS.length; k++) {
      const s = await r.scoreSteps(Q, STEPS.slice(0, k));
      growing.push(s[k - 1]);
    }
    const whole = await fresh.scoreSteps(Q, STEPS);
    growing.forEach((x, i) =>
      assert.ok(Math.abs(x - whole[i]) < 1e-4, `step ${i}: ${x} vs ${whole[i]}`)
    );
    assert.ok(
      r.positionsRun < fresh.positionsRun * 1.2,
      `${r.positionsRun} vs ${fresh.positionsRun}`,
    );
    // A sibling of the last step reuses the prefix of the first two.
    const before = r.positionsRun;
    await r.scoreSteps(Q, [...STEPS.slice(0, 2), "So he has 8 apples."]);
    const sibling = r.positionsRun - before;
    const whole3 = fresh.positionsRun; // the whole 3-step text, run once
    assert.ok(sibling > 0 && sibling < whole3 / 2, `a sibling ran ${sibling} of ${whole3}`);
  } finally {
    await r.close();
    await fresh.close();
  }
});

Deno.test("qwen-prm reads class 1 at every <extra_0> of the chat-templated input", async () => {
  const s = await scores("reward-qwen-prm");
  const again = await scores("reward-qwen-prm", STEPS.slice(0, 1));
  assert.ok(Math.abs(s[0] - again[0]) < 1e-5);
});

Deno.test("a directory without reward.json works from flags and says what is missing without them", async () => {
  await assert.rejects(
    () => OnnxReward.load(testdataPath("models/reward-noconfig")),
    /reward\.json does not exist.*--head/,
  );
  const a = await scores("reward-noconfig", STEPS, {
    head: "sequence-classification",
    format: "paper",
  });
  const b = await scores("reward-paper-2");
  assert.deepEqual(a, b);
});

Deno.test("reward.json fields are validated and mismatched head/format is named", async () => {
  await using copy = await copyFixture("models/reward-paper-2");
  await Deno.writeTextFile(
    `${copy.dir}/reward.json`,
    JSON.stringify({ head: "nope", format: "paper" }),
  );
  await assert.rejects(() => readRewardConfig(copy.dir), /field 'head'/);
  await assert.rejects(
    () => readRewardConfig(copy.dir, { head: "lm-tokens" }),
    /head 'lm-tokens' does not go with format 'paper'/,
  );
});

Deno.test("step scores aggregate by min, last, product and mean", () => {
  const s = [0.5, 0.8, 0.25];
  assert.equal(aggregateScores(s, "min"), 0.25);
  assert.equal(aggregateScores(s, "last"), 0.25);
  assert.equal(aggregateScores(s, "product"), 0.1);
  assert.ok(Math.abs(aggregateScores(s, "mean") - 1.55 / 3) < 1e-12);
  assert.equal(aggregateScores([], "min"), 0);
});

Deno.test("incremental: false re-runs whole texts and gives the same scores", async () => {
  const a = await scores("reward-math-shepherd");
  const b = await scores("reward-math-shepherd", STEPS, { incremental: false });
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) < 1e-4));
});

for (const dir of ["reward-paper-1", "reward-math-shepherd"]) {
  Deno.test(`${dir}: scoreMany gives each solution's scoreSteps scores, sharing one batch`, async () => {
    const solutions = [
      STEPS,
      STEPS.slice(0, 2),
      ["Tom has 3 + 4 = 8 apples.", "The answer is 8"],
      [],
    ];
    const want: number[][] = [];
    for (const s of solutions) want.push(await scores(dir, s));
    const r = await OnnxReward.load(testdataPath(`models/${dir}`), { threads: 1 });
    try {
      const got = await r.scoreMany(Q, solutions);
      assert.equal(got.length, solutions.length);
      got.forEach((s, i) =>
        s.forEach((x, k) => assert.ok(Math.abs(x - want[i][k]) < 1e-5, `solution ${i} step ${k}`))
      );
      assert.deepEqual(got[3], []);
      const before = r.positionsRun;
      await r.scoreMany(Q, solutions);
      assert.equal(r.positionsRun, before, "every prompt scored before comes from the memo");
    } finally {
      await r.close();
    }
  });
}

Deno.test("an input longer than the reward model's context is refused with the length and the limit", async () => {
  const long = ["He counts again: " + "3 + 4 = 7, ".repeat(150)];
  for (const dir of ["reward-paper-2", "reward-math-shepherd", "reward-qwen-prm"]) {
    const r = await OnnxReward.load(testdataPath(`models/${dir}`), { threads: 1 });
    try {
      assert.deepEqual(r.context, { tokens: 512, source: "config.json max_position_embeddings" });
      await assert.rejects(
        () => r.scoreSteps(Q, [...STEPS.slice(0, 1), ...long]),
        (e: Error) =>
          e.name === "ContextLengthError" && e instanceof RangeError &&
          /is \d+ tokens, more than the model's context of 512 \(config.json max_position_embeddings\)/
            .test(e.message),
        dir,
      );
      // the model still scores what fits afterwards
      assert.equal((await r.scoreSteps(Q, STEPS)).length, STEPS.length);
    } finally {
      await r.close();
    }
  }
});

Deno.test("a math-shepherd label token must be one token of the vocabulary", async () => {
  await assert.rejects(
    () =>
      OnnxReward.load(testdataPath("models/reward-math-shepherd"), {
        threads: 1,
        label_tokens: ["xyzzy_not_a_token", "-"],
      }),
    /label token 'xyzzy_not_a_token' must be one token of its vocabulary, it encodes to \d+ tokens/,
  );
});
