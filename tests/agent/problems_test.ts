import assert from "node:assert/strict";
import { join } from "node:path";
import {
  detectFormat,
  diagnoseProblemFile,
  loadProblems,
  parseProblemsText,
  type Problem,
  ProblemError,
  readProblems,
} from "../../agent/mod.ts";
import { sharedDataPath } from "../_helpers.ts";

async function collect(gen: AsyncIterable<Problem>): Promise<Problem[]> {
  const out: Problem[] = [];
  for await (const p of gen) out.push(p);
  return out;
}

async function withTempFile(
  file: { name: string; text: string },
  f: (path: string) => Promise<void>,
): Promise<void> {
  const { name, text } = file;
  const dir = await Deno.makeTempDir({ prefix: "arborist-problems-" });
  try {
    const path = join(dir, name);
    await Deno.writeTextFile(path, text);
    await f(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("readProblems reads all 1319 GSM8K test records with '#### N' golds", async () => {
  const errors: ProblemError[] = [];
  const problems = await collect(
    readProblems(sharedDataPath("gsm8k/test.jsonl"), { onError: (e) => errors.push(e) }),
  );
  assert.equal(problems.length, 1319);
  assert.deepEqual(errors, []);
  const first = problems[0];
  assert.equal(first.source, "gsm8k");
  assert.equal(first.id, "0");
  assert.equal(first.index, 0);
  assert.equal(first.gold, "18");
  assert.match(first.question, /^Janet’s ducks lay 16 eggs/);
  assert.equal(problems[2].gold, "70000");
  assert.equal(problems[1318].id, "1318");
  assert.ok(problems.every((p) => p.gold !== undefined && !p.gold.includes(",")));
});

Deno.test("readProblems reads ProcessBench's 400 records, 207 with a wrong step", async () => {
  const { problems, errors } = await loadProblems(sharedDataPath("processbench/gsm8k.json"));
  assert.equal(problems.length, 400);
  assert.equal(errors.length, 0);
  const withError = problems.filter((p) => (p.meta?.label as number) >= 0);
  assert.equal(withError.length, 207);
  const p = problems[0];
  assert.equal(p.id, "gsm8k-0");
  assert.equal(p.source, "processbench");
  assert.equal(p.steps?.length, 4);
  assert.deepEqual(p.meta, {
    label: 1,
    final_answer_correct: false,
    generator: "Qwen2-7B-Instruct",
  });
});

Deno.test("readProblems reads the 106 PRM800K phase-1 test records, 16 given up", async () => {
  const { problems, errors } = await loadProblems(sharedDataPath("prm800k/phase1_test.jsonl"));
  assert.equal(problems.length, 106);
  assert.equal(errors.length, 0);
  assert.equal(problems.filter((p) => p.meta?.finish_reason === "give_up").length, 16);
  const p = problems[0];
  assert.equal(p.source, "prm800k");
  assert.equal(p.gold, "29");
  assert.match(p.question, /^Three pencils and a jumbo eraser/);
  assert.equal(p.steps?.length, 6);
  assert.equal(p.steps?.[1], "We have $3p+e=1.24$ and $5p+e=1.82$."); // the human completion
  assert.match(p.steps?.[5] ?? "", /# Answer\n\n29$/);
});

Deno.test("readProblems reads a single pretty-printed PRM800K record", async () => {
  const path = sharedDataPath("prm800k/examples/phase2_test_example.json");
  const problems = await collect(readProblems(path, { format: "prm800k" }));
  assert.equal(problems.length, 1);
  assert.equal(problems[0].gold, "28800");
  assert.match(problems[0].solution ?? "", /\\boxed\{28800\}/);
});

Deno.test("readProblems stops after 'limit' problems", async () => {
  const problems = await collect(readProblems(sharedDataPath("gsm8k/test.jsonl"), { limit: 5 }));
  assert.deepEqual(problems.map((p) => p.id), ["0", "1", "2", "3", "4"]);
  const none = await collect(readProblems(sharedDataPath("gsm8k/test.jsonl"), { limit: 0 }));
  assert.equal(none.length, 0);
});

Deno.test("MATH records take 'answer' as gold, else the last nested \\boxed{}", () => {
  const text = [
    JSON.stringify({
      problem: "Compute $\\frac{3}{4}$.",
      solution: "It is $\\boxed{\\frac{3}{4}}$.",
      unique_id: "test/algebra/1.json",
      level: 2,
      subject: "Algebra",
    }),
    JSON.stringify({
      problem: "p",
      solution: "first \\boxed{1}, then \\boxed{\\frac{1}{\\sqrt{2}}}",
    }),
    JSON.stringify({ problem: "p", solution: "\\boxed{9}", answer: "10" }),
  ].join("\n");
  const { problems, errors } = parseProblemsText(text, { name: "math.jsonl" });
  assert.deepEqual(errors, []);
  assert.equal(problems[0].id, "test/algebra/1.json");
  assert.equal(problems[0].gold, "\\frac{3}{4}");
  assert.deepEqual(problems[0].meta, { level: 2, subject: "Algebra" });
  assert.equal(problems[1].id, "1");
  assert.equal(problems[1].gold, "\\frac{1}{\\sqrt{2}}");
  assert.equal(problems[2].gold, "10");
  assert.ok(problems.every((p) => p.source === "math"));
});

Deno.test("detectFormat tells the four formats apart by their fields", () => {
  assert.equal(detectFormat({ question: "q", answer: "#### 1" }), "gsm8k");
  assert.equal(detectFormat({ problem: "p", solution: "s" }), "math");
  assert.equal(detectFormat({ id: "x", problem: "p", steps: [], label: -1 }), "processbench");
  assert.equal(
    detectFormat({ question: { problem: "p", ground_truth_answer: "1" }, label: { steps: [] } }),
    "prm800k",
  );
  assert.equal(detectFormat({ text: "hello" }), undefined);
  assert.equal(detectFormat([1, 2]), undefined);
  assert.equal(detectFormat(null), undefined);
});

const GOOD = (q: string, a: number) => JSON.stringify({ question: q, answer: `so\n#### ${a}` });

Deno.test("a malformed line is reported with its file and line, and the rest is read", async () => {
  const lines = [
    GOOD("one", 1),
    GOOD("two", 2),
    JSON.stringify({ question: 7, answer: "#### 3" }),
    GOOD("four", 4),
    "{not json",
    "",
    JSON.stringify({ question: "six" }),
    JSON.stringify({ question: "seven", answer: "no marker" }),
    GOOD("eight", 8),
  ];
  await withTempFile({ name: "problems.jsonl", text: lines.join("\n") + "\n" }, async (path) => {
    const { problems, errors } = await loadProblems(path);
    assert.deepEqual(problems.map((p) => p.gold), ["1", "2", "4", "8"]);
    assert.deepEqual(problems.map((p) => p.id), ["0", "1", "3", "8"]);
    assert.deepEqual(errors.map((e) => e.line), [3, 5, 7, 8]);
    assert.ok(errors.every((e) => e instanceof ProblemError && e.path === path));
    assert.match(
      errors[0].message,
      /problems\.jsonl:3: field 'question' must be a string, got number/,
    );
    assert.match(errors[1].message, /problems\.jsonl:5: invalid JSON/);
    assert.match(errors[2].message, /:7: missing field 'answer' \(expected a string\)/);
    assert.match(
      errors[3].message,
      /:8: field 'answer' must end with '#### <answer>', got "no marker"/,
    );
  });
});

Deno.test("strict mode throws the first malformed record's error", async () => {
  const text = [GOOD("one", 1), GOOD("two", 2), '{"question": "three", "answer": 3}'].join("\n");
  await withTempFile({ name: "problems.jsonl", text }, async (path) => {
    await assert.rejects(
      () => collect(readProblems(path, { strict: true })),
      (e: unknown) =>
        e instanceof ProblemError && e.line === 3 &&
        /problems\.jsonl:3: field 'answer' must be a string, got number/.test(e.message),
    );
  });
  assert.throws(
    () => parseProblemsText(text, { name: "upload.jsonl", strict: true }),
    /upload\.jsonl:3: field 'answer'/,
  );
});

Deno.test("errors in a JSON array name the line where the bad element starts", () => {
  const text = `[
  {"id": "a", "problem": "p", "steps": ["s"], "label": -1},
  {"id": "b", "problem": "p",
   "steps": "not a list", "label": 0},
  {"id": "c", "problem": "p", "steps": ["s"], "label": 0.5}
]`;
  const { problems, errors } = parseProblemsText(text, { name: "pb.json" });
  assert.deepEqual(problems.map((p) => p.id), ["a"]);
  assert.deepEqual(errors.map((e) => e.message), [
    "pb.json:3: field 'steps' must be an array, got string",
    "pb.json:5: field 'label' must be an integer, got number",
  ]);
});

Deno.test("a forced format reports records of another format", () => {
  const text = JSON.stringify({ problem: "p", solution: "\\boxed{1}" });
  const { problems, errors } = parseProblemsText(text, { format: "gsm8k", name: "x.jsonl" });
  assert.equal(problems.length, 0);
  assert.equal(errors[0].message, "x.jsonl:1: missing field 'question' (expected a string)");
});

Deno.test("a record of no known format is reported, listing the fields it had", () => {
  const { errors } = parseProblemsText('{"text": "hi"}\n[1]', { name: "odd.jsonl" });
  assert.match(errors[0].message, /^odd\.jsonl:1: cannot tell the format from fields \["text"\]/);
});

Deno.test("readProblems rejects invalid options up front", () => {
  assert.throws(
    () => parseProblemsText("", { format: "csv" as "gsm8k" }),
    /Cannot read problems as option 'format' is invalid/,
  );
  assert.throws(() => parseProblemsText("", { limit: -1 }), /option 'limit'/);
});

Deno.test("a repeated problem id is an error naming both lines, strict or not", async () => {
  const math = [
    JSON.stringify({ problem: "1+1?", answer: "2", unique_id: "dup" }),
    JSON.stringify({ problem: "4+4?", answer: "8", unique_id: "z" }),
    JSON.stringify({ problem: "2+3?", answer: "5", unique_id: "dup" }),
  ].join("\n");
  await withTempFile({ name: "math.jsonl", text: math }, async (path) => {
    for (const strict of [false, true]) {
      await assert.rejects(
        () => loadProblems(path, { strict }),
        (e: unknown) =>
          e instanceof ProblemError && e.line === 3 &&
          /math\.jsonl:3: problem id 'dup' repeats the id of the record on line 1;.*unique_id/
            .test(e.message),
      );
    }
    // limit stops before the repeat: nothing to report
    assert.equal((await loadProblems(path, { limit: 2 })).problems.length, 2);
  });
  // a MATH record without unique_id takes its position as id, which another may spell out
  const mixed = [
    JSON.stringify({ problem: "a", answer: "1", unique_id: "1" }),
    JSON.stringify({ problem: "b", answer: "2" }),
  ].join("\n");
  assert.throws(
    () => parseProblemsText(mixed, { name: "m.jsonl" }),
    /m\.jsonl:2: problem id '1' repeats the id of the record on line 1/,
  );
  const pb = `[
  {"id": "a", "problem": "p", "steps": ["s"], "label": -1},
  {"id": "a", "problem": "q", "steps": ["t"], "label": 0}
]`;
  assert.throws(
    () => parseProblemsText(pb, { name: "pb.json" }),
    /pb\.json:3: problem id 'a' repeats the id of the record on line 2; .*field 'id'/,
  );
  // GSM8K and PRM800K ids are positions: identical records are two problems
  const { problems } = parseProblemsText([GOOD("same", 1), GOOD("same", 1)].join("\n"));
  assert.deepEqual(problems.map((p) => p.id), ["0", "1"]);
});

Deno.test("diagnoseProblemFile tells a wrong format and a cut-short JSON document", async () => {
  const pb = sharedDataPath("processbench/gsm8k.json");
  assert.deepEqual(await diagnoseProblemFile(pb, "gsm8k"), {
    cause: "format",
    format: "gsm8k",
    detected: "processbench",
  });
  assert.equal(await diagnoseProblemFile(pb, "processbench"), undefined);
  const whole = await Deno.readTextFile(
    sharedDataPath("prm800k/examples/phase1_test_example.json"),
  );
  const cut = whole.split("\n").slice(0, 20).join("\n");
  await withTempFile({ name: "cut.json", text: cut }, async (path) => {
    const { problems, errors } = await loadProblems(path);
    assert.equal(problems.length, 0);
    assert.ok(errors.length > 5);
    const d = await diagnoseProblemFile(path);
    assert.equal(d?.cause, "document");
    assert.ok(d?.cause === "document" && d.line >= 19 && /^invalid JSON/.test(d.error));
  });
  // JSON Lines records that are all bad are no document
  const bad = [JSON.stringify({ question: 1, answer: "#### 1" }), '{"question": 2}'].join("\n");
  await withTempFile({ name: "bad.jsonl", text: bad }, async (path) => {
    assert.equal(await diagnoseProblemFile(path), undefined);
  });
});

Deno.test("a compressed or UTF-16 problems file is refused, naming what it is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arborist-problems-" });
  try {
    const line = new TextEncoder().encode('{"question": "1+1?", "answer": "#### 2"}\n');
    const gz = await new Response(
      new Blob([line]).stream().pipeThrough(new CompressionStream("gzip")),
    ).bytes();
    await Deno.writeFile(join(dir, "p.jsonl.gz"), gz);
    await assert.rejects(
      loadProblems(join(dir, "p.jsonl.gz")),
      /p\.jsonl\.gz: it is gzip-compressed: decompress it first/,
    );
    const utf16 = new Uint8Array([0xff, 0xfe, ...[...'{"q"'].flatMap((c) => [c.charCodeAt(0), 0])]);
    await Deno.writeFile(join(dir, "p16.jsonl"), utf16);
    await assert.rejects(loadProblems(join(dir, "p16.jsonl")), /it is UTF-16 text: convert it/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--format math refuses ProcessBench records and MATH records without a gold answer", async () => {
  const { problems, errors } = await loadProblems(sharedDataPath("processbench/gsm8k.json"), {
    format: "math",
    limit: 3,
  });
  assert.equal(problems.length, 0);
  assert.match(errors[0].message, /as ProcessBench records do.*use --format processbench/);
  const text = [
    JSON.stringify({ problem: "2+2?", solution: "It is 4.", unique_id: "a" }),
    JSON.stringify({ problem: "2+3?", solution: "So \\boxed{5}.", unique_id: "b" }),
    JSON.stringify({ problem: "open?", unique_id: "c" }), // no solution at all: ungraded
  ].join("\n");
  const set = parseProblemsText(text, { format: "math" });
  assert.deepEqual(set.problems.map((p) => [p.id, p.gold]), [["b", "5"], ["c", undefined]]);
  assert.match(
    set.errors[0].message,
    /no gold answer: no field 'answer', and field 'solution' has no \\boxed/,
  );
});
