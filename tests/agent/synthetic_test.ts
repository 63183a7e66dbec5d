import assert from "node:assert/strict";
import {
  generateProblems,
  gradeSolution,
  parseSyntheticSpec,
  writeSolution,
} from "../../agent/mod.ts";
import { Random } from "../../inference/mod.ts";

Deno.test("synthetic problems: same seed, same problems; a prefix of a larger set is the smaller set", () => {
  const a = generateProblems(50, { seed: 3 });
  assert.deepEqual(generateProblems(50, { seed: 3 }), a);
  assert.deepEqual(generateProblems(20, { seed: 3 }), a.slice(0, 20));
  assert.notDeepEqual(
    generateProblems(50, { seed: 4 }).map((p) => p.question),
    a.map((p) => p.question),
  );
});

Deno.test("every synthetic gold solution is exact, integer, one step per paragraph, and grades correct", () => {
  for (const p of generateProblems(2000, { seed: 1 })) {
    const n = Number(p.gold);
    assert.ok(Number.isInteger(n) && n >= 0, `${p.id}: ${p.gold}`);
    assert.equal(p.steps!.length, p.ops.length + 1);
    assert.equal(p.steps!.at(-1), `The answer is ${p.gold}`);
    assert.ok(p.steps!.every((s) => !s.includes("\n\n")));
    assert.ok(gradeSolution(p.solution!, p.gold!, { kind: "number" }).correct);
  }
});

Deno.test("synthetic difficulty: 2 to 7 steps, numbers grow with steps", () => {
  const ps = generateProblems(3000, { seed: 2 });
  const counts = new Map<number, number>();
  for (const p of ps) counts.set(p.ops.length, (counts.get(p.ops.length) ?? 0) + 1);
  assert.deepEqual([...counts.keys()].sort(), [2, 3, 4, 5, 6, 7]);
  const meanStart = (k: number) => {
    const sel = ps.filter((p) => p.ops.length === k);
    return sel.reduce((s, p) => s + p.start, 0) / sel.length;
  };
  assert.ok(meanStart(7) > meanStart(2));
});

Deno.test("synthetic values stay within maxValue (99 by default); a larger cap gives larger numbers", () => {
  const values = (ps: ReturnType<typeof generateProblems>) =>
    ps.flatMap((p) => {
      const vs = [p.start];
      for (const o of p.ops) {
        const v = vs.at(-1)!;
        vs.push(
          o.op === "add" ? v + o.x : o.op === "sub" ? v - o.x : o.op === "mul" ? v * o.x : v / o.x,
        );
      }
      return vs;
    });
  const small = values(generateProblems(2000, { seed: 9 }));
  assert.ok(small.every((v) => Number.isInteger(v) && v >= 0 && v <= 99), "all within 0..99");
  assert.ok(small.some((v) => v >= 90), "the cap is reached");
  const big = values(generateProblems(2000, { seed: 9, maxValue: 999 }));
  assert.ok(big.every((v) => v <= 999) && big.some((v) => v > 500));
  assert.throws(() => generateProblems(1, { maxValue: 5 }), /maxValue.*>= 20.*5/);
});

Deno.test("written mistakes make wrong answers unless corrected in the next step", () => {
  const ps = generateProblems(500, { seed: 5 });
  const rng = new Random(1);
  let wrong = 0, corrected = 0;
  for (const p of ps) {
    const w = writeSolution(p, { mistakeRate: 0.3, correctionRate: 0.5, rng });
    assert.equal(
      w.correct,
      gradeSolution(w.steps.join("\n\n"), p.gold!, { kind: "number" }).correct,
    );
    if (!w.correct) wrong++;
    if (w.corrected) {
      corrected++;
      const i = w.steps.findIndex((s) => s.startsWith("Wait, "));
      const num = "-?\\d+(?:\\.\\d+)?";
      assert.match(w.steps[i], new RegExp(`^Wait, ${num} [-+*/] ${num} = ${num}, not ${num}\\.$`));
    }
  }
  assert.ok(wrong > 100 && corrected > 50, `${wrong} wrong, ${corrected} corrected`);
  assert.ok(writeSolution(ps[0]).correct, "no mistakes by default");
});

Deno.test("parseSyntheticSpec reads synthetic:N and synthetic:N:MIN-MAX, rejects the rest", () => {
  assert.deepEqual(parseSyntheticSpec("synthetic:100"), {
    count: 100,
    minSteps: undefined,
    maxSteps: undefined,
  });
  assert.deepEqual(parseSyntheticSpec("synthetic:5:2-4"), { count: 5, minSteps: 2, maxSteps: 4 });
  assert.equal(parseSyntheticSpec("data/x.jsonl"), undefined);
  assert.throws(() => parseSyntheticSpec("synthetic:abc"), /synthetic:N/);
});

Deno.test("uncorrected mistakes may drive values negative and writing still terminates", () => {
  const rng = new Random(2);
  for (const p of generateProblems(300, { seed: 9 })) {
    const w = writeSolution(p, { mistakeRate: 1, correctionRate: 0, rng });
    assert.equal(w.steps.length, p.ops.length + 1);
  }
});
