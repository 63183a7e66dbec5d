import assert from "node:assert/strict";
import { OnnxReward } from "../../reward/mod.ts";
import {
  evalProcessBenchCommand,
  evaluateProcessBench,
  firstError,
  processBenchMetrics,
  readProcessBench,
  type StepScorer,
} from "../../self_train/mod.ts";
import { sharedDataPath, testdataPath } from "../_helpers.ts";

const GSM8K = sharedDataPath("processbench/gsm8k.json");
const REWARD = testdataPath("models/reward-paper-2");

/** A scorer that looks each step up by its text. */
class TableScorer implements StepScorer {
  constructor(readonly table: Record<string, number>) {}
  scoreSteps(_q: string, steps: readonly string[]): Promise<number[]> {
    return Promise.resolve(steps.map((s) => this.table[s]));
  }
}

Deno.test("firstError() is the first step under the threshold, -1 when none", () => {
  assert.equal(firstError([0.9, 0.2, 0.1], 0.5), 1);
  assert.equal(firstError([0.9, 0.5], 0.5), -1); // 0.5 is not under 0.5
  assert.equal(firstError([], 0.5), -1);
});

Deno.test("evaluateProcessBench() with known scores gives exactly known metrics", async () => {
  const reward = new TableScorer({ a: 0.9, b: 0.2, c: 0.8, d: 0.1, e: 0.4, f: 0.6 });
  const samples = [
    { id: "1", problem: "q", steps: ["a", "b", "c"], label: 1 }, // predicted 1: right
    { id: "2", problem: "q", steps: ["a", "d"], label: 0 }, // predicted 1: wrong
    { id: "3", problem: "q", steps: ["a", "a"], label: -1 }, // predicted -1: right
    { id: "4", problem: "q", steps: ["a", "e"], label: -1 }, // predicted 1: wrong
    { id: "5", problem: "q", steps: ["f"], label: -1 }, // predicted -1: right
  ];
  const r = await evaluateProcessBench(samples, { reward });
  assert.deepEqual(r.predictions.map((p) => p.predicted), [1, 1, -1, 1, -1]);
  assert.equal(r.error_acc, 1 / 2);
  assert.equal(r.correct_acc, 2 / 3);
  assert.ok(Math.abs(r.f1 - 4 / 7) < 1e-12); // 2 · (1/2) · (2/3) / (1/2 + 2/3)
  assert.equal(r.total, 5);
  const strict = await evaluateProcessBench(samples, { reward, threshold: 0.65 });
  // at 0.65: f (0.6) and e (0.4) count as wrong too
  assert.deepEqual(strict.predictions.map((p) => p.predicted), [1, 1, -1, 1, 0]);
  assert.equal(strict.correct_acc, 1 / 3);
  assert.deepEqual(processBenchMetrics([]), {
    error_acc: 0,
    correct_acc: 0,
    f1: 0,
    total: 0,
    errors: 0,
    corrects: 0,
  });
});

Deno.test("readProcessBench() reads gsm8k.json and names a bad field", async () => {
  const all = await readProcessBench(GSM8K);
  assert.equal(all.length, 400);
  assert.equal(all.filter((s) => s.label >= 0).length, 207);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/bad.json`,
      JSON.stringify([{ id: "x", problem: "p", steps: "no", label: -1 }]),
    );
    await assert.rejects(readProcessBench(`${dir}/bad.json`), /bad.json: \[0\]\.steps /);
    await Deno.writeTextFile(
      `${dir}/far.json`,
      JSON.stringify([{ id: "x", problem: "p", steps: ["a"], label: 3 }]),
    );
    await assert.rejects(
      readProcessBench(`${dir}/far.json`),
      /\[0\]\.label must be -1 or a step index below 1: got 3/,
    );
    // JSON Lines (the datasets library's export) read the same as the array.
    const first = all.slice(0, 3);
    await Deno.writeTextFile(
      `${dir}/pb.jsonl`,
      "\uFEFF" + first.map((r) => JSON.stringify(r)).join("\n") + "\n\n",
    );
    assert.deepEqual(await readProcessBench(`${dir}/pb.jsonl`), first);
    await Deno.writeTextFile(`${dir}/cut.jsonl`, JSON.stringify(first[0]) + '\n{"id": ');
    await assert.rejects(readProcessBench(`${dir}/cut.jsonl`), /cut\.jsonl:2: not valid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluateProcessBench() on real gsm8k.json with reward-paper-2: the arithmetic holds", async () => {
  // The fixture has random weights: only the bookkeeping is checked. The 6 shortest samples
  // with an error and the 6 shortest without keep it quick; the threshold sits inside the
  // fixture's score range so that both kinds of prediction occur.
  const all = await readProcessBench(GSM8K);
  const size = (s: { problem: string; steps: string[] }) =>
    s.problem.length + s.steps.join("").length;
  const shortest = (list: typeof all) => [...list].sort((a, b) => size(a) - size(b)).slice(0, 6);
  const samples = [
    ...shortest(all.filter((s) => s.label >= 0)),
    ...shortest(all.filter((s) => s.label < 0)),
  ];
  const reward = await OnnxReward.load(REWARD);
  try {
    const r = await evaluateProcessBench(samples, { reward, threshold: 0.95 });
    const byId = new Map(samples.map((s) => [s.id, s]));
    let errHits = 0, okHits = 0, errs = 0, oks = 0;
    for (const p of r.predictions) {
      const s = byId.get(p.id)!;
      assert.equal(p.scores.length, s.steps.length);
      const first = p.scores.findIndex((x) => x < 0.95);
      assert.equal(p.predicted, first);
      if (s.label >= 0) errs++, errHits += first === s.label ? 1 : 0;
      else oks++, okHits += first === -1 ? 1 : 0;
    }
    // Samples longer than the fixture's 512-token context are left out, with the reason.
    for (const k of r.skipped) assert.match(k.reason, /more than the model's context of 512/);
    assert.equal(r.total + r.skipped.length, 12);
    assert.ok(r.total >= 10, `${r.total} scored`);
    assert.ok(new Set(r.predictions.map((p) => p.predicted)).size > 1, "a mix of predictions");
    assert.equal(r.errors, errs);
    assert.equal(r.error_acc, errHits / errs);
    assert.equal(r.correct_acc, okHits / oks);
    const [a, b] = [errHits / errs, okHits / oks];
    const f1 = a + b > 0 ? (2 * a * b) / (a + b) : 0;
    assert.ok(Math.abs(r.f1 - f1) < 1e-12);
  } finally {
    await reward.close();
  }
});

Deno.test("evalProcessBenchCommand() --json prints error_acc, correct_acc, f1, total, skipped", async () => {
  // A small file of the 3 shortest real samples keeps the tiny model quick.
  const all = await readProcessBench(GSM8K);
  const size = (s: { problem: string; steps: string[] }) =>
    s.problem.length + s.steps.join("").length;
  const dir = await Deno.makeTempDir();
  const data = `${dir}/short.json`;
  await Deno.writeTextFile(
    data,
    JSON.stringify([...all].sort((a, b) => size(a) - size(b)).slice(0, 3)),
  );
  const out: string[] = [];
  const io = { print: (l: string) => out.push(l), warn: () => {}, progress: false };
  try {
    await evalProcessBenchCommand({ reward: REWARD, data, threshold: "0.95", json: true }, io);
    const j = JSON.parse(out[0]);
    assert.deepEqual(Object.keys(j), ["error_acc", "correct_acc", "f1", "total", "skipped"]);
    assert.equal(j.total, 3);
    out.length = 0;
    await evalProcessBenchCommand({ reward: REWARD, data, limit: "1" }, io);
    assert.equal(out.length, 4);
    assert.match(out[0], /: 1 samples, reward reward-paper-2, threshold 0.5$/);
    assert.match(out[1], /^ {2}accuracy on erroneous samples {2}\d+\.\d% \(\d+\/\d+\)$/);
    await assert.rejects(
      evalProcessBenchCommand({ reward: REWARD, data, threshold: "2" }, io),
      /^RangeError: --threshold must be a number from 0 to 1: got '2'$/,
    );
    await assert.rejects(evalProcessBenchCommand({ data }, io), /--reward is required/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluateProcessBench() leaves out a sample longer than the reward model's context and says so", async () => {
  const size = (s: { problem: string; steps: string[] }) =>
    s.problem.length + s.steps.join("").length;
  const [short] = (await readProcessBench(GSM8K)).sort((a, b) => size(a) - size(b));
  const long = { ...short, id: "long", steps: [...short.steps, short.steps.join(" ").repeat(8)] };
  const reward = await OnnxReward.load(REWARD);
  try {
    const skipped: string[] = [];
    const r = await evaluateProcessBench([long, short], {
      reward,
      onSkip: (k) => skipped.push(k.id),
    });
    assert.deepEqual(r.predictions.map((p) => p.id), [short.id]);
    assert.equal(r.total, 1);
    assert.deepEqual(skipped, ["long"]);
    assert.equal(r.skipped.length, 1);
    assert.match(r.skipped[0].reason, /tokens, more than the model's context of 512/);
  } finally {
    await reward.close();
  }
});
