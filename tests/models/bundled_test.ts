/**
 * The bundled models under models/ (trained by models/build/build.ts): they load with the
 * engine, the policy solves held-out synthetic problems, and the reward models tell right
 * steps from wrong ones. These check the committed artifacts, not a fixture.
 */
import assert from "node:assert/strict";
import {
  BUNDLED_MODELS,
  BUNDLED_SEED,
  evaluate,
  generateProblems,
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
    const [pt] = await evaluate(problems, {
      policy,
      scorers: [],
      ns: [1],
      strategies: ["greedy"],
      progress: false,
    });
    // The model card reports 500 problems; 60 give a wide interval around it.
    assert.ok(pt.accuracy > 0.3 && pt.accuracy < 0.85, `greedy accuracy ${pt.accuracy}`);
  } finally {
    await policy.close();
  }
});

Deno.test("the bundled PRM and HRM score a correct step above the same step with a wrong result", async () => {
  const problems = generateProblems(40, { seed: BUNDLED_SEED + 1 });
  for (const name of ["prm", "hrm"]) {
    const model = await OnnxReward.load(`${BUNDLED_MODELS}${name}`, { threads: 1 });
    const reward = new RewardSteps(model);
    let wins = 0;
    for (const p of problems) {
      const right = writeSolution(p).steps;
      // the same solution with the first step's result off by one, left uncorrected
      const wrong =
        writeSolution(p, { mistakeRate: 1, correctionRate: 0, rng: new Random(p.index) })
          .steps;
      const [r] = await reward.score(p.question, right.slice(0, 1));
      const [w] = await reward.score(p.question, wrong.slice(0, 1));
      if (r > w) wins++;
    }
    await model.close();
    assert.ok(wins >= 30, `${name}: the right first step wins ${wins}/40`);
  }
});
