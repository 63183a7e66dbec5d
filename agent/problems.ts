/**
 * Problem sets: GSM8K, MATH, ProcessBench and PRM800K files read into one `Problem` shape.
 * JSON Lines files are streamed; every record is validated, and a malformed one is reported
 * with its file and line (or, with `strict`, thrown). A repeated problem id is always thrown,
 * naming both lines: two records with one id would be one problem to results and grading.
 *
 * @module
 */
import { z } from "zod";
import { lastBoxed } from "./_latex.ts";
import { documentError, type RawRecord, recordsOfFile, recordsOfText } from "./_records.ts";

/** Where a problem comes from. */
export type ProblemSource = "gsm8k" | "math" | "processbench" | "prm800k" | "synthetic";

/** File formats that {@linkcode readProblems} understands. */
export type ProblemFormat = "gsm8k" | "math" | "processbench" | "prm800k";

/** The formats, for validation and help texts (`--format`). */
export const PROBLEM_FORMATS: readonly ProblemFormat[] = [
  "gsm8k",
  "math",
  "processbench",
  "prm800k",
];

/** One problem, whatever its source. */
export interface Problem {
  /** `unique_id` (MATH) or `id` (ProcessBench) when the record has one, else `String(index)`. */
  id: string;
  /** 0-based position in its file: line index for JSON Lines, element index for an array. */
  index: number;
  /** The question as posed. */
  question: string;
  /** The final answer, extracted (GSM8K `#### N` without commas; MATH `answer` or last box). */
  gold?: string;
  /** A reference solution (GSM8K `answer`, MATH `solution`, PRM800K ground-truth solution). */
  solution?: string;
  /** Solution steps (ProcessBench's steps; PRM800K's chosen or human step texts). */
  steps?: string[];
  /** The data set. */
  source: ProblemSource;
  /** Format-specific fields (ProcessBench `label`, PRM800K `finish_reason`, MATH `level`...). */
  meta?: Record<string, unknown>;
}

/** A record that could not be read as a problem. */
export class ProblemError extends Error {
  /** The file (or the name given to {@linkcode parseProblemsText}). */
  readonly path: string;
  /** 1-based line where the record starts. */
  readonly line: number;

  /**
   * @param path The file or name.
   * @param line 1-based line.
   * @param detail What is wrong, e.g. `field 'question' must be a string, got number`.
   */
  constructor(path: string, line: number, detail: string) {
    super(`${path}:${line}: ${detail}`);
    this.name = "ProblemError";
    this.path = path;
    this.line = line;
  }
}

/** Options of {@linkcode readProblems} and {@linkcode parseProblemsText}. */
export interface ReadProblemsOptions {
  /** The format, or `auto` (default) to detect it from the first record. */
  format?: ProblemFormat | "auto";
  /** Throw the first {@linkcode ProblemError} instead of skipping the record. */
  strict?: boolean;
  /** Stop after this many problems. */
  limit?: number;
  /** Called with each skipped record's error. */
  onError?: (error: ProblemError) => void;
}

/** Problems and the errors of the records that were skipped. */
export interface ProblemSet {
  /** The problems read. */
  problems: Problem[];
  /** One per skipped record. */
  errors: ProblemError[];
}

const optionsSchema = z.strictObject({
  format: z.enum(["gsm8k", "math", "processbench", "prm800k", "auto"]).optional(),
  strict: z.boolean().optional(),
  limit: z.int().nonnegative().optional(),
  onError: z.custom<(e: ProblemError) => void>((v) => typeof v === "function").optional(),
});

const gsm8kSchema = z.looseObject({ question: z.string(), answer: z.string() });
const mathSchema = z.looseObject({
  problem: z.string(),
  solution: z.string().optional(),
  answer: z.union([z.string(), z.number()]).optional(),
  unique_id: z.string().optional(),
  level: z.union([z.string(), z.number()]).optional(),
  subject: z.string().optional(),
  type: z.string().optional(),
});
const processbenchSchema = z.looseObject({
  id: z.string(),
  generator: z.string().optional(),
  problem: z.string(),
  steps: z.array(z.string()),
  final_answer_correct: z.boolean().optional(),
  label: z.int(),
});
const prmStepSchema = z.looseObject({
  completions: z.array(z.looseObject({ text: z.string(), rating: z.number().nullable() }))
    .nullable(),
  human_completion: z.looseObject({ text: z.string() }).nullable(),
  chosen_completion: z.int().nullable(),
});
const prm800kSchema = z.looseObject({
  question: z.looseObject({
    problem: z.string(),
    ground_truth_answer: z.string().nullish(),
    ground_truth_solution: z.string().nullish(),
  }),
  label: z.looseObject({ steps: z.array(prmStepSchema), finish_reason: z.string() }),
});

/**
 * Guess a record's format from its field names.
 *
 * @param record One parsed record.
 * @returns `prm800k` (`question.problem` and `label.steps`), `processbench` (`problem` and
 *   `steps`), `math` (`problem`), `gsm8k` (`question` and `answer`), or undefined.
 */
export function detectFormat(record: unknown): ProblemFormat | undefined {
  if (!isObject(record)) return undefined;
  if (isObject(record.question) && "problem" in record.question && isObject(record.label)) {
    return "prm800k";
  }
  if ("problem" in record && "steps" in record) return "processbench";
  if ("problem" in record) return "math";
  if ("question" in record && "answer" in record) return "gsm8k";
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Read the problems of a file, one by one. JSON Lines files are streamed; JSON arrays (as
 * ProcessBench ships) and single pretty-printed records are read whole.
 *
 * @param path The file.
 * @param options `format` (default `auto`), `strict`, `limit`, `onError`.
 * @returns The problems in file order; malformed records are skipped and reported.
 * @throws ProblemError in strict mode, and in any mode for a problem id already read (the
 *   message names both lines); Deno.errors.NotFound when the file is missing.
 * @example
 * ```ts
 * const errors: ProblemError[] = [];
 * for await (const p of readProblems("test.jsonl", { onError: (e) => errors.push(e) })) {
 *   console.log(p.id, p.gold);
 * }
 * ```
 */
export async function* readProblems(
  path: string,
  options: ReadProblemsOptions = {},
): AsyncGenerator<Problem> {
  const reader = new ProblemReader(path, checkOptions(options));
  if (reader.done()) return;
  for await (const rec of recordsOfFile(path)) {
    const p = reader.take(rec);
    if (p) yield p;
    if (reader.done()) return;
  }
}

/**
 * Read a whole file's problems and its errors (non-strict unless asked).
 *
 * @param path The file.
 * @param options As for {@linkcode readProblems}.
 * @returns The problems and the skipped records' errors.
 * @throws As {@linkcode readProblems}.
 */
export async function loadProblems(
  path: string,
  options: ReadProblemsOptions = {},
): Promise<ProblemSet> {
  const errors: ProblemError[] = [];
  const problems: Problem[] = [];
  const onError = (e: ProblemError) => {
    errors.push(e);
    options.onError?.(e);
  };
  for await (const p of readProblems(path, { ...options, onError })) problems.push(p);
  return { problems, errors };
}

/**
 * Read problems from text in memory (an uploaded problem set).
 *
 * @param text JSON Lines, a JSON array, or one JSON record.
 * @param options As for {@linkcode readProblems}, plus `name` used in error messages
 *   (default `"<text>"`).
 * @returns The problems and the skipped records' errors.
 * @throws ProblemError in strict mode, and in any mode for a repeated problem id.
 */
export function parseProblemsText(
  text: string,
  options: ReadProblemsOptions & { name?: string } = {},
): ProblemSet {
  const { name = "<text>", ...rest } = options;
  const errors: ProblemError[] = [];
  const onError = (e: ProblemError) => {
    errors.push(e);
    rest.onError?.(e);
  };
  const reader = new ProblemReader(name, checkOptions({ ...rest, onError }));
  const problems: Problem[] = [];
  for (const rec of recordsOfText(text)) {
    if (reader.done()) break;
    const p = reader.take(rec);
    if (p) problems.push(p);
  }
  return { problems, errors };
}

/** A likely reason why no record of a problem file could be read. */
export type ProblemFileDiagnosis =
  /** The records read as another format than the one asked for. */
  | { cause: "format"; format: ProblemFormat; detected: ProblemFormat }
  /** A JSON document over several lines (not one record per line) that does not parse. */
  | { cause: "document"; line: number; error: string };

/**
 * Tell why no record of a problem file could be read, when the file shows it: records of
 * another format than `format`, or a multi-line JSON document (a pretty-printed record or an
 * array) that does not parse as a whole, e.g. a truncated one.
 *
 * @param path The file.
 * @param format The format that was asked for (default `auto`).
 * @returns The likely cause, or undefined when none can be told.
 * @throws Deno.errors.NotFound when the file is missing.
 * @example
 * ```ts
 * const { problems } = await loadProblems("pb.json", { format: "gsm8k" });
 * if (problems.length === 0) console.log(await diagnoseProblemFile("pb.json", "gsm8k"));
 * // { cause: "format", format: "gsm8k", detected: "processbench" }
 * ```
 */
export async function diagnoseProblemFile(
  path: string,
  format: ProblemFormat | "auto" = "auto",
): Promise<ProblemFileDiagnosis | undefined> {
  if (format !== "auto") {
    for await (const p of readProblems(path, { format: "auto", limit: 1 })) {
      if (p.source !== format && p.source !== "synthetic") {
        return { cause: "format", format, detected: p.source };
      }
    }
  }
  const doc = documentError(await Deno.readTextFile(path));
  return doc && { cause: "document", ...doc };
}

function checkOptions(options: ReadProblemsOptions): ReadProblemsOptions {
  const r = optionsSchema.safeParse(options);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new TypeError(
      `Cannot read problems as option '${issue.path.join(".")}' is invalid: ${issue.message}`,
    );
  }
  return options;
}

/** Turns raw records into problems, fixing the format on the first recognizable record. */
class ProblemReader {
  #format: ProblemFormat | undefined;
  #count = 0;
  /** Line of each id read so far, to report a repeated id with both lines. */
  #lines = new Map<string, number>();

  constructor(readonly path: string, readonly options: ReadProblemsOptions) {
    this.#format = options.format === "auto" ? undefined : options.format;
  }

  done(): boolean {
    return this.options.limit !== undefined && this.#count >= this.options.limit;
  }

  take(rec: RawRecord): Problem | undefined {
    let p: Problem;
    try {
      p = this.#convert(rec);
    } catch (e) {
      if (!(e instanceof ProblemError) || this.options.strict) throw e;
      this.options.onError?.(e);
      return undefined;
    }
    // a repeated id would make two problems one (results, grading): always an error
    const first = this.#lines.get(p.id);
    if (first !== undefined) {
      throw new ProblemError(
        this.path,
        rec.line,
        `problem id '${p.id}' repeats the id of the record on line ${first}; ` +
          `ids must be unique (${ID_FIELD[p.source] ?? "the record's position"})`,
      );
    }
    this.#lines.set(p.id, rec.line);
    this.#count++;
    return p;
  }

  #convert(rec: RawRecord): Problem {
    const fail = (detail: string) => new ProblemError(this.path, rec.line, detail);
    if (rec.error !== undefined) throw fail(rec.error);
    if (!isObject(rec.value)) throw fail(`record must be an object, got ${typeName(rec.value)}`);
    this.#format ??= detectFormat(rec.value);
    if (this.#format === undefined) {
      throw fail(
        `cannot tell the format from fields ${JSON.stringify(Object.keys(rec.value))}; ` +
          `expected gsm8k {question, answer}, math {problem, solution}, processbench ` +
          `{problem, steps} or prm800k {question.problem, label.steps}`,
      );
    }
    return CONVERTERS[this.#format](rec.value, rec.index, fail);
  }
}

/** Where each format's problem ids come from (GSM8K and PRM800K ids are positions). */
const ID_FIELD: Partial<Record<ProblemSource, string>> = {
  math: "field 'unique_id', else the 0-based position",
  processbench: "field 'id'",
};

type Fail = (detail: string) => ProblemError;
type Converter = (value: Record<string, unknown>, index: number, fail: Fail) => Problem;

const CONVERTERS: Record<ProblemFormat, Converter> = {
  gsm8k: (value, index, fail) => {
    const r = validate(gsm8kSchema, value, fail);
    const m = /####\s*(.+?)\s*$/.exec(r.answer);
    if (!m) {
      throw fail(`field 'answer' must end with '#### <answer>', got ${preview(r.answer)}`);
    }
    const gold = m[1].replace(/,/g, "");
    return {
      id: String(index),
      index,
      question: r.question,
      gold,
      solution: r.answer,
      source: "gsm8k",
    };
  },
  math: (value, index, fail) => {
    if (Array.isArray(value.steps)) {
      throw fail(
        "has 'problem' and 'steps', as ProcessBench records do, not MATH's 'problem' and 'solution': use --format processbench (or auto)",
      );
    }
    const r = validate(mathSchema, value, fail);
    if (r.answer === undefined && r.solution !== undefined && lastBoxed(r.solution) === undefined) {
      throw fail(
        `has no gold answer: no field 'answer', and field 'solution' has no \\boxed{...}, got ${
          preview(r.solution)
        }`,
      );
    }
    const gold = r.answer !== undefined ? String(r.answer) : lastBoxed(r.solution ?? "");
    const meta = compact({ level: r.level, subject: r.subject ?? r.type });
    return {
      id: r.unique_id ?? String(index),
      index,
      question: r.problem,
      ...compact({ gold, solution: r.solution }),
      source: "math",
      ...(Object.keys(meta).length > 0 ? { meta } : {}),
    };
  },
  processbench: (value, index, fail) => {
    const r = validate(processbenchSchema, value, fail);
    const meta = compact({
      label: r.label,
      final_answer_correct: r.final_answer_correct,
      generator: r.generator,
    });
    return { id: r.id, index, question: r.problem, steps: r.steps, source: "processbench", meta };
  },
  prm800k: (value, index, fail) => {
    const r = validate(prm800kSchema, value, fail);
    const steps = r.label.steps.map(chosenText).filter((t): t is string => t !== undefined);
    return {
      id: String(index),
      index,
      question: r.question.problem,
      ...compact({
        gold: r.question.ground_truth_answer ?? undefined,
        solution: r.question.ground_truth_solution ?? undefined,
      }),
      steps,
      source: "prm800k",
      meta: { finish_reason: r.label.finish_reason },
    };
  },
};

/** The text of a PRM800K step's chosen completion, else its human completion. */
function chosenText(step: z.infer<typeof prmStepSchema>): string | undefined {
  const chosen = step.chosen_completion;
  if (chosen !== null) return step.completions?.[chosen]?.text;
  return step.human_completion?.text;
}

function compact<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function validate<S extends z.ZodType>(schema: S, value: unknown, fail: Fail): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw fail(describeIssue(r.error.issues[0], value));
}

/** `field 'question' must be a string, got number` from a zod issue. */
function describeIssue(issue: z.core.$ZodIssue, value: unknown): string {
  const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : p)).join(".")
    .replace(/\.\[/g, "[");
  const got = valueAt(value, issue.path);
  if (issue.code === "invalid_type") {
    if (got === undefined) return `missing field '${field}' (expected ${article(issue.expected)})`;
    return `field '${field}' must be ${article(issue.expected)}, got ${typeName(got)}`;
  }
  if (issue.code === "invalid_union") {
    const expected = issue.errors.map((e) => e[0]?.code === "invalid_type" ? e[0].expected : "?");
    return `field '${field}' must be ${expected.map(article).join(" or ")}, got ${typeName(got)}`;
  }
  return `field '${field}': ${issue.message}`;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const k of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function article(type: string): string {
  const names: Record<string, string> = {
    int: "an integer",
    array: "an array",
    object: "an object",
  };
  return names[type] ?? `a ${type}`;
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function preview(s: string): string {
  const tail = s.length > 40 ? `...${s.slice(-40)}` : s;
  return JSON.stringify(tail);
}
