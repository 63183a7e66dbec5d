/**
 * Folding step scores into one solution score, and votes over final answers.
 *
 * @module
 */
import type { Aggregation } from "./types.ts";

/** The aggregations, for validation and help texts. */
export const AGGREGATIONS: readonly Aggregation[] = ["min", "last", "product", "mean"];

/**
 * One score for a whole solution from its step scores.
 *
 * @param scores Step scores in [0, 1].
 * @param how min, last, product or mean.
 * @returns The aggregate (0 for no steps).
 */
export function aggregateScores(scores: readonly number[], how: Aggregation): number {
  if (scores.length === 0) return 0;
  switch (how) {
    case "min":
      return Math.min(...scores);
    case "last":
      return scores[scores.length - 1];
    case "product":
      return scores.reduce((p, s) => p * s, 1);
    case "mean":
      return scores.reduce((p, s) => p + s, 0) / scores.length;
    default:
      throw new RangeError(
        `Cannot aggregate as 'how' must be one of ${
          AGGREGATIONS.join(", ")
        }: current value is ${how}`,
      );
  }
}

/**
 * Check that a model's scores are usable: finite and within [0, 1].
 *
 * @param scores The scores.
 * @param where Which model produced them (for the message).
 * @returns The same scores.
 * @throws RangeError naming the step and the value.
 */
export function checkScores(scores: readonly number[], where: string): number[] {
  scores.forEach((s, i) => {
    if (!Number.isFinite(s) || s < 0 || s > 1) {
      throw new RangeError(
        `Reward model ${where} gave step ${i} the score ${s}; expected a number in [0, 1]`,
      );
    }
  });
  return [...scores];
}
