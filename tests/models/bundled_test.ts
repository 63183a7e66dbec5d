/**
 * The bundled models under models/ (trained by models/build/build.ts): they load with the
 * engine, the policy solves held-out synthetic problems, self-training improved it, and the
 * reward models tell right steps from wrong ones. These check the committed artifacts, not a
 * fixture.
 */
import assert from "node:assert/strict";
import {
  BUNDLED_MODELS,
  BUNDLED_SEED,
  generateProblems,
  greedyAccuracy,
  missingBundledModels,
  RewardSteps,
  writeSolution,
} from "../../agent/mod.ts";
import { OnnxPolicy, Random } from "../../inference/mod.ts";
import { OnnxReward } from "../../reward/mod.ts";

Deno.test("the bundled models are all there and small enough for the repository", async () => {
  assert.deepEqual(await missingBundledModels(), []);
  let bytes = 0;
  for await (const m of Deno.readDir(BUNDLED_MODELS)) {
    if (!m.isDirectory) continue;
    for await (const f of Deno.readDir(`${BUNDLED_MODELS}${m.name}`)) {
      if (f.isFile) bytes += (await Deno.stat(`${BUNDLED_MODELS}${m.name}/${f.name}`)).size;
    }
  }
  assert.ok(bytes < 30 * 2 ** 20, `${(bytes / 2 ** 20).toFixed(1)} MiB`);
});

Deno.test("the bundled policy solves held-out synthetic problems greedily, within the target band", async () => {
  const policy = await OnnxPolicy.load(`${BUNDLED_MODELS}policy`, { threads: 1 });
  try {
    const problems = generateProblems(60, { seed: BUNDLED_SEED });
    const pt = await greedyAccuracy(problems, policy, { progress: false });
    // The model card reports 500 problems; 60 give a wide interval around it.
    assert.ok(pt.accuracy > 0.3 && pt.accuracy < 0.85, `greedy accuracy ${pt.accuracy}`);
  } finally {
    await policy.close();
  }
});

Deno.test("self-training helped: the self-trained policy solves more held-out problems greedily", async () => {
  const problems = generateProblems(60, { seed: BUNDLED_SEED });
  const acc: Record<string, number> = {};
  for (const name of ["policy", "policy-selftrained"]) {
    const policy = await OnnxPolicy.load(`${BUNDLED_MODELS}${name}`, { threads: 1 });
    try {
      acc[name] = (await greedyAccuracy(problems, policy, { progress: false })).accuracy;
    } finally {
      await policy.close();
    }
  }
  assert.ok(acc["policy-selftrained"] > acc.policy, JSON.stringify(acc));
});

Deno.test("the bundled ORM, PRM and HRM load and score every step within [0, 1]", async () => {
  const [p] = generateProblems(1, { seed: BUNDLED_SEED + 1 });
  for (const name of ["orm", "prm", "hrm"]) {
    const model = await OnnxReward.load(`${BUNDLED_MODELS}${name}`, { threads: 1 });
    try {
      const scores = await new RewardSteps(model).score(p.question, writeSolution(p).steps);
      assert.equal(scores.length, p.steps!.length, name);
      assert.ok(scores.every((x) => x >= 0 && x <= 1), `${name}: ${scores}`);
    } finally {
      await model.close();
    }
  }
});

Deno.test("the bundled PRM and HRM score a right first step above the same step off by one; the ORM a right solution above a wrong one", async () => {
  const problems = generateProblems(40, { seed: BUNDLED_SEED + 1 });
  const offByOne = (step: string) => step.replace(/= (\d+)\.$/, (_, r) => `= ${Number(r) + 1}.`);
  for (const name of ["prm", "hrm"]) {
    const model = await OnnxReward.load(`${BUNDLED_MODELS}${name}`, { threads: 1 });
    try {
      const steps = new RewardSteps(model);
      let wins = 0;
      for (const p of problems) {
        const first = writeSolution(p).steps[0];
        assert.notEqual(offByOne(first), first);
        const [right] = await steps.score(p.question, [first]);
        const [wrong] = await steps.score(p.question, [offByOne(first)]);
        if (right > wrong) wins++;
      }
      // Trained on the policy's hidden state alone the models won 19/40 (PRM) and 23/40 (HRM).
      assert.ok(wins >= 32, `${name}: the right step scored higher in ${wins}/40`);
    } finally {
      await model.close();
    }
  }
  const ormModel = await OnnxReward.load(`${BUNDLED_MODELS}orm`, { threads: 1 });
  const orm = new RewardSteps(ormModel);
  try {
    let wins = 0, pairs = 0;
    for (const p of problems) {
      const wrong = writeSolution(p, {
        mistakeRate: 0.3,
        correctionRate: 0,
        rng: new Random(p.index),
      });
      if (wrong.correct) continue;
      pairs++;
      const [right] = await orm.score(p.question, [writeSolution(p).steps.join("\n\n")]);
      const [bad] = await orm.score(p.question, [wrong.steps.join("\n\n")]);
      if (right > bad) wins++;
    }
    assert.ok(pairs >= 20, `only ${pairs} wrong solutions`);
    // The earlier ORM told them apart 21 times in 40.
    assert.ok(wins >= 0.8 * pairs, `ORM: the right solution scored higher in ${wins}/${pairs}`);
  } finally {
    await ormModel.close();
  }
});
