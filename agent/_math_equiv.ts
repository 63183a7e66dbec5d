/**
 * Equivalence of two LaTeX answers, decided by the Cortex Compute Engine (a computer-algebra
 * system): both sides are parsed; constants are compared numerically, expressions with free
 * variables structurally and then by evaluation at fixed points. Tuples, intervals, sets and
 * lists are split first and compared element by element. Regexes only remove wrappers
 * (see `_latex.ts`).
 *
 * @module
 */
import { ComputeEngine, type Expression, isFunction, isNumber } from "@cortex-js/compute-engine";
import { canonicalWord, isWordAnswer, splitTopLevel, stripUnits, stripWrappers } from "./_latex.ts";

/** Longest answer handed to the engine; longer ones are compared as strings only. */
const MAX_LATEX = 400;
/** Wall-clock limit of one comparison inside the engine. */
const TIME_LIMIT_MS = 500;
/** Relative tolerance of numeric comparisons. */
const REL_TOL = 1e-6;
/** Points at which expressions with free variables are evaluated (one value per variable). */
const POINTS = [0.5377, 1.8339, -2.2588, 0.8622, 0.3188, -1.3077, 3.5784, 2.7694];

let engine: ComputeEngine | undefined;
function ce(): ComputeEngine {
  if (!engine) {
    engine = new ComputeEngine();
    engine.parse("\\frac{1}{2}+\\sqrt{x}").subs({ x: 2 }).N(); // load lazily built parts now
  }
  return engine;
}

/**
 * Whether two LaTeX answers are equal as mathematical objects.
 *
 * @param predicted The model's answer (LaTeX, wrappers allowed).
 * @param gold The reference answer.
 * @returns True when they are equivalent; false when not or when it cannot be decided.
 */
export function latexEquivalent(predicted: string, gold: string): boolean {
  let a = normalize(predicted);
  let b = normalize(gold);
  if (compact(a) === compact(b)) return true;
  [a, b] = alignSides(a, b);
  return structuredEquivalent(a, b);
}

/**
 * An answer without its LaTeX wrappers and units (see `_latex.ts`).
 *
 * @param answer A LaTeX answer.
 * @returns The bare answer.
 */
export function normalize(answer: string): string {
  return stripUnits(stripWrappers(answer));
}

function compact(s: string): string {
  return s.replace(/\s+/g, "");
}

/**
 * What one side says that the other leaves out: `x = 5` against a bare `5` keeps the
 * right-hand side; `4210_{5}` against `4210` drops the base (the digits must match).
 */
function alignSides(a: string, b: string): [string, string] {
  const lhs = /^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?!=)/;
  const hasEq = (s: string) => splitTopLevel(s, "=").length > 1;
  if (lhs.test(a) && !hasEq(b)) a = a.replace(lhs, "");
  if (lhs.test(b) && !hasEq(a)) b = b.replace(lhs, "");
  const base = /^([0-9A-F]+)_\{?\d+\}?$/; // digits of a base-n numeral
  if (base.test(a) && !b.includes("_")) a = a.replace(base, "$1");
  if (base.test(b) && !a.includes("_")) b = b.replace(base, "$1");
  return [a, b];
}

function structuredEquivalent(a: string, b: string): boolean {
  if (compact(a) === compact(b)) return true;
  const unionA = splitTopLevel(a, "\\cup");
  const unionB = splitTopLevel(b, "\\cup");
  if (unionA.length > 1 || unionB.length > 1) {
    return unorderedEquivalent(unionA, unionB, { eq: structuredEquivalent });
  }
  const setA = setElements(a);
  const setB = setElements(b);
  if (setA || setB) {
    return !!setA && !!setB && unorderedEquivalent(setA, setB, { eq: scalarEquivalent });
  }
  const seqA = bracketed(a);
  const seqB = bracketed(b);
  if (seqA || seqB) {
    return !!seqA && !!seqB && seqA.open === seqB.open && seqA.close === seqB.close &&
      orderedEquivalent(seqA.items, seqB.items);
  }
  const matA = matrixRows(a);
  const matB = matrixRows(b);
  if (matA || matB) {
    return !!matA && !!matB && matA.length === matB.length &&
      matA.every((row, i) => orderedEquivalent(row, matB[i]));
  }
  const listA = splitTopLevel(a).flatMap(expandPlusMinus);
  const listB = splitTopLevel(b).flatMap(expandPlusMinus);
  if (listA.length > 1 || listB.length > 1) {
    return unorderedEquivalent(listA, listB, { eq: scalarEquivalent });
  }
  return scalarEquivalent(a, b);
}

/** Cells of `\begin{pmatrix} a & b \\ c & d \end{pmatrix}` (any matrix kind), by row. */
function matrixRows(s: string): string[][] | undefined {
  const m = /^\\begin\{([pbvBV]?matrix)\}(.*)\\end\{\1\}$/s.exec(s);
  if (!m) return undefined;
  return splitTopLevel(m[2].trim().replace(/\\\\\s*$/, ""), "\\\\").map((row) =>
    splitTopLevel(row, "&")
  );
}

/** `a \pm b` stands for the two answers `a + b` and `a - b`. */
function expandPlusMinus(s: string): string[] {
  for (const pm of ["\\pm", "\\mp"]) {
    const parts = splitTopLevel(s, pm);
    if (parts.length === 2) {
      const [l, r] = parts;
      return pm === "\\pm" ? [`${l}+(${r})`, `${l}-(${r})`] : [`${l}-(${r})`, `${l}+(${r})`];
    }
  }
  return [s];
}

/** Elements of `\{a, b\}`, or undefined when `s` is not a set literal. */
function setElements(s: string): string[] | undefined {
  const m = /^\\\{(.*)\\\}$/s.exec(s);
  if (!m || !enclosesAll(s, 2, s.length - 2)) return undefined;
  return m[1].trim() === "" ? [] : splitTopLevel(m[1]);
}

/** Items of a tuple or interval `(a, b]`: brackets kept, at least two items. */
function bracketed(s: string): { open: string; close: string; items: string[] } | undefined {
  const open = s[0];
  const close = s[s.length - 1];
  if (!"([".includes(open) || !")]".includes(close) || s.length < 2) return undefined;
  if (!enclosesAll(s, 1, s.length - 1)) return undefined;
  const items = splitTopLevel(s.slice(1, -1));
  return items.length >= 2 ? { open, close, items } : undefined;
}

/** True when the bracket opened just before `from` is first closed at `to` (not earlier). */
function enclosesAll(s: string, from: number, to: number): boolean {
  let depth = 1;
  for (let i = from; i < to; i++) {
    const c = s[i];
    if (c === "\\") {
      if ("{[(".includes(s[i + 1] ?? " ")) depth++;
      else if ("}])".includes(s[i + 1] ?? " ")) depth--;
      i++;
    } else if ("{[(".includes(c)) depth++;
    else if ("}])".includes(c)) depth--;
    if (depth === 0) return false;
  }
  return true;
}

function orderedEquivalent(xs: string[], ys: string[]): boolean {
  return xs.length === ys.length && xs.every((x, i) => structuredEquivalent(x, ys[i]));
}

/** Every element of `xs` matched to a distinct, equivalent element of `ys`. */
function unorderedEquivalent(
  xs: string[],
  ys: string[],
  { eq }: { eq: (x: string, y: string) => boolean },
): boolean {
  if (xs.length !== ys.length) return false;
  const left = [...ys];
  for (const x of xs) {
    const k = left.findIndex((y) => eq(x, y));
    if (k < 0) return false;
    left.splice(k, 1);
  }
  return true;
}

/** One value against another: words by spelling, everything else through the engine. */
function scalarEquivalent(a: string, b: string): boolean {
  if (compact(a) === compact(b)) return true;
  if (isWordAnswer(a) && isWordAnswer(b)) return canonicalWord(a) === canonicalWord(b);
  if (a.length > MAX_LATEX || b.length > MAX_LATEX) return false;
  const engine = ce();
  engine.pushScope();
  try {
    return engine.withTimeLimit(TIME_LIMIT_MS, () => engineEquivalent(a, b));
  } catch {
    return false; // parse failures, cancellations and engine bugs all mean "not shown equal"
  } finally {
    engine.popScope();
  }
}

function engineEquivalent(latexA: string, latexB: string): boolean {
  const a = ce().parse(latexA);
  const b = ce().parse(latexB);
  if (!a.isValid || !b.isValid) return false;
  if (a.operator === "Equal" && b.operator === "Equal") return equationsEquivalent(a, b);
  if (a.unknowns.length === 0 && b.unknowns.length === 0) {
    if (a.isSame(b)) return true;
    return numbersClose(a.N(), b.N());
  }
  if (a.isSame(b) || a.is(b)) return true;
  return sameAtPoints(a, b);
}

/** `l = r` against `l' = r'`: the differences agree up to sign. */
function equationsEquivalent(a: Expression, b: Expression): boolean {
  if (!isFunction(a) || !isFunction(b)) return false;
  const diff = (e: typeof a) => ce().box(["Subtract", e.op1, e.op2]);
  const da = diff(a);
  const db = diff(b);
  return sameAtPoints(da, db) || sameAtPoints(da, ce().box(["Negate", db]));
}

function numbersClose(x: Expression, y: Expression): boolean {
  if (isNumber(x) && isNumber(y)) {
    return close(x.re, y.re) && close(x.im, y.im);
  }
  return x.isSame(y);
}

function close(x: number, y: number): boolean {
  if (Number.isNaN(x) || Number.isNaN(y)) return false;
  if (!Number.isFinite(x) || !Number.isFinite(y)) return x === y;
  return Math.abs(x - y) <= REL_TOL * Math.max(Math.abs(x), Math.abs(y)) ||
    Math.abs(x - y) < 1e-12;
}

/** Evaluate both at several points; equal where both are defined, and defined at 3 or more. */
function sameAtPoints(a: Expression, b: Expression): boolean {
  const vars = [...new Set([...a.unknowns, ...b.unknowns])];
  let agreed = 0;
  for (let p = 0; p < POINTS.length && agreed < 4; p++) {
    const at = Object.fromEntries(vars.map((v, k) => [v, POINTS[(p + 3 * k) % POINTS.length]]));
    const x = a.subs(at).N();
    const y = b.subs(at).N();
    const definedX = isNumber(x) && Number.isFinite(x.re);
    const definedY = isNumber(y) && Number.isFinite(y.re);
    if (definedX !== definedY) return false;
    if (!definedX) continue;
    if (!numbersClose(x, y)) return false;
    agreed++;
  }
  return agreed >= 3;
}
