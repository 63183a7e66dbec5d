/**
 * The synthetic reasoning domain of the embedded models: GSM8K-style word problems of 2 to 7
 * arithmetic steps with exact integer answers, generated from a seed. Solutions are written
 * one step per paragraph ("\n\n") and end with "The answer is N".
 *
 * Difficulty grows with the number of steps and the size of the numbers. For training data,
 * {@linkcode writeSolution} can insert natural mistakes (a wrong result) and, sometimes, a
 * correction in the next step ("Wait, ..."), so that search has work to do and self-correction
 * happens as in the paper.
 *
 * @module
 */
import { Random } from "../inference/mod.ts";
import type { Problem } from "./problems.ts";

const NAMES = [
  "Mia",
  "Tom",
  "Ava",
  "Leo",
  "Zoe",
  "Sam",
  "Ivy",
  "Max",
  "Lily",
  "Ben",
  "Nora",
  "Eli",
];
const ITEMS = [
  "apples",
  "marbles",
  "stickers",
  "books",
  "coins",
  "cards",
  "shells",
  "pens",
  "eggs",
  "cookies",
];
const FRIENDS = ["a friend", "her brother", "his sister", "a neighbor", "the teacher", "a cousin"];

/** One arithmetic operation of a problem. */
export interface Operation {
  /** Kind. */
  op: "add" | "sub" | "mul" | "div";
  /** The operand. */
  x: number;
}

/** A generated problem with its operations (the source of truth for solutions). */
export interface SyntheticProblem extends Problem {
  /** Starting quantity. */
  start: number;
  /** The operations in order. */
  ops: Operation[];
  /** Who and what. */
  name: string;
  /** The counted items. */
  item: string;
}

/** Options of {@linkcode generateProblems}. */
export interface SyntheticOptions {
  /** Seed (same seed, same problems). */
  seed?: number;
  /** Fewest operations (default 2). */
  minSteps?: number;
  /** Most operations (default 7). */
  maxSteps?: number;
  /**
   * Largest value any quantity reaches, start and intermediate results included (default 99:
   * two-digit arithmetic, what the bundled tiny policy is trained on; 999 gives harder sets).
   */
  maxValue?: number;
}

function apply(v: number, o: Operation): number {
  switch (o.op) {
    case "add":
      return v + o.x;
    case "sub":
      return v - o.x;
    case "mul":
      return v * o.x;
    case "div":
      return v / o.x;
  }
}

function pickOp(v: number, scale: number, cap: number, rng: Random): Operation {
  for (;;) {
    const r = rng.next();
    if (r < 0.35 && v < cap) return { op: "add", x: 1 + rng.int(Math.min(scale, cap - v)) };
    if (r >= 0.35 && r < 0.65 && v > 1) {
      return { op: "sub", x: 1 + rng.int(Math.min(v - 1, scale)) };
    }
    if (r >= 0.65 && r < 0.83 && v * 2 <= cap) {
      const max = Math.min(4, Math.floor(cap / v));
      return { op: "mul", x: 2 + rng.int(max - 1) };
    }
    const divisors = [2, 3, 4, 5].filter((d) => v % d === 0 && v / d >= 1);
    if (divisors.length && r >= 0.83) return { op: "div", x: divisors[rng.int(divisors.length)] };
  }
}

/**
 * Generate `count` problems. Problem i depends only on (seed, i), so any prefix of a larger
 * set is the smaller set.
 *
 * @param count How many.
 * @param options Seed and step range.
 * @returns The problems, with gold answers and correct solutions.
 */
export function generateProblems(
  count: number,
  options: SyntheticOptions = {},
): SyntheticProblem[] {
  const seed = options.seed ?? 0, lo = options.minSteps ?? 2, hi = options.maxSteps ?? 7;
  const cap = options.maxValue ?? 99;
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(
      `Cannot generate problems as 'count' must be an integer >= 0: current value is ${count}`,
    );
  }
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && 1 <= lo && lo <= hi && hi <= 12)) {
    throw new RangeError(
      `Cannot generate problems as steps must satisfy 1 <= minSteps <= maxSteps <= 12: got ${lo}..${hi}`,
    );
  }
  if (!Number.isInteger(cap) || cap < 20) {
    throw new RangeError(
      `Cannot generate problems as 'maxValue' must be an integer >= 20: current value is ${cap}`,
    );
  }
  return Array.from({ length: count }, (_, i) => oneProblem(i, { seed, lo, hi, cap }));
}

function oneProblem(
  i: number,
  o: { seed: number; lo: number; hi: number; cap: number },
): SyntheticProblem {
  const rng = new Random(o.seed * 1_000_003 + i);
  const steps = o.lo + rng.int(o.hi - o.lo + 1);
  // bigger numbers in longer problems (and in sets with a larger cap)
  const scale = Math.round((5 + 3 * steps) * Math.max(1, o.cap / 99));
  const name = NAMES[rng.int(NAMES.length)], item = ITEMS[rng.int(ITEMS.length)];
  const start = 2 + rng.int(Math.min(scale * 2, o.cap - 1));
  const ops: Operation[] = [];
  let v = start;
  for (let s = 0; s < steps; s++) {
    const op = pickOp(v, scale, o.cap, rng);
    ops.push(op);
    v = apply(v, op);
  }
  const sentences = ops.map((op) => describe(op, { name, item, rng }));
  const question = `${name} has ${start} ${item}. ${
    sentences.join(" ")
  } How many ${item} does ${name} have now?`;
  const p: SyntheticProblem = {
    id: `syn-${o.seed}-${i}`,
    index: i,
    question,
    gold: String(v),
    source: "synthetic",
    start,
    ops,
    name,
    item,
    meta: { steps, difficulty: steps * Math.log10(Math.max(10, v)) },
  };
  p.steps = writeSolution(p).steps;
  p.solution = p.steps.join("\n\n");
  return p;
}

function describe(op: Operation, c: { name: string; item: string; rng: Random }): string {
  switch (op.op) {
    case "add":
      return `${c.name} gets ${op.x} more ${c.item}.`;
    case "sub":
      return `${c.name} gives ${op.x} ${c.item} to ${FRIENDS[c.rng.int(FRIENDS.length)]}.`;
    case "mul":
      return `Then the number of ${c.item} ${c.name} has ${
        ["", "", "doubles", "triples", "quadruples"][op.x]
      }.`;
    case "div":
      return `${c.name} splits the ${c.item} into ${op.x} equal groups and keeps one group.`;
  }
}

const SYMBOL = { add: "+", sub: "-", mul: "*", div: "/" } as const;
const VERB = {
  add: "gets more",
  sub: "gives some away",
  mul: "multiplies them",
  div: "keeps one group",
} as const;

/** Options of {@linkcode writeSolution}. */
export interface SolutionStyle {
  /** Probability that a step's result is wrong (default 0: a correct solution). */
  mistakeRate?: number;
  /** Probability that a wrong step is corrected in the next step (default 0.5). */
  correctionRate?: number;
  /** Randomness for mistakes. */
  rng?: Random;
}

/** A written solution and whether its final answer is right. */
export interface WrittenSolution {
  /** One paragraph per step; the last is "The answer is N". */
  steps: string[];
  /** The stated final answer. */
  answer: number;
  /** Whether it equals the gold answer. */
  correct: boolean;
  /** Whether a mistake was made and then corrected. */
  corrected: boolean;
}

/**
 * Write a step-by-step solution of `p`, optionally with mistakes and corrections.
 *
 * @param p The problem.
 * @param style Mistake and correction rates.
 * @returns The steps and whether the answer is right.
 */
export function writeSolution(p: SyntheticProblem, style: SolutionStyle = {}): WrittenSolution {
  const rng = style.rng ?? new Random(0);
  const mistakeRate = style.mistakeRate ?? 0, correctionRate = style.correctionRate ?? 0.5;
  const steps: string[] = [];
  let v = p.start, corrected = false;
  for (const op of p.ops) {
    const right = apply(v, op);
    const line = (r: number) => `${p.name} ${VERB[op.op]}: ${v} ${SYMBOL[op.op]} ${op.x} = ${r}.`;
    if (rng.next() < mistakeRate) {
      const wrong = mistake(right, rng);
      steps.push(line(wrong));
      if (rng.next() < correctionRate) {
        steps.push(`Wait, ${v} ${SYMBOL[op.op]} ${op.x} = ${right}, not ${wrong}.`);
        corrected = true;
        v = right;
      } else {
        v = wrong;
      }
    } else {
      steps.push(line(right));
      v = right;
    }
  }
  steps.push(`The answer is ${v}`);
  return { steps, answer: v, correct: String(v) === p.gold, corrected };
}

function mistake(right: number, rng: Random): number {
  for (;;) {
    const d = [1, 2, 10, -1, -2, -10][rng.int(6)];
    const w = right + d;
    if (w !== right && (w >= 0 || right < 0)) return w; // a propagated error may be negative
  }
}

/**
 * Parse `synthetic:N` (optionally `synthetic:N:minSteps-maxSteps`).
 *
 * @returns The count and step range, or undefined when `spec` is not of that form.
 */
export function parseSyntheticSpec(
  spec: string,
): { count: number; minSteps?: number; maxSteps?: number } | undefined {
  const m = /^synthetic:(\d+)(?::(\d+)-(\d+))?$/.exec(spec);
  if (!m) {
    if (spec.startsWith("synthetic:")) {
      throw new RangeError(`--problems must be synthetic:N or synthetic:N:MIN-MAX: got '${spec}'`);
    }
    return undefined;
  }
  return {
    count: Number(m[1]),
    minSteps: m[2] === undefined ? undefined : Number(m[2]),
    maxSteps: m[3] === undefined ? undefined : Number(m[3]),
  };
}
