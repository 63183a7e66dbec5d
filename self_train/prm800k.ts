/**
 * PRM800K (human step ratings) to reward samples: D_PRM and D_HRM of PAPER.md.
 *
 * The rules, from PAPER.md ("Reward models") and the reference code
 * (`construct_dataset/rm_dataset_construction_phase1.py`):
 * - records whose `label.finish_reason` is `bad_problem` or `give_up` are skipped whole;
 * - every step's completions are judged in the context of the question and the previous
 *   *chosen* steps: rating +1 gives label 1, -1 gives label 0, rating 0 and null are dropped;
 * - the chosen step of a step is `completions[chosen_completion]`; where `chosen_completion`
 *   is null the reference takes the human completion's text as the chosen step; where there is
 *   neither (the last step of a `give_up`, or a step cut short) the walk of that record stops
 *   after that step's samples;
 * - D_HRM = D_PRM plus one *merged* sample per rated completion that has a previous chosen
 *   step: current = previous chosen step + "\n\n" + candidate, previous = the chosen steps
 *   before that one, label = the candidate's label. So "a wrong step, then a step that corrects
 *   it" is a positive sample. The human completion itself is not a sample (it has no rating),
 *   as in the reference.
 *
 * @module
 */
import { basename } from "node:path";
import { z } from "zod";
import { readLines } from "./_lines.ts";
import type { RewardSample } from "./types.ts";

/** What to build from PRM800K: D_PRM, or D_HRM = D_PRM plus merged pairs. */
export type Prm800kKind = "prm" | "hrm";

/** Finish reasons whose records are skipped whole (PAPER.md). */
export const SKIPPED_FINISH_REASONS: readonly string[] = ["bad_problem", "give_up"];

const completionSchema = z.looseObject({
  text: z.string(),
  rating: z.union([z.literal(-1), z.literal(0), z.literal(1)]).nullish(),
});

const stepSchema = z.looseObject({
  completions: z.array(completionSchema).nullish(),
  human_completion: z.looseObject({ text: z.string() }).nullish(),
  chosen_completion: z.int().nonnegative().nullish(),
});

const recordSchema = z.looseObject({
  question: z.looseObject({ problem: z.string() }),
  label: z.looseObject({
    steps: z.array(stepSchema),
    finish_reason: z.string(),
  }),
});

/** A PRM800K record, as far as the labels need it. */
export type Prm800kRecord = z.infer<typeof recordSchema>;

/**
 * Check a parsed JSON value against the PRM800K record shape.
 *
 * @param value The parsed line.
 * @param where Where it came from (`file:line`), for the error.
 * @returns The record.
 * @throws {TypeError} `<where>: field '<path>' <expected>` naming the first bad field.
 */
export function parsePrm800kRecord(value: unknown, where: string): Prm800kRecord {
  const r = recordSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new TypeError(
      `${where}: not a PRM800K record: field '${
        issue.path.join(".") || "(root)"
      }' ${issue.message}`,
    );
  }
  r.data.label.steps.forEach((s, i) => {
    const n = s.completions?.length ?? 0;
    if (typeof s.chosen_completion === "number" && s.chosen_completion >= n) {
      throw new TypeError(
        `${where}: field 'label.steps.${i}.chosen_completion' must index one of the step's ${n} completions: got ${s.chosen_completion}`,
      );
    }
  });
  return r.data;
}

/** Options of {@linkcode prm800kSamples}. */
export interface Prm800kSampleOptions {
  /** D_PRM (`"prm"`, default) or D_HRM (`"hrm"`). */
  kind?: Prm800kKind;
  /** The samples' `source` (default `"prm800k"`). */
  source?: string;
  /** The samples' `problemId`. */
  problemId?: string;
}

/**
 * The reward samples of one PRM800K record, by the rules in this module's docs: step by
 * step, completion by completion, each PRM sample followed by its merged sample (for `"hrm"`).
 *
 * @param record A record ({@linkcode parsePrm800kRecord}).
 * @param options Kind, source, problem id.
 * @returns The samples; none for a `bad_problem` or `give_up` record.
 * @example
 * ```ts
 * const samples = prm800kSamples(record, { kind: "hrm" });
 * ```
 */
export function prm800kSamples(
  record: Prm800kRecord,
  options: Prm800kSampleOptions = {},
): RewardSample[] {
  if (SKIPPED_FINISH_REASONS.includes(record.label.finish_reason)) return [];
  const question = record.question.problem;
  const base = { question, source: options.source ?? "prm800k", problemId: options.problemId };
  const chosen: string[] = [];
  const chosenLabels: number[] = [];
  const out: RewardSample[] = [];
  for (const [i, step] of record.label.steps.entries()) {
    for (const [j, c] of (step.completions ?? []).entries()) {
      if (c.rating !== 1 && c.rating !== -1) continue;
      const label = c.rating === 1 ? 1 : 0;
      const meta = { step: i, completion: j, rating: c.rating };
      out.push({
        ...base,
        previous: [...chosen],
        previousLabels: [...chosenLabels],
        current: c.text,
        label,
        kind: "prm",
        meta,
      });
      if (options.kind === "hrm" && chosen.length > 0) {
        out.push({
          ...base,
          previous: chosen.slice(0, -1),
          previousLabels: chosenLabels.slice(0, -1),
          current: `${chosen.at(-1)}\n\n${c.text}`,
          label,
          kind: "hrm-merged",
          meta,
        });
      }
    }
    const next = chosenStep(step);
    if (next === undefined) break;
    chosen.push(next.text);
    chosenLabels.push(next.label);
  }
  return out;
}

/** The chosen step's text and label: the chosen completion, else the human completion. */
function chosenStep(
  step: Prm800kRecord["label"]["steps"][number],
): { text: string; label: number } | undefined {
  if (typeof step.chosen_completion === "number" && step.completions) {
    const c = step.completions[step.chosen_completion];
    return { text: c.text, label: c.rating === -1 ? 0 : 1 };
  }
  if (step.human_completion) return { text: step.human_completion.text, label: 1 };
  return undefined;
}

/** Options of {@linkcode readPrm800k}. */
export interface ReadPrm800kOptions {
  /** D_PRM (`"prm"`, default) or D_HRM (`"hrm"`). */
  kind?: Prm800kKind;
  /** Throw at the first malformed line instead of skipping it (default false). */
  strict?: boolean;
  /** The samples' `source` (default `"prm800k:<file name>"`). */
  source?: string;
  /** Told of every malformed line skipped (non-strict mode). */
  onError?: (error: Error) => void;
  /** Told of every record read: its line, the samples it gave, and why it gave none. */
  onRecord?: (info: { line: number; samples: number; skipped?: string }) => void;
  /** Cancellation. */
  signal?: AbortSignal;
}

/**
 * Stream the reward samples of a PRM800K JSONL file (one record per line; blank lines are
 * ignored), never holding the whole file.
 *
 * A record's `problemId` is its line number (PRM800K records carry no id).
 *
 * @param path The JSONL file.
 * @param options Kind, strictness, callbacks.
 * @throws {Error} `<file>:<line>: ...` for a malformed line under `strict`.
 * @example
 * ```ts
 * for await (const s of readPrm800k("phase1_test.jsonl", { kind: "hrm" })) console.log(s.label);
 * ```
 */
export async function* readPrm800k(
  path: string,
  options: ReadPrm800kOptions = {},
): AsyncGenerator<RewardSample, void, undefined> {
  const source = options.source ?? `prm800k:${basename(path)}`;
  for await (const line of readLines(path, { signal: options.signal })) {
    if (line.text.trim() === "") continue;
    const where = `${path}:${line.number}`;
    let record: Prm800kRecord;
    try {
      let value: unknown;
      try {
        value = JSON.parse(line.text);
      } catch (e) {
        throw new SyntaxError(`${where}: not JSON: ${(e as Error).message}`);
      }
      record = parsePrm800kRecord(value, where);
    } catch (e) {
      if (options.strict) throw e;
      options.onError?.(e as Error);
      continue;
    }
    const samples = prm800kSamples(record, {
      kind: options.kind,
      source,
      problemId: String(line.number),
    });
    const reason = record.label.finish_reason;
    options.onRecord?.({
      line: line.number,
      samples: samples.length,
      skipped: SKIPPED_FINISH_REASONS.includes(reason) ? reason : undefined,
    });
    yield* samples;
  }
}
