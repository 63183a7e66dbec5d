/**
 * ProcessBench: can a process reward model find the first wrong step of a solution?
 *
 * @module
 */
import { z } from "zod";
import { ContextLengthError } from "../inference/mod.ts";

const sampleSchema = z.looseObject({
  id: z.string(),
  generator: z.string().optional(),
  problem: z.string(),
  steps: z.array(z.string()),
  final_answer_correct: z.boolean().optional(),
  label: z.int().min(-1),
});

/** One ProcessBench sample. */
export type ProcessBenchSample = z.infer<typeof sampleSchema>;

/**
 * Read a ProcessBench file: a JSON array (as the benchmark ships) or JSON Lines (as the
 * Hugging Face datasets library exports it) of `{id, generator, problem, steps[],
 * final_answer_correct, label}` where `label` is the index of the first wrong step, -1 when
 * every step is right.
 *
 * @param path The file.
 * @returns The samples.
 * @throws {Error} Naming the file and the first bad field (`file: [i].field ...`), or for JSON
 *   Lines the line that is not JSON (`file:line`).
 */
export async function readProcessBench(path: string): Promise<ProcessBenchSample[]> {
  let text: string;
  try {
    text = (await Deno.readTextFile(path)).replace(/^\uFEFF/, "");
  } catch (e) {
    throw new Error(`Cannot read ProcessBench file ${path}: ${(e as Error).message}`, { cause: e });
  }
  let value: unknown;
  if (text.trimStart().startsWith("[")) {
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new Error(`Cannot read ProcessBench file ${path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  } else {
    value = text.split("\n").flatMap((line, i) => {
      if (line.trim() === "") return [];
      try {
        return [JSON.parse(line)];
      } catch (e) {
        throw new Error(
          `Cannot read ProcessBench file ${path}:${i + 1}: not valid JSON (${
            (e as Error).message
          }); expected a JSON array or one record per line`,
        );
      }
    });
  }
  const r = z.array(sampleSchema).safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    throw new Error(`Cannot read ProcessBench file ${path}: ${at || "(root)"} ${issue.message}`);
  }
  r.data.forEach((s, i) => {
    if (s.label >= s.steps.length) {
      throw new Error(
        `Cannot read ProcessBench file ${path}: [${i}].label must be -1 or a step index below ${s.steps.length}: got ${s.label}`,
      );
    }
  });
  return r.data;
}

/** What scores steps: any `RewardModel` of reward/ fits (only `scoreSteps` is used). */
export interface StepScorer {
  /** One score in [0, 1] per step, each in the context of those before it. */
  scoreSteps(
    question: string,
    steps: readonly string[],
    options?: { signal?: AbortSignal },
  ): Promise<number[]>;
}

/** The first step scored under `threshold`, or -1 when none is. */
export function firstError(scores: readonly number[], threshold: number): number {
  return scores.findIndex((s) => s < threshold);
}

/** One sample's outcome. */
export interface ProcessBenchPrediction {
  /** The sample's id. */
  id: string;
  /** The true first wrong step (-1: none). */
  label: number;
  /** The predicted one. */
  predicted: number;
  /** The step scores. */
  scores: number[];
}

/** ProcessBench metrics. */
export interface ProcessBenchResult {
  /** Accuracy on the samples with an error (label >= 0): predicted exactly the first wrong step. */
  error_acc: number;
  /** Accuracy on the samples without one (label -1): predicted -1. */
  correct_acc: number;
  /** Harmonic mean of the two (0 when both are 0). */
  f1: number;
  /** Samples evaluated. */
  total: number;
  /** Samples with an error. */
  errors: number;
  /** Samples without one. */
  corrects: number;
}

/**
 * The metrics of a list of predictions: accuracy on erroneous samples, on correct samples,
 * and their harmonic mean (ProcessBench's F1). An empty half has accuracy 0.
 *
 * @param predictions Label and prediction per sample.
 */
export function processBenchMetrics(
  predictions: readonly { label: number; predicted: number }[],
): ProcessBenchResult {
  const err = predictions.filter((p) => p.label >= 0);
  const ok = predictions.filter((p) => p.label < 0);
  const acc = (list: typeof predictions) =>
    list.length ? list.filter((p) => p.predicted === p.label).length / list.length : 0;
  const a = acc(err), b = acc(ok);
  return {
    error_acc: a,
    correct_acc: b,
    f1: a + b > 0 ? (2 * a * b) / (a + b) : 0,
    total: predictions.length,
    errors: err.length,
    corrects: ok.length,
  };
}

/** Options of {@linkcode evaluateProcessBench}. */
export interface ProcessBenchOptions {
  /** A step scored below this is wrong (default 0.5). */
  threshold?: number;
  /** Told after each sample scored (for a progress bar). */
  onSample?: (prediction: ProcessBenchPrediction) => void;
  /** Told after each sample left out. */
  onSkip?: (skip: ProcessBenchSkip) => void;
  /** Cancellation. */
  signal?: AbortSignal;
}

/** A sample left out of the metrics, and why. */
export interface ProcessBenchSkip {
  /** The sample's id. */
  id: string;
  /** The reward model's message (e.g. the input is longer than its context). */
  reason: string;
}

/**
 * Score every sample's steps and predict its first wrong step: the first step scored under
 * the threshold, -1 when none is. A sample longer than the reward model's context
 * (`ContextLengthError`) is left out of the metrics and listed in `skipped`: one long sample
 * must not end an evaluation, and the count must be reported next to the metrics.
 *
 * @param samples ProcessBench samples.
 * @param options The reward model (`reward`), threshold, progress callback.
 * @returns The metrics over the samples scored, every prediction, and the skipped samples.
 */
export async function evaluateProcessBench(
  samples: readonly ProcessBenchSample[],
  options: ProcessBenchOptions & { reward: StepScorer },
): Promise<
  ProcessBenchResult & { predictions: ProcessBenchPrediction[]; skipped: ProcessBenchSkip[] }
> {
  const threshold = options.threshold ?? 0.5;
  const predictions: ProcessBenchPrediction[] = [];
  const skipped: ProcessBenchSkip[] = [];
  for (const s of samples) {
    options.signal?.throwIfAborted();
    let scores: number[];
    try {
      scores = await options.reward.scoreSteps(s.problem, s.steps, { signal: options.signal });
    } catch (e) {
      if (!(e instanceof ContextLengthError)) throw e;
      const skip = { id: s.id, reason: e.message };
      skipped.push(skip);
      options.onSkip?.(skip);
      continue;
    }
    const p = { id: s.id, label: s.label, predicted: firstError(scores, threshold), scores };
    predictions.push(p);
    options.onSample?.(p);
  }
  return { ...processBenchMetrics(predictions), predictions, skipped };
}
