import assert from "node:assert/strict";
import {
  parsePrm800kRecord,
  prm800kSamples,
  readPrm800k,
  type RewardSample,
} from "../../self_train/mod.ts";
import { sharedDataPath } from "../_helpers.ts";

const PHASE1 = sharedDataPath("prm800k/phase1_test.jsonl");

/** A record exercising every rule: ratings +1/-1/0/null, a human completion, a dead end. */
function handRecord(finish = "solution") {
  return {
    question: { problem: "Q?", ground_truth_answer: "1" },
    label: {
      finish_reason: finish,
      steps: [
        {
          completions: [
            { text: "A", rating: 1 },
            { text: "B", rating: -1 },
            { text: "C", rating: 0 },
            { text: "D", rating: null },
          ],
          human_completion: null,
          chosen_completion: 0,
        },
        {
          completions: [{ text: "E", rating: -1 }, { text: "F", rating: 1 }],
          human_completion: { text: "H1", rating: null },
          chosen_completion: null,
        },
        {
          completions: [{ text: "G", rating: 1 }],
          human_completion: null,
          chosen_completion: null,
        },
        {
          completions: [{ text: "X", rating: 1 }],
          human_completion: null,
          chosen_completion: 0,
        },
      ],
    },
  };
}

/** The fields the label rules decide. */
function core(s: RewardSample) {
  return {
    previous: s.previous,
    previousLabels: s.previousLabels,
    current: s.current,
    label: s.label,
    kind: s.kind,
  };
}

Deno.test("prm800kSamples() D_PRM: +1 -> 1, -1 -> 0, 0 and null dropped, context = chosen steps", () => {
  const r = parsePrm800kRecord(handRecord(), "hand");
  const got = prm800kSamples(r, { kind: "prm" }).map(core);
  const p = (previous: string[], current: string, label: number) => ({
    previous,
    previousLabels: previous.map(() => 1),
    current,
    label,
    kind: "prm",
  });
  assert.deepEqual(got, [
    p([], "A", 1),
    p([], "B", 0),
    // step 1 has no chosen completion: the human completion "H1" becomes the chosen step
    p(["A"], "E", 0),
    p(["A"], "F", 1),
    // step 2 has neither: its samples are given, then the walk stops ("X" is never reached)
    p(["A", "H1"], "G", 1),
  ]);
});

Deno.test("prm800kSamples() D_HRM adds merged samples: previous chosen step + \\n\\n + candidate", () => {
  const r = parsePrm800kRecord(handRecord(), "hand");
  const got = prm800kSamples(r, { kind: "hrm", source: "s", problemId: "7" });
  assert.deepEqual(got.map(core), [
    { previous: [], previousLabels: [], current: "A", label: 1, kind: "prm" },
    { previous: [], previousLabels: [], current: "B", label: 0, kind: "prm" },
    { previous: ["A"], previousLabels: [1], current: "E", label: 0, kind: "prm" },
    { previous: [], previousLabels: [], current: "A\n\nE", label: 0, kind: "hrm-merged" },
    { previous: ["A"], previousLabels: [1], current: "F", label: 1, kind: "prm" },
    // "a step, then a step that is right" keeps the candidate's label
    { previous: [], previousLabels: [], current: "A\n\nF", label: 1, kind: "hrm-merged" },
    { previous: ["A", "H1"], previousLabels: [1, 1], current: "G", label: 1, kind: "prm" },
    {
      previous: ["A"],
      previousLabels: [1],
      current: "H1\n\nG",
      label: 1,
      kind: "hrm-merged",
    },
  ]);
  assert.ok(got.every((s) => s.question === "Q?" && s.source === "s" && s.problemId === "7"));
});

Deno.test("prm800kSamples() skips give_up and bad_problem records whole", () => {
  for (const finish of ["give_up", "bad_problem"]) {
    const r = parsePrm800kRecord(handRecord(finish), "hand");
    assert.deepEqual(prm800kSamples(r, { kind: "hrm" }), []);
  }
  const found = parsePrm800kRecord(handRecord("found_error"), "hand");
  assert.equal(prm800kSamples(found, { kind: "prm" }).length, 5);
});

Deno.test("prm800kSamples() labels a chosen step rated -1 as 0 in previousLabels", () => {
  const rec = handRecord();
  rec.label.steps[0].completions[1].rating = -1;
  rec.label.steps[0].chosen_completion = 1; // "B", rated -1, chosen anyway
  const got = prm800kSamples(parsePrm800kRecord(rec, "hand"), { kind: "prm" });
  assert.deepEqual(got[2].previous, ["B"]);
  assert.deepEqual(got[2].previousLabels, [0]);
});

Deno.test("parsePrm800kRecord() names the bad field", () => {
  assert.throws(
    () =>
      parsePrm800kRecord(
        { question: { problem: 1 }, label: { steps: [], finish_reason: "x" } },
        "f:3",
      ),
    /^TypeError: f:3: not a PRM800K record: field 'question.problem'/,
  );
  const rec = handRecord();
  rec.label.steps[0].chosen_completion = 9;
  assert.throws(
    () => parsePrm800kRecord(rec, "f:4"),
    /f:4: field 'label.steps.0.chosen_completion' must index one of the step's 4 completions: got 9/,
  );
});

Deno.test("readPrm800k() skips a malformed line with file:line, or throws under strict", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/bad.jsonl`;
    const good = JSON.stringify(handRecord());
    await Deno.writeTextFile(path, `${good}\n{not json\n\n${JSON.stringify({ a: 1 })}\n${good}\n`);
    const errors: string[] = [];
    const got: RewardSample[] = [];
    for await (const s of readPrm800k(path, { onError: (e) => errors.push(e.message) })) {
      got.push(s);
    }
    assert.equal(got.length, 10);
    assert.deepEqual(got.map((s) => s.problemId), [...Array(5).fill("1"), ...Array(5).fill("5")]);
    assert.equal(got[0].source, "prm800k:bad.jsonl");
    assert.equal(errors.length, 2);
    assert.match(errors[0], new RegExp(`^${path}:2: not JSON`));
    assert.match(errors[1], new RegExp(`^${path}:4: not a PRM800K record: field 'question'`));
    await assert.rejects(async () => {
      for await (const _ of readPrm800k(path, { strict: true })) { /* drain */ }
    }, new RegExp(`${path}:2: not JSON`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Totals on the real phase1_test.jsonl (106 records: 90 solution, 16 give_up). They were
// computed once by an independent Python script over the same rules, and checked by hand on
// line 4 ("What is sqrt(53) in simplest radical form?"): step 0 has one completion rated +1
// (chosen), step 1 one rated +1 (chosen), step 2 six completions, one rated +1 (chosen) and
// five rated 0 (dropped). So D_PRM gets 3 samples (all label 1) and the merged set 2 (steps 1
// and 2 merged with the chosen step before them; step 0 has no previous step).
Deno.test("readPrm800k() on phase1_test.jsonl: stable totals, give_up records give nothing", async () => {
  const perLine = new Map<number, { samples: number; skipped?: string }>();
  const prm: RewardSample[] = [];
  for await (
    const s of readPrm800k(PHASE1, { kind: "prm", onRecord: (r) => perLine.set(r.line, r) })
  ) prm.push(s);
  assert.equal(perLine.size, 106);
  const giveUps = [...perLine].filter(([, r]) => r.skipped === "give_up");
  assert.equal(giveUps.length, 16);
  assert.ok(giveUps.every(([, r]) => r.samples === 0));
  const giveUpLines = new Set(giveUps.map(([line]) => String(line)));
  assert.ok(prm.every((s) => !giveUpLines.has(s.problemId!)));
  assert.equal(prm.length, 3171);
  assert.equal(prm.filter((s) => s.label === 1).length, 1861);
  assert.equal(prm.filter((s) => s.label === 0).length, 1310);
  const line4 = prm.filter((s) => s.problemId === "4");
  assert.deepEqual(line4.map((s) => [s.previous.length, s.label]), [[0, 1], [1, 1], [2, 1]]);

  const hrm: RewardSample[] = [];
  for await (const s of readPrm800k(PHASE1, { kind: "hrm" })) hrm.push(s);
  const merged = hrm.filter((s) => s.kind === "hrm-merged");
  assert.equal(hrm.length, 3171 + 3039);
  assert.equal(merged.length, 3039);
  assert.equal(merged.filter((s) => s.label === 1).length, 1751);
  assert.equal(merged.filter((s) => s.label === 0).length, 1288);
  assert.equal(hrm.filter((s) => s.problemId === "4" && s.kind === "hrm-merged").length, 2);
  assert.ok(hrm.every((s) => !giveUpLines.has(s.problemId!)));
});
