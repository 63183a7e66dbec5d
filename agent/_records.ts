/**
 * Raw records of a data file with the line each starts on: JSON Lines (streamed line by line),
 * a JSON array (each element's first line found by a scan), or one pretty-printed JSON object.
 *
 * @module
 */

/** One record, or why its text is not JSON. */
export interface RawRecord {
  /** 1-based line where the record starts. */
  line: number;
  /** 0-based position: the line index for JSON Lines, the element index for an array. */
  index: number;
  /** The parsed value (absent when `error` is set). */
  value?: unknown;
  /** The JSON syntax error, if the text did not parse. */
  error?: string;
}

/**
 * Records of an in-memory text.
 *
 * @param text JSON Lines, a JSON array, or one JSON object.
 * @returns The records in order.
 */
export function* recordsOfText(text: string): Generator<RawRecord> {
  const body = text.replace(/^\uFEFF/, "");
  const first = body.split("\n").find((l) => l.trim() !== "") ?? "";
  const doc = startsDocument(first) ? recordsOfDocument(body) : undefined;
  if (doc) {
    yield* doc;
    return;
  }
  const lines = body.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const rec = recordOfLine(lines[i], i);
    if (rec) yield rec;
  }
}

/**
 * Records of a file, streamed line by line when it is JSON Lines.
 *
 * @param path The file.
 * @returns The records in order.
 */
export async function* recordsOfFile(path: string): AsyncGenerator<RawRecord> {
  let i = 0;
  let seen = false;
  let document = false;
  for await (const raw of linesOf(path)) {
    const line = i === 0 ? raw.replace(/^\uFEFF/, "") : raw;
    if (!seen && line.trim() !== "") {
      seen = true;
      document = startsDocument(line);
      if (document) break;
    }
    const rec = recordOfLine(line, i++);
    if (rec) yield rec;
  }
  if (document) yield* recordsOfText(await Deno.readTextFile(path));
}

async function* linesOf(path: string): AsyncGenerator<string> {
  const file = await Deno.open(path);
  const decoder = new TextDecoder();
  let pending = "", first = true;
  for await (const bytes of file.readable) {
    if (first) checkText(path, bytes); // the first bytes tell a compressed or UTF-16 file
    first = false;
    pending += decoder.decode(bytes, { stream: true });
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    yield* parts;
  }
  pending += decoder.decode();
  if (pending !== "") yield pending;
}

/** Leading bytes of files that are not UTF-8 JSON text, and what to do about them. */
const NOT_TEXT: [magic: number[], what: string][] = [
  [[0x1f, 0x8b], "gzip-compressed: decompress it first (gunzip)"],
  [[0x50, 0x4b, 0x03, 0x04], "a zip archive: extract the JSONL file from it"],
  [[0x28, 0xb5, 0x2f, 0xfd], "zstd-compressed: decompress it first (zstd -d)"],
  [[0x42, 0x5a, 0x68], "bzip2-compressed: decompress it first (bunzip2)"],
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a], "xz-compressed: decompress it first (unxz)"],
  [[0xff, 0xfe], "UTF-16 text: convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"],
  [[0xfe, 0xff], "UTF-16 text: convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)"],
];

/** Refuse, naming what it is, a file whose first bytes show it compressed or not UTF-8. */
function checkText(path: string, head: Uint8Array): void {
  for (const [magic, what] of NOT_TEXT) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) {
      throw new Error(`Cannot read ${path}: it is ${what}`);
    }
  }
}

/** A first line that opens an array, or a lone `{` (a pretty-printed object). */
function startsDocument(firstLine: string): boolean {
  const t = firstLine.trim();
  return t.startsWith("[") || t === "{";
}

function recordOfLine(text: string, index: number): RawRecord | undefined {
  if (text.trim() === "") return undefined;
  const line = index + 1;
  try {
    return { line, index, value: JSON.parse(text) };
  } catch (e) {
    return { line, index, error: syntaxMessage(e) };
  }
}

/** Records of a whole JSON document; undefined for an object that does not parse. */
function recordsOfDocument(text: string): RawRecord[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    if (!text.trimStart().startsWith("[")) return undefined; // read it as JSON Lines
    return [{ line: errorLine(text, e), index: 0, error: syntaxMessage(e) }];
  }
  if (!Array.isArray(value)) return [{ line: 1 + leadingNewlines(text), index: 0, value }];
  const lines = elementLines(text);
  return value.map((v, k) => ({ line: lines[k] ?? 1, index: k, value: v }));
}

/**
 * The syntax error of a text that opens a JSON document spread over several lines (its first
 * non-blank line starts with `{` or `[` but is not JSON by itself, and more lines follow) yet
 * does not parse as a whole, e.g. a truncated pretty-printed record read as JSON Lines.
 *
 * @param text A whole file.
 * @returns The 1-based line and message of the error, or undefined when the text is not such
 *   a document or parses.
 */
export function documentError(text: string): { line: number; error: string } | undefined {
  const body = text.replace(/^\uFEFF/, "");
  const lines = body.split("\n").filter((l) => l.trim() !== "");
  if (lines.length < 2 || !/^[[{]/.test(lines[0].trim())) return undefined;
  try {
    JSON.parse(lines[0]);
    return undefined; // JSON Lines
  } catch {
    // the first line opens a longer document
  }
  try {
    JSON.parse(body);
    return undefined;
  } catch (e) {
    return { line: errorLine(body, e), error: syntaxMessage(e) };
  }
}

function leadingNewlines(text: string): number {
  return (/^\s*/.exec(text)?.[0] ?? "").split("\n").length - 1;
}

function syntaxMessage(e: unknown): string {
  return `invalid JSON (${e instanceof Error ? e.message : String(e)})`;
}

/** Line of a JSON.parse error, from the position V8 puts in its message. */
function errorLine(text: string, e: unknown): number {
  const msg = e instanceof Error ? e.message : "";
  const lineCol = /line (\d+) column/.exec(msg);
  if (lineCol) return Number(lineCol[1]);
  const pos = /position (\d+)/.exec(msg);
  return pos ? text.slice(0, Number(pos[1])).split("\n").length : 1;
}

/**
 * The 1-based line on which each element of a top-level JSON array starts.
 *
 * @param text A JSON array (already known to parse).
 * @returns One line number per element.
 */
export function elementLines(text: string): number[] {
  const out: number[] = [];
  let depth = 0;
  let line = 1;
  let expecting = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") {
      line++;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r") continue;
    if (depth === 1 && expecting && c !== "]") {
      out.push(line);
      expecting = false;
    }
    if (c === '"') i = endOfString(text, i);
    else if (c === "[" || c === "{") expecting = ++depth === 1;
    else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 1) expecting = true;
  }
  return out;
}

function endOfString(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') return i;
  }
  return text.length;
}
