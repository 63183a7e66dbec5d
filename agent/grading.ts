/**
 * Final answers: finding one in a model's solution text, normalizing GSM8K numbers, and
 * deciding whether two answers are equivalent (numerically for GSM8K, with a computer-algebra
 * system for MATH's LaTeX answers).
 *
 * @module
 */
import { lastBoxed, replaceCommand, stripWrappers } from "./_latex.ts";
import { latexEquivalent, normalize } from "./_math_equiv.ts";
import type { Problem } from "./problems.ts";

/**
 * How answers are compared: `number` (GSM8K: plain numbers, units and commas ignored),
 * `math` (MATH: LaTeX expressions, tuples, intervals, sets, words), or `auto` (LaTeX rules,
 * with the last number of the text as the fallback answer).
 */
export type GradeKind = "number" | "math" | "auto";

/** The kinds, for validation and help texts. */
export const GRADE_KINDS: readonly GradeKind[] = ["number", "math", "auto"];

/** Options of the grading functions. */
export interface GradeOptions {
  /** How to read and compare answers (default `auto`). */
  kind?: GradeKind;
}

/** What {@linkcode gradeSolution} decided. */
export interface Grade {
  /** The answer found in the solution (canonical number for `number`), if any. */
  predicted: string | undefined;
  /** Whether it is equivalent to the gold answer. */
  correct: boolean;
}

/** Relative tolerance of numeric comparisons. */
const REL_TOL = 1e-6;

function kindOf(options: GradeOptions | undefined): GradeKind {
  const kind = options?.kind ?? "auto";
  if (!GRADE_KINDS.includes(kind)) {
    throw new RangeError(
      `Cannot grade as 'kind' must be one of ${GRADE_KINDS.join(", ")}: current value is ${kind}`,
    );
  }
  return kind;
}

/**
 * The final answer of a solution: the last complete `\boxed{...}` if there is one; else the
 * last "The answer is X", "the final answer is X", "#### X" or PRM800K's "# Answer\n\nX";
 * else (kinds `number` and `auto`) the last number in the text; else (kind `math`) the whole
 * trimmed text when it reads as a bare answer (one line of at most 100 characters that is
 * either free of words or one word, e.g. `29`, `\frac{3}{4}`, `x = 5`, `\text{Monday}`; not
 * `3 apples` or `I do not know.`), so predictions that are just the answer are graded.
 *
 * @param text A model's whole solution.
 * @param options `kind` (default `auto`).
 * @returns The answer (for `number`, the canonical number, e.g. `"1000"` for `$1,000`), or
 *   undefined when nothing is found.
 * @example
 * ```ts
 * extractAnswer("so $x = \\boxed{\\frac{3}{4}}$."); // "\\frac{3}{4}"
 * extractAnswer("She makes $18.\n#### 18", { kind: "number" }); // "18"
 * ```
 */
export function extractAnswer(text: string, options?: GradeOptions): string | undefined {
  const kind = kindOf(options);
  const found = lastBoxed(text) ?? lastPhraseAnswer(text);
  if (found !== undefined) {
    if (kind !== "number") return found;
    const n = normalizeNumber(found);
    if (n !== undefined) return formatNumber(n);
  }
  if (kind === "math") return found ?? bareAnswer(text);
  return lastNumber(text) ?? found;
}

/** Longest text read as a bare answer. */
const BARE_MAX_CHARS = 100;

/**
 * The whole text when it is a bare answer rather than prose: one short line with no word
 * (a run of three or more letters, LaTeX command and environment names excluded) or that is one
 * word alone (`odd`, `\text{Monday}`). A number with words ("3 apples") is left to the other
 * rules.
 */
function bareAnswer(text: string): string | undefined {
  const s = text.trim();
  if (s === "" || s.length > BARE_MAX_CHARS || s.includes("\n")) return undefined;
  // LaTeX command names and environment names (`\begin{pmatrix}`) are markup, not words.
  const plain = s.replace(/\\(?:begin|end)\{[A-Za-z*]+\}/g, " ").replace(/\\[A-Za-z]+/g, " ");
  const words = plain.match(/[A-Za-z]{3,}/g) ?? [];
  if (words.length === 0) return s;
  return words.length === 1 && plain.replace(/[\s{}$().]/g, "") === words[0] ? s : undefined;
}

/** Markers after which the rest of the line is the answer. */
const PHRASES: readonly RegExp[] = [
  /\b(?:the\s+)?(?:final\s+)?answer\s+is\s*:?[ \t]*/gi,
  /####[ \t]*/g,
  /^#\s*Answer\s*\n+\s*/gim,
];

/** The last phrase-marked answer, cleaned of `$`, `\(`, emphasis and a final period. */
function lastPhraseAnswer(text: string): string | undefined {
  let best: { at: number; value: string } | undefined;
  for (const re of PHRASES) {
    for (const m of text.matchAll(re)) {
      const from = m.index + m[0].length;
      const end = text.indexOf("\n", from);
      if (!best || m.index >= best.at) {
        best = { at: m.index, value: text.slice(from, end < 0 ? text.length : end) };
      }
    }
  }
  if (!best) return undefined;
  const value = cleanPhrase(best.value);
  return value === "" ? undefined : value;
}

function cleanPhrase(raw: string): string {
  let s = raw.trim().replace(/\*\*/g, "");
  const math = /^\$\$?([^$]+)\$\$?/.exec(s) ?? /^\\\((.+?)\\\)/.exec(s) ??
    /^\\\[(.+?)\\\]/.exec(s);
  if (math) s = math[1];
  else s = s.split(/\.\s/, 1)[0]; // the sentence ends at a period and a space
  return s.trim().replace(/[.\s]+$/, "").trim();
}

const NUMBER_RE = /(?:(?<=^|[\s(=:$*])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\d.])\.\d+/g;

/** The last number of the text, canonical (`"1,000"` gives `"1000"`). */
function lastNumber(text: string): string | undefined {
  const all = [...text.replace(/−/g, "-").matchAll(NUMBER_RE)];
  if (all.length === 0) return undefined;
  return formatNumber(Number(all[all.length - 1][0].replace(/,/g, "")));
}

function formatNumber(n: number): string {
  return String(Object.is(n, -0) ? 0 : n);
}

/**
 * Read a GSM8K-style number: commas (`1,000`), `$`, units and trailing words (`18 dollars`,
 * `5 cm`), `18.0`, `.5`, percent (`50%` gives 50), negatives, fractions (`3/4`,
 * `\frac{3}{4}`), `x = 5`.
 *
 * @param text A short answer.
 * @returns The number, or undefined when `text` does not start with one.
 * @example
 * ```ts
 * normalizeNumber("$1,000.00"); // 1000
 * normalizeNumber("3/4"); // 0.75
 * ```
 */
export function normalizeNumber(text: string): number | undefined {
  let s = stripWrappers(text.replace(/\*\*/g, ""));
  s = replaceCommand(s, { name: "text", replace: (c) => ` ${c}` });
  s = s.replace(/\\frac\s*\{\s*(-?[\d.]+)\s*\}\s*\{\s*(-?[\d.]+)\s*\}/g, "$1/$2");
  s = s.replace(/\\frac\s*(\d)(\d)/g, "$1/$2");
  s = s.replace(/(\d),(?=\d{3}(?!\d))/g, "$1").replace(/^[A-Za-z]\w*\s*=\s*/, "").trim();
  const m = /^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\s*\/\s*(\d+(?:\.\d+)?))?(.*)$/s
    .exec(s);
  if (!m || !/^(?:\s+[A-Za-z].*|[A-Za-z]{2,}.*)?$/s.test(m[3])) return undefined;
  const n = Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2]));
  return Number.isFinite(n) ? n : undefined;
}

function numbersClose(a: number, b: number): boolean {
  const diff = Math.abs(a - b);
  return diff <= REL_TOL * Math.max(Math.abs(a), Math.abs(b)) || diff < 1e-12;
}

/**
 * Whether a predicted answer equals the gold one.
 *
 * `number`: both read with {@linkcode normalizeNumber} and compared with a relative tolerance
 * of 1e-6 (falling back to the LaTeX rules when either is not a number). `math` and `auto`:
 * wrappers (`\boxed`, `$`, `\left`, spacing, `^\circ`, `\%`, `\text{units}`, `{,}`, `x =`)
 * removed, then tuples and intervals compared in order with their brackets, sets and lists
 * in any order, words case-insensitively, and everything else by the Compute Engine CAS
 * (exact or numeric within 1e-6; expressions in variables at sample points).
 *
 * @param predicted The model's answer.
 * @param gold The reference answer.
 * @param options `kind` (default `auto`).
 * @returns True when equivalent. Never throws on odd input: undecidable means false.
 * @example
 * ```ts
 * isEquivalent("\\dfrac12", "0.5", { kind: "math" }); // true
 * isEquivalent("(1,2)", "(2,1)", { kind: "math" }); // false
 * ```
 */
export function isEquivalent(predicted: string, gold: string, options?: GradeOptions): boolean {
  const kind = kindOf(options);
  if (kind === "number") {
    const a = normalizeNumber(predicted);
    const b = normalizeNumber(gold);
    if (a !== undefined && b !== undefined) return numbersClose(a, b);
  }
  return latexEquivalent(predicted, gold);
}

/**
 * Grade a whole solution: extract its answer and compare it with the gold one.
 *
 * @param text A model's whole solution.
 * @param gold The reference answer.
 * @param options `kind` (default `auto`).
 * @returns The extracted answer and whether it is correct.
 */
export function gradeSolution(text: string, gold: string, options?: GradeOptions): Grade {
  const predicted = extractAnswer(text, options);
  const correct = predicted !== undefined && isEquivalent(predicted, gold, options);
  return { predicted, correct };
}

/**
 * The grading kind that suits a problem: `number` for GSM8K and the synthetic domain, `math`
 * for MATH and PRM800K; ProcessBench by its subset (`gsm8k-*` ids are numbers).
 *
 * @param problem The problem (its `source` and `id`).
 * @returns `number` or `math`.
 */
export function gradeKindFor(problem: Pick<Problem, "source" | "id">): "number" | "math" {
  switch (problem.source) {
    case "gsm8k":
    case "synthetic":
      return "number";
    case "processbench":
      return problem.id.startsWith("gsm8k") ? "number" : "math";
    default:
      return "math";
  }
}

/**
 * The canonical written form of an answer, for grouping equal answers in votes: the number
 * for `number` answers that read as one, else the answer without its LaTeX wrappers.
 *
 * @param answer An extracted answer.
 * @param options `kind` (default `auto`).
 * @returns A key; equal keys imply equivalent answers (not the converse).
 */
export function answerKey(answer: string, options?: GradeOptions): string {
  const kind = kindOf(options);
  if (kind === "number") {
    const n = normalizeNumber(answer);
    if (n !== undefined) return formatNumber(n);
  }
  return normalize(answer).replace(/\s+/g, "");
}
