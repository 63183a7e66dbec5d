import assert from "node:assert/strict";
import { z } from "zod";
import { OnnxPolicy } from "../../inference/mod.ts";
import { openStore } from "../../store/mod.ts";
import {
  exportCommand,
  exportSftRecords,
  plainPrompt,
  selectSft,
  type SftCandidate,
  type SftRecord,
  sftRecords,
  weightedMajority,
} from "../../self_train/mod.ts";
import { testdataPath } from "../_helpers.ts";
import { populate } from "./_store.ts";

const POLICY = testdataPath("models/decoder-fp32");

const top = z.array(z.strictObject({ id: z.int().nonnegative(), logprob: z.number().max(0) }));
const sftLine = z.strictObject({
  prompt: z.string().min(1),
  completion: z.string().min(1),
  prompt_ids: z.array(z.int().nonnegative()).min(1),
  completion_ids: z.array(z.int().nonnegative()).min(1),
  ref_logprobs: z.array(z.number().max(0)),
  ref_top: z.array(top.length(20)),
  source: z.enum(["trajectory", "annotation-tree"]),
  run_id: z.string(),
  problem_id: z.string(),
  score: z.number().nullable(),
  mc_score: z.number().min(0).max(1).nullable(),
  pseudo_label: z.boolean(),
  policy_id: z.string(),
}).refine(
  (r) =>
    r.ref_logprobs.length === r.completion_ids.length &&
    r.ref_top.length === r.completion_ids.length,
  "one log-prob and one top-k list per completion token",
);

const cand = (
  answer: string | null,
  score: number,
  extra: Partial<SftCandidate> = {},
): SftCandidate => ({
  steps: [`says ${answer}`],
  score,
  mcScore: null,
  correct: null,
  answer,
  source: "trajectory",
  ...extra,
});

Deno.test("weightedMajority() weighs answers by score; ties go to the first seen", () => {
  assert.equal(weightedMajority([cand("2", 0.9), cand("3", 0.95), cand("2", 0.3)]), "2");
  assert.equal(weightedMajority([cand("3", 0.5), cand("2", 0.5)]), "3");
  assert.equal(weightedMajority([cand("3", NaN), cand("2", 0.1), cand(null, 5)]), "2");
  assert.equal(weightedMajority([cand(null, 1)]), undefined);
});

Deno.test("selectSft(): MC >= 0.95 or correct with reward; without gold the weighted majority", () => {
  const gold = [
    cand("7", 0.2, { mcScore: 0.96 }), // kept: MC
    cand("7", 0.9, { mcScore: 0.5, correct: true }), // kept: correct, reward 0.9
    cand("7", 0.4, { correct: true }), // reward too low
    cand("5", 0.99, { correct: false, mcScore: 0.94 }), // neither
  ];
  // With a gold answer, being right is enough unless a reward floor is given.
  assert.deepEqual(selectSft(gold, { gold: true }).map((c) => [c.score, c.pseudoLabel]), [
    [0.2, false],
    [0.9, false],
    [0.4, false],
  ]);
  assert.deepEqual(selectSft(gold, { gold: true, minReward: 0.5 }).map((c) => c.score), [0.2, 0.9]);
  assert.equal(selectSft(gold, { gold: true, minMc: 0.9, minReward: 0.5 }).length, 3);
  assert.equal(selectSft(gold, { gold: true, minReward: 0.3 }).length, 3);
  // An unknown reward (a run without a reward model) does not fail a floor.
  assert.equal(
    selectSft([cand("7", NaN, { correct: true })], { gold: true, minReward: 0.5 }).length,
    1,
  );
  const free = [cand("2", 0.9), cand("2", 0.3), cand("3", 0.95), cand("2", 0.6)];
  assert.deepEqual(
    selectSft(free, { gold: false }).map((c) => [c.answer, c.score, c.pseudoLabel]),
    [
      ["2", 0.9, true],
      ["2", 0.6, true],
    ],
  );
});

Deno.test("sftRecords(): selected solutions with the reference policy's log-probs, once each", async () => {
  await using store = await openStore(":memory:");
  await populate(store);
  const policy = await OnnxPolicy.load(POLICY);
  const fresh = await OnnxPolicy.load(POLICY);
  try {
    const records = await Array.fromAsync(sftRecords(store, "r1", { policy, minReward: 0.5 }));
    records.forEach((r, i) => {
      const v = sftLine.safeParse(r);
      if (!v.success) assert.fail(`record ${i}: ${z.prettifyError(v.error)}`);
    });
    const summary = records.map((r) => [r.problem_id, r.source, r.completion, r.pseudo_label]);
    // p1 (gold 7): trajectory a|a2 (MC 1), b|b2 (correct, reward 0.6); b|b1 (reward 0.4) is out
    // (under the --min-reward 0.5 given here; by default a correct solution is kept).
    // Annotation-tree paths ending in ANSWER 7 (leaf MC 1): a|a2|ANSWER 7 is a repeat of the
    // trajectory and given once; b|b1 and b|b2 are new. p2 (no gold): the weighted majority is
    // "2" (0.9 + 0.3 + 0.6 against 0.95); kept those with reward >= 0.5.
    assert.deepEqual(summary, [
      ["p1", "trajectory", "a\n\na2\n\nANSWER 7", false],
      ["p1", "trajectory", "b\n\nb2\n\nANSWER 7", false],
      ["p1", "annotation-tree", "b\n\nb1\n\nANSWER 7", false],
      ["p2", "trajectory", "one and one\n\nANSWER 2", true],
      ["p2", "trajectory", "think\n\nANSWER 2", true],
    ]);
    const treePath = records[2];
    assert.equal(treePath.mc_score, 1);
    assert.equal(treePath.score, 0.5); // the smallest step reward on the path
    assert.equal(records[0].mc_score, 1);
    assert.equal(records[3].mc_score, null);
    assert.equal(records[0].prompt, plainPrompt("What is 3 + 4?"));
    assert.equal(records[0].prompt, "Question: What is 3 + 4?\nAnswer:\n");
    // the KL fields round-trip: a fresh teacher-forced score() gives the same ids and log-probs
    for (const r of records) {
      const s = await fresh.score(r.prompt, r.completion, { topK: 20 });
      assert.deepEqual(r.prompt_ids, s.promptIds);
      assert.deepEqual(r.completion_ids, s.tokens.map((t) => t.id));
      r.ref_logprobs.forEach((lp, i) => assert.ok(Math.abs(lp - s.tokens[i].logprob) < 1e-5));
      r.ref_top.forEach((row, i) => {
        assert.deepEqual(row.map((t) => t.id), s.tokens[i].top.map((t) => t.id));
        row.forEach((t, j) => assert.ok(Math.abs(t.logprob - s.tokens[i].top[j].logprob) < 1e-5));
      });
      assert.equal(r.policy_id, "decoder-fp32");
      assert.equal(r.run_id, "r1");
    }
    const onlyTrees = await Array.fromAsync(
      sftRecords(store, "r1", { policy, from: ["trees"], topK: 3 }),
    );
    assert.deepEqual(onlyTrees.map((r) => r.completion), [
      "a\n\na2\n\nANSWER 7",
      "b\n\nb1\n\nANSWER 7",
      "b\n\nb2\n\nANSWER 7",
    ]);
    assert.ok(onlyTrees.every((r) => r.ref_top.every((row) => row.length === 3)));
  } finally {
    await policy.close();
    await fresh.close();
  }
});

Deno.test("exportSftRecords() drops a repeated record and counts pseudo labels", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r: SftRecord = {
      prompt: "p",
      completion: "c",
      prompt_ids: [1],
      completion_ids: [2],
      ref_logprobs: [-0.5],
      ref_top: [[{ id: 2, logprob: -0.5 }]],
      source: "trajectory",
      run_id: "r",
      problem_id: "x",
      score: 0.9,
      mc_score: null,
      pseudo_label: true,
      policy_id: "ref",
    };
    const m = await exportSftRecords([r, r, { ...r, completion: "d", pseudo_label: false }], {
      out: dir,
      source: "run:r",
      modelIds: { reference_policy: "ref" },
    });
    assert.equal(m.format, "sft");
    assert.equal(m.kind, "sft");
    assert.equal(m.files[0].records, 2);
    assert.equal(m.duplicates, 1);
    assert.deepEqual(m.counts.pseudo_label, { true: 1, false: 1 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exportCommand() --kind sft scores with --policy and writes format sft", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arborist-sft-" });
  try {
    const db = `${dir}/runs.db`;
    const store = await openStore(db);
    try {
      await populate(store);
    } finally {
      await store.close();
    }
    const out: string[] = [], bar: string[] = [], warned: string[] = [];
    await exportCommand(
      { run: "r1", kind: "sft", out: `${dir}/sft`, db, policy: POLICY, "min-reward": "0.55" },
      { print: (l) => out.push(l), warn: (l) => warned.push(l), progressTo: (t) => bar.push(t) },
    );
    assert.match(
      warned.join("\n"),
      /the reference policy 'decoder-fp32' is not the run's policy 'scripted'/,
    );
    // The bar ends on the records written in all (3 of p1, 2 of p2), not the last problem's.
    assert.match(bar.at(-1)!, /^export sft .* 2\/2 problems .* records 5\n$/);
    const m = JSON.parse(await Deno.readTextFile(`${dir}/sft/manifest.json`));
    assert.equal(m.format, "sft");
    assert.deepEqual(m.model_ids, { reference_policy: "decoder-fp32", run_policy: "scripted" });
    assert.equal(m.options.min_reward, 0.55);
    assert.equal(m.options.prompt, "Question: {question}\nAnswer:\n");
    const lines = (await Deno.readTextFile(`${dir}/sft/data.jsonl`)).trim().split("\n").map((l) =>
      sftLine.parse(JSON.parse(l))
    );
    assert.equal(lines.length, 5);
    assert.deepEqual(m.counts.pseudo_label, { false: 3, true: 2 });
    assert.match(out[0], /^wrote 5 sft records \(sft\) to /);
    // A run without a reward model: its stored scores are unknown (null), its right answers kept;
    // a run with nothing to select warns, naming the thresholds.
    const again = await openStore(db);
    try {
      for (const [id, answer] of [["plain", "7"], ["wrong", "5"]]) {
        await again.createRun({
          id,
          strategy: "greedy",
          config: {},
          seed: 0,
          policyId: "decoder-fp32",
          problemsSource: "hand",
        });
        await again.saveProblemResult(id, {
          problemId: "q",
          index: 0,
          question: "What is 3 + 4?",
          gold: "7",
          tokens: 0,
          seconds: 0,
          trajectories: [{
            steps: [`ANSWER ${answer}`],
            stepRewards: [NaN],
            score: 0,
            correct: answer === "7",
            answer,
          }],
        });
      }
    } finally {
      await again.close();
    }
    const notes: string[] = [];
    const q = { print: () => {}, warn: (l: string) => notes.push(l), progressTo: () => {} };
    await exportCommand({ run: "plain", kind: "sft", out: `${dir}/plain`, db, policy: POLICY }, q);
    const [rec] = (await Deno.readTextFile(`${dir}/plain/data.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(rec.score, null);
    assert.deepEqual(
      notes,
      [],
      "the run's own policy as reference, something selected: no warning",
    );
    await exportCommand({ run: "wrong", kind: "sft", out: `${dir}/none`, db, policy: POLICY }, q);
    assert.match(
      notes.join("\n"),
      /no records: no solution of run 'wrong' was selected .*--min-mc 0\.95/,
    );
    await assert.rejects(
      exportCommand(
        { run: "plain", kind: "sft", out: `${dir}/x`, db, policy: POLICY, "min-reward": "2" },
        q,
      ),
      /--min-reward must be a number from 0 to 1: got '2'/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
