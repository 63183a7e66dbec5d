/**
 * Small string tools for LaTeX answers: balanced braces, `\boxed{...}`, splitting at top-level
 * commas, and the normalization of wrappers (`$`, `\left`, `\text`, degrees, percent, ...).
 * Equivalence itself is decided in `_math_equiv.ts` by a computer-algebra library.
 *
 * @module
 */

/**
 * Index just past the `}` that closes the `{` at `open`, or -1 when it is never closed.
 *
 * @param s The text.
 * @param open Index of a `{`.
 * @returns The index after the matching `}`, or -1.
 */
export function closeBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++; // an escaped character (`\{`, `\}`) does not count
    } else if (c === "{") {
      depth++;
    } else if (c === "}" && --depth === 0) {
      return i + 1;
    }
  }
  return -1;
}

/**
 * Content of the last complete `\boxed{...}` (or `\fbox{...}`, or `\boxed 5`) in `text`.
 * Nested braces are handled; a box that is never closed (a cut-off generation) is skipped in
 * favour of the one before it.
 *
 * @param text Any text.
 * @returns The box's content, trimmed, or undefined when there is none.
 */
export function lastBoxed(text: string): string | undefined {
  const re = /\\(?:boxed|fbox)\b/g;
  const starts = [...text.matchAll(re)].map((m) => m.index + m[0].length);
  for (let k = starts.length - 1; k >= 0; k--) {
    const content = boxContent(text, starts[k]);
    if (content !== undefined) return content.trim();
  }
  return undefined;
}

function boxContent(text: string, at: number): string | undefined {
  let i = at;
  while (text[i] === " ") i++;
  if (text[i] === "{") {
    const end = closeBrace(text, i);
    return end < 0 ? undefined : text.slice(i + 1, end - 1);
  }
  const m = /^[^\s$]+/.exec(text.slice(i)); // `\boxed 5`
  return m?.[0];
}

/**
 * Split at a separator (a comma by default) that is not inside `{}`, `()`, `[]` or `\{ \}`.
 * A separator made of letters (`\cup`) must not run on into more letters (`\cupdot`).
 *
 * @param s The text.
 * @param sep The separator, e.g. `","`, `"\\cup"`, `"\\\\"`, `"&"`.
 * @returns The parts, trimmed (one part when there is no top-level separator).
 */
export function splitTopLevel(s: string, sep = ","): string[] {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  const wordy = /[A-Za-z]$/.test(sep);
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (depth === 0 && s.startsWith(sep, i) && !(wordy && /[A-Za-z]/.test(s[i + sep.length]))) {
      parts.push(s.slice(from, i).trim());
      from = i + sep.length;
      i += sep.length - 1;
    } else if (c === "\\") {
      if (s[i + 1] === "{" || s[i + 1] === "[" || s[i + 1] === "(") depth++;
      else if (s[i + 1] === "}" || s[i + 1] === "]" || s[i + 1] === ")") depth--;
      i++;
    } else if (c === "{" || c === "(" || c === "[") {
      depth++;
    } else if (c === "}" || c === ")" || c === "]") {
      depth--;
    }
  }
  parts.push(s.slice(from).trim());
  return parts;
}

/**
 * Replace every `\name{...}` (balanced) by what `f` makes of its content.
 *
 * @param s The text.
 * @param options `name`: the command without its backslash, e.g. `"text"`; `replace`: maps
 *   the content to its replacement.
 * @returns The text with the commands replaced.
 */
export function replaceCommand(
  s: string,
  options: { name: string; replace: (content: string) => string },
): string {
  const { name, replace: f } = options;
  const re = new RegExp(`\\\\${name}\\s*\\{`, "g");
  let out = "";
  let from = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const open = m.index + m[0].length - 1;
    const end = closeBrace(s, open);
    if (end < 0) break;
    out += s.slice(from, m.index) + f(s.slice(open + 1, end - 1));
    from = end;
    re.lastIndex = end;
  }
  return out + s.slice(from);
}

/** Wrappers that never change the value of an answer. */
const WRAPPER_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\\left\s*\\?([()[\]{}.|])/g, "$1"],
  [/\\right\s*\\?([()[\]{}.|])/g, "$1"],
  [/\\left\s*\\(langle|rangle|lvert|rvert)/g, "\\$1"],
  [/\\right\s*\\(langle|rangle|lvert|rvert)/g, "\\$1"],
  [/\\(?:displaystyle|textstyle|scriptstyle)\b/g, ""],
  [/\\[dt]frac\b/g, "\\frac"],
  [/\\mbox\b/g, "\\text"],
  [/\\(?:textbf|textit|textrm|mathrm|mathbf|mathit|operatorname)\b/g, "\\text"],
  [/\\!/g, ""],
  [/(?<!\\)\\(?:,|;|:|\s)/g, " "], // not the row break `\\`
  [/~/g, " "],
  [/\{,\}/g, ""], // 10{,}000
  [/\^\s*\{?\s*\\circ\s*\}?/g, ""], // 30^\circ, 30^{\circ}
  [/\\(?:degree|circ)\b|°/g, ""],
  [/\\%|%/g, ""],
  [/\\\$|\$/g, ""],
  [/\\(?:quad|qquad)\b/g, " "],
  [/−/g, "-"],
];

/**
 * Remove the wrappers of a LaTeX answer that carry no value: `\boxed{}`, math delimiters,
 * `\left`/`\right`, spacing, `\dfrac`/`\tfrac`, degrees, percent signs, dollar signs, the
 * thousands separator `{,}`, a final period.
 *
 * @param answer A LaTeX answer.
 * @returns The same answer without its wrappers, trimmed.
 */
export function stripWrappers(answer: string): string {
  let s = answer.trim();
  const boxed = /^\\(?:boxed|fbox)\b/.test(s) ? lastBoxed(s) : undefined;
  if (boxed !== undefined) s = boxed;
  s = s.replace(/^\\\[|\\\]$/g, "").replace(/^\\\(|\\\)$/g, "");
  for (const [re, to] of WRAPPER_RULES) s = s.replace(re, to);
  s = s.trim().replace(/[.\s]+$/, "").trim();
  if (/^-?\d{1,3}(,\d{3})+(\.\d+)?$/.test(s)) s = s.replace(/,/g, ""); // 10,000
  return s;
}

/**
 * Drop `\text{...}` units that follow a value (`5\text{ cm}`, `5 \text{inches}^2`), and unwrap
 * any other `\text{...}`. A bare word after a number (`18 dollars`) is dropped as well.
 *
 * @param s A LaTeX answer without wrappers.
 * @returns The answer without units.
 */
export function stripUnits(s: string): string {
  const onlyText = /^\\text\s*\{[^{}]*\}$/.test(s);
  let out = onlyText ? s : s.replace(
    /\s*\\text\s*\{\s*([A-Za-z][A-Za-z\s.]*)\}(\s*\^\s*\{?[23]\}?)?/g,
    (m, word: string, _p, off: number) => {
      if (off === 0) return m;
      return /^\s*(and|or)\s*$/.test(word) ? ", " : "";
    },
  );
  out = replaceCommand(out, { name: "text", replace: (c) => c }).trim();
  const unit = /^(-?[\d.]+(?:\/\d+)?)\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+)*\.?$/.exec(out);
  return unit ? unit[1] : out;
}

/**
 * True when `s` reads as a word answer (`Monday`, `(C)`, `Even`) rather than an expression.
 *
 * @param s An answer without wrappers or `\text`.
 * @returns Whether it is made of letters (and spaces, apostrophes, hyphens, one pair of
 *   parentheses).
 */
export function isWordAnswer(s: string): boolean {
  return /^\(?[A-Za-z][A-Za-z\s'-]*\)?$/.test(s);
}

/**
 * Canonical form of a word answer: lower case, no parentheses, single spaces.
 *
 * @param s A word answer.
 * @returns Its canonical form.
 */
export function canonicalWord(s: string): string {
  return s.replace(/[()]/g, "").replace(/\s+/g, " ").trim().toLowerCase();
}
