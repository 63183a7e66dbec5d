/**
 * Reward models: the interface, ONNX heads, remote scoring, aggregation.
 *
 * @module
 */
export * from "./types.ts";
export * from "./aggregate.ts";
export * from "./onnx_reward.ts";
