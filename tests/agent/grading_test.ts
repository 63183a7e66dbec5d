import assert from "node:assert/strict";
import {
  answerKey,
  extractAnswer,
  gradeKindFor,
  gradeSolution,
  isEquivalent,
  loadProblems,
  normalizeNumber,
} from "../../agent/mod.ts";
import { sharedDataPath } from "../_helpers.ts";

Deno.test("every GSM8K test solution grades correct against its own gold and wrong against another's", async () => {
  const { problems } = await loadProblems(sharedDataPath("gsm8k/test.jsonl"));
  assert.equal(problems.length, 1319);
  let correct = 0;
  let wrongDetected = 0;
  for (let i = 0; i < problems.length; i++) {
    const p = problems[i];
    const own = gradeSolution(p.solution!, p.gold!, { kind: gradeKindFor(p) });
    if (own.correct && own.predicted === p.gold) correct++;
    const value = normalizeNumber(p.gold!);
    let j = (i + 1) % problems.length;
    while (normalizeNumber(problems[j].gold!) === value) j = (j + 1) % problems.length;
    if (!gradeSolution(p.solution!, problems[j].gold!, { kind: "number" }).correct) {
      wrongDetected++;
    }
  }
  assert.equal(correct, 1319);
  assert.equal(wrongDetected, 1319);
});

Deno.test("ProcessBench GSM8K verdicts agree with the grader on all but 4 known records", async () => {
  const gsm8k = (await loadProblems(sharedDataPath("gsm8k/test.jsonl"))).problems;
  const goldOf = new Map(gsm8k.map((p) => [p.question.trim(), p.gold!]));
  const { problems } = await loadProblems(sharedDataPath("processbench/gsm8k.json"));
  const disagree: string[] = [];
  for (const p of problems) {
    const gold = goldOf.get(p.question.trim());
    assert.ok(gold !== undefined, `${p.id} is a GSM8K test question`);
    const g = gradeSolution(p.steps!.join("\n\n"), gold, { kind: gradeKindFor(p) });
    if (g.correct !== p.meta?.final_answer_correct) disagree.push(p.id);
  }
  // 70 and 74 box the gold value yet are labelled wrong; 238 states its answer mid-sentence
  // and ends on another number; 319 boxes "4 blue shoe boxes and 6 red shoe boxes" (gold 10).
  assert.ok(disagree.length <= 4, disagree.join(", "));
  for (const id of disagree) {
    assert.ok(["gsm8k-70", "gsm8k-74", "gsm8k-238", "gsm8k-319"].includes(id));
  }
});

Deno.test("PRM800K final human-rated answers grade against the ground truth as expected", async () => {
  const { problems } = await loadProblems(sharedDataPath("prm800k/phase1_test.jsonl"));
  const solved = problems.filter((p) => p.meta?.finish_reason === "solution");
  assert.equal(solved.length, 90);
  const wrong: string[] = [];
  for (const p of solved) {
    assert.ok(isEquivalent(p.gold!, p.gold!, { kind: "math" }), `${p.gold} equals itself`);
    const g = gradeSolution(p.steps!.at(-1)!, p.gold!, { kind: gradeKindFor(p) });
    if (!g.correct) wrong.push(`${g.predicted} vs ${p.gold}`);
  }
  assert.deepEqual(wrong, ["585000 vs 58,500"]); // the labeller's answer really is off by 10x
});

Deno.test("extractAnswer takes the last complete \\boxed{} with nested braces", () => {
  assert.equal(extractAnswer("So $x = \\boxed{\\frac{3}{4}}$."), "\\frac{3}{4}");
  assert.equal(
    extractAnswer("\\boxed{1} then \\boxed{\\sqrt{\\frac{1}{2}}}"),
    "\\sqrt{\\frac{1}{2}}",
  );
  assert.equal(extractAnswer("\\boxed{7} and a cut-off \\boxed{\\frac{1}{"), "7");
  assert.equal(extractAnswer("\\boxed 5 is it"), "5");
  assert.equal(extractAnswer("\\fbox{12}"), "12");
  assert.equal(extractAnswer("$\\boxed{\\text{(C)}}$", { kind: "math" }), "\\text{(C)}");
  assert.equal(extractAnswer("\\boxed{\\$1,000}", { kind: "number" }), "1000");
});

Deno.test("extractAnswer falls back to answer phrases, then to the last number", () => {
  assert.equal(extractAnswer("The answer is $\\frac{1}{2}$."), "\\frac{1}{2}");
  assert.equal(extractAnswer("so the final answer is: **42**.", { kind: "number" }), "42");
  assert.equal(extractAnswer("The answer is 5. Wait, the answer is 6."), "6");
  assert.equal(extractAnswer("He pays $18.\n#### 18", { kind: "number" }), "18");
  assert.equal(extractAnswer("#### 1,234", { kind: "number" }), "1234");
  assert.equal(
    extractAnswer("Indeed.\n\n# Answer\n\n\\frac{4}{3}", { kind: "math" }),
    "\\frac{4}{3}",
  );
  assert.equal(extractAnswer("The answer is 18 dollars", { kind: "number" }), "18");
  assert.equal(extractAnswer("3 apples plus 4,000 pears", { kind: "number" }), "4000");
  assert.equal(extractAnswer("a loss of -7 today", { kind: "number" }), "-7");
  assert.equal(extractAnswer("pages 10-15", { kind: "number" }), "15");
  assert.equal(extractAnswer("3 apples", { kind: "math" }), undefined);
  assert.equal(extractAnswer("no digits here"), undefined);
  assert.equal(extractAnswer(""), undefined);
});

Deno.test("normalizeNumber reads GSM8K-style numbers", () => {
  const cases: [string, number | undefined][] = [
    ["1,000", 1000],
    ["$1,000.00", 1000],
    ["18 dollars", 18],
    ["5 cm", 5],
    ["5cm", 5],
    ["18.0", 18],
    [".5", 0.5],
    ["50%", 50],
    ["-3", -3],
    ["−3", -3],
    ["3/4", 0.75],
    ["\\frac{3}{4}", 0.75],
    ["x = 5", 5],
    ["**18**", 18],
    ["\\$18", 18],
    ["2x", undefined],
    ["3 + 4", undefined],
    ["eighteen", undefined],
    ["", undefined],
  ];
  for (const [text, want] of cases) assert.equal(normalizeNumber(text), want, text);
});

Deno.test("isEquivalent compares numbers with a relative tolerance of 1e-6", () => {
  assert.ok(isEquivalent("0.75", "3/4", { kind: "number" }));
  assert.ok(isEquivalent("1000000.5", "1,000,000.5000004", { kind: "number" }));
  assert.ok(!isEquivalent("1000000", "1000002", { kind: "number" }));
  assert.ok(!isEquivalent("18", "-18", { kind: "number" }));
  assert.ok(isEquivalent("$18.00", "18", { kind: "number" }));
});

/** [predicted, gold, equivalent?]: one row per construct, positives and negatives. */
const LATEX_CASES: [string, string, boolean][] = [
  // fractions
  ["\\frac{1}{2}", "0.5", true],
  ["\\dfrac12", "\\frac{1}{2}", true],
  ["\\tfrac{3}{4}", "\\frac34", true],
  ["3/4", "0.75", true],
  ["\\frac{1}{2}", "\\frac{1}{3}", false],
  ["0.333", "\\frac13", false],
  ["1\\frac{1}{2}", "\\frac32", true],
  // roots and pi
  ["2\\sqrt{2}", "\\sqrt{8}", true],
  ["\\sqrt x", "\\sqrt{x}", true],
  ["\\sqrt{3}", "\\sqrt{2}", false],
  ["\\frac{\\pi}{2}", "\\pi/2", true],
  ["\\pi", "3.14", false],
  ["\\frac{1+\\sqrt5}{2}", "\\frac{\\sqrt{5}+1}{2}", true],
  ["\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", true],
  // expressions in variables
  ["x^2+2x+1", "(x+1)^2", true],
  ["x^2+2x+1", "(x-1)^2", false],
  ["y = 2x+1", "y=1+2x", true],
  ["y = 2x+1", "y=2x-1", false],
  // degrees, percent, units, money, thousands
  ["30^\\circ", "30", true],
  ["30^{\\circ}", "30", true],
  ["45^\\circ", "30", false],
  ["50\\%", "50", true],
  ["5\\text{ cm}", "5", true],
  ["12 \\text{ inches}^2", "12", true],
  ["\\$18", "18", true],
  ["10{,}000", "10000", true],
  ["10,\\!080", "10080", true],
  ["58,500", "585000", false],
  // boxed, \left \right, assignments, bases
  ["\\boxed{\\frac{3}{4}}", "0.75", true],
  ["\\left( 1, 2 \\right)", "(1,2)", true],
  ["x=5", "5", true],
  ["5", "x = 5", true],
  ["x=6", "5", false],
  ["4210_{5}", "4210", true],
  // tuples and intervals
  ["(1,2)", "(2,1)", false],
  ["(1, \\frac{1}{2})", "(1, 0.5)", true],
  ["(1,2)", "(1,2,3)", false],
  ["[0, 1)", "[0,1]", false],
  ["[0, 1)", "\\left[0,1\\right)", true],
  ["(-\\infty, 0]", "(-\\infty, 0)", false],
  ["(-\\infty, 0) \\cup (1, \\infty)", "(1,\\infty)\\cup(-\\infty,0)", true],
  ["(2,\\infty)", "(2, \\infty)", true],
  // sets, lists, plus-minus, matrices
  ["\\{1,2\\}", "\\{2,1\\}", true],
  ["\\{1,2\\}", "\\{1,3\\}", false],
  ["1, 2, 3", "3,2,1", true],
  ["1,2", "1,3", false],
  ["1 + \\sqrt{19}, 1 - \\sqrt{19}", "1 \\pm \\sqrt{19}", true],
  ["\\dfrac{1}{2\\sqrt{2} + 3}, 2\\sqrt{2} + 3", "3 \\pm 2 \\sqrt{2}", true],
  ["3 + 2\\sqrt{2}", "3 \\pm 2 \\sqrt{2}", false],
  [
    "\\begin{pmatrix} 16/49 \\\\ 48/49 \\end{pmatrix}",
    "\\begin{pmatrix} \\frac{16}{49} \\\\ \\frac{48}{49} \\end{pmatrix}",
    true,
  ],
  ["\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 2 & 1 \\end{pmatrix}", false],
  // words
  ["\\text{Monday}", "monday", true],
  ["Tuesday", "\\text{Monday}", false],
  ["\\text{(C)}", "C", true],
  ["(c)", "\\text{(C)}", true],
  ["\\text{(C)}", "(D)", false],
  // complex numbers and constants
  ["e^{i\\pi}", "-1", true],
  ["\\sqrt{-4}", "2i", true],
  ["\\infty", "\\infty", true],
  ["\\infty", "-\\infty", false],
  // junk never throws
  ["\\frac{x}{", "1", false],
  ["", "1", false],
  ["}{", "1", false],
];

Deno.test(`isEquivalent decides ${LATEX_CASES.length} LaTeX cases with the CAS`, () => {
  const failures = LATEX_CASES.filter(([a, b, want]) =>
    isEquivalent(a, b, { kind: "math" }) !== want
  );
  assert.deepEqual(failures, []);
  const swapped = LATEX_CASES.filter(([a, b, want]) =>
    isEquivalent(b, a, { kind: "math" }) !== want
  );
  assert.deepEqual(swapped, [], "equivalence is symmetric");
});

Deno.test("isEquivalent stays fast and false on hostile input", () => {
  const hostile = [
    "10^{10^{10^{10}}}",
    "1000000!",
    "\\sum_{n=1}^{\\infty} \\frac{1}{n}",
    "(x+1)^{200}",
    "(".repeat(300) + ")".repeat(300),
    "x".repeat(5000),
    "\\begin{pmatrix}",
  ];
  for (const h of hostile) {
    const t = performance.now();
    assert.equal(isEquivalent(h, "7", { kind: "math" }), false, h.slice(0, 30));
    // A hang guard, not a speed measurement (benchmarks measure speed): generous enough for a
    // loaded machine, far below what an exponential parse of these inputs would take.
    assert.ok(performance.now() - t < 10_000, `${h.slice(0, 30)} took too long`);
  }
});

Deno.test("gradeSolution returns the extracted answer and the verdict", () => {
  assert.deepEqual(gradeSolution("Thus $\\boxed{\\dfrac{1}{2}}$.", "0.5", { kind: "math" }), {
    predicted: "\\dfrac{1}{2}",
    correct: true,
  });
  assert.deepEqual(gradeSolution("The total is 1,000 dollars.", "1000", { kind: "number" }), {
    predicted: "1000",
    correct: true,
  });
  assert.deepEqual(gradeSolution("I do not know.", "3", { kind: "math" }), {
    predicted: undefined,
    correct: false,
  });
  assert.throws(
    () => gradeSolution("1", "1", { kind: "latex" as "math" }),
    /'kind' must be one of/,
  );
});

Deno.test("gradeKindFor picks number for GSM8K-like sources and math otherwise", () => {
  assert.equal(gradeKindFor({ source: "gsm8k", id: "0" }), "number");
  assert.equal(gradeKindFor({ source: "synthetic", id: "0" }), "number");
  assert.equal(gradeKindFor({ source: "math", id: "test/x.json" }), "math");
  assert.equal(gradeKindFor({ source: "prm800k", id: "3" }), "math");
  assert.equal(gradeKindFor({ source: "processbench", id: "gsm8k-3" }), "number");
  assert.equal(gradeKindFor({ source: "processbench", id: "math-3" }), "math");
});

Deno.test("answerKey groups equal spellings of an answer", () => {
  assert.equal(answerKey("$1,000", { kind: "number" }), answerKey("1000.0", { kind: "number" }));
  assert.equal(answerKey("\\boxed{\\dfrac{1}{2}}", { kind: "math" }), "\\frac{1}{2}");
});

Deno.test("kind math grades a bare answer (no box, no 'answer is') as the whole text", () => {
  assert.equal(extractAnswer("  29 ", { kind: "math" }), "29");
  assert.equal(extractAnswer("$\\frac{3}{4}$", { kind: "math" }), "$\\frac{3}{4}$");
  assert.equal(extractAnswer("\\text{Monday}", { kind: "math" }), "\\text{Monday}");
  assert.ok(gradeSolution("5", "5", { kind: "math" }).correct);
  assert.ok(gradeSolution("440", "440", { kind: "math" }).correct);
  assert.ok(gradeSolution("x = \\dfrac12", "0.5", { kind: "math" }).correct);
  assert.ok(gradeSolution("(1, 2)", "(1,2)", { kind: "math" }).correct);
  assert.ok(!gradeSolution("6", "5", { kind: "math" }).correct);
  // prose and multi-line solutions without an answer stay unanswered
  assert.equal(extractAnswer("I do not know.", { kind: "math" }), undefined);
  assert.equal(extractAnswer("We add them.\n5", { kind: "math" }), undefined);
  assert.equal(extractAnswer("5".repeat(101), { kind: "math" }), undefined);
  // a box or a phrase still wins over the whole text
  assert.equal(extractAnswer("x \\boxed{5}", { kind: "math" }), "5");
});
