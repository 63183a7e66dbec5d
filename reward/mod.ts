/**
 * Reward models: the interface, ONNX heads, remote scoring, aggregation.
 *
 * @module
 */
export * from "./types.ts";
export * from "./aggregate.ts";
export * from "./onnx_reward.ts";
export * from "./prompts.ts";
export * from "./remote_reward.ts";
