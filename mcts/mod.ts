/**
 * Pure search over reasoning steps: MCTS with PUCT, the baselines, annotation trees.
 * Knows nothing of ONNX, HTTP or storage; backends come in through the interfaces.
 *
 * @module
 */
export * from "./types.ts";
export * from "./tree.ts";
export * from "./search.ts";
export * from "./baselines.ts";
export * from "./annotate.ts";
export type { Budget } from "./_budget.ts";
