import assert from "node:assert/strict";
import { evalSvg, evalTable, evaluate, type Problem, wilson } from "../../agent/mod.ts";
import type { GenerateOptions, Generation, PolicyModel } from "../../inference/mod.ts";
import type { RewardModel } from "../../reward/mod.ts";

/** Answers "The answer is (seed + i) % 4": with gold 0, one in four samples is right. */
const policy: PolicyModel = {
  id: "scripted",
  generate(_p: string, o: GenerateOptions = {}): Promise<Generation[]> {
    return Promise.resolve(Array.from({ length: o.n ?? 1 }, (_, i) => ({
      text: `The answer is ${((o.seed ?? 0) + i) % 4}\n\n`,
      ids: [1, 2],
      logprobs: [-0.1, -0.1],
      finishReason: "stop" as const,
    })));
  },
  score: () => Promise.reject(new Error("unused")),
  close: () => Promise.resolve(),
};

/** A perfect verifier: 1 for the right answer, 0 otherwise. */
const oracle: RewardModel = {
  id: "oracle",
  scoreSteps: (_q, steps) => Promise.resolve(steps.map((s) => (s.endsWith(" 0") ? 1 : 0))),
  close: () => Promise.resolve(),
};
/** A useless verifier: the same score for everything. */
const flat: RewardModel = {
  id: "flat",
  scoreSteps: (_q, steps) => Promise.resolve(steps.map(() => 0.5)),
  close: () => Promise.resolve(),
};

const problems: Problem[] = Array.from({ length: 40 }, (_, i) => ({
  id: String(i),
  index: i,
  question: `q${i}`,
  gold: "0",
  source: "gsm8k",
}));

Deno.test("wilson() matches known 95% intervals", () => {
  const { low, high } = wilson(50, 100);
  assert.ok(Math.abs(low - 0.4038) < 1e-3 && Math.abs(high - 0.5962) < 1e-3);
  assert.deepEqual(wilson(0, 0), { low: 0, high: 1 });
});

Deno.test("evaluate(): a perfect verifier reaches 1 once N covers every answer; a flat one stays at chance", async () => {
  const points = await evaluate(problems, {
    policy,
    scorers: [{ name: "ORACLE", model: oracle, kind: "process" }, {
      name: "FLAT",
      model: flat,
      kind: "outcome",
    }],
    ns: [1, 4, 8],
    strategies: ["best-of-n", "step-greedy"],
    progress: false,
  });
  const at = (strategy: string, scorer: string, n: number) =>
    points.find((p) => p.strategy === strategy && p.scorer === scorer && p.n === n)!;
  assert.equal(at("best-of-n", "ORACLE", 4).accuracy, 1);
  assert.equal(at("best-of-n", "ORACLE", 8).accuracy, 1);
  assert.equal(at("step-greedy", "ORACLE", 4).accuracy, 1);
  const chance = at("best-of-n", "FLAT", 8).accuracy;
  assert.ok(chance > 0.1 && chance < 0.45, `flat scorer accuracy ${chance}`);
  assert.equal(points.find((p) => p.strategy === "step-greedy" && p.scorer === "FLAT"), undefined);
  assert.equal(at("best-of-n", "ORACLE", 1).total, 40);
  const table = evalTable(points);
  assert.match(table, /\| best-of-n \| ORACLE \| .* \| 1\.000 \[0\.912, 1\.000\] \|/);
  const svg = evalSvg(points);
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 3);
});

Deno.test("evaluate(): greedy reference point, per-problem results, and a resumed run counts what was done", async () => {
  const seen: { id: string; hits: string[] }[] = [];
  const base = {
    policy,
    scorers: [{ name: "ORACLE", model: oracle, kind: "process" as const }],
    ns: [2, 4],
    strategies: ["greedy", "best-of-n"] as const,
    progress: false,
  };
  const full = await evaluate(problems, { ...base, onProblem: (r) => void seen.push(r) });
  assert.equal(seen.length, 40);
  const greedyPoint = full.find((p) => p.strategy === "greedy")!;
  assert.equal(greedyPoint.n, 1);
  // greedy decoding uses the problem's seed: "(seed) % 4" is 0 for a quarter of the seeds
  assert.equal(greedyPoint.correct, seen.filter((r) => r.hits.includes("greedy|-|1")).length);
  assert.ok(greedyPoint.correct > 0 && greedyPoint.correct < 40);
  // resume: the first 25 come from the journal and are not rerun
  let reran = 0;
  const done = new Map(seen.slice(0, 25).map((r) => [r.id, r.hits]));
  const resumed = await evaluate(problems, {
    ...base,
    done,
    onProblem: () => void reran++,
  });
  assert.equal(reran, 15);
  assert.deepEqual(resumed, full);
  const table = evalTable(full);
  assert.match(table, /Greedy decoding \(the policy alone\): \d\.\d{3} \[/);
  assert.ok(!/\| greedy \|/.test(table), "greedy is a footnote, not a row");
  assert.match(evalSvg(full), /stroke-dasharray="5 4"/);
});
