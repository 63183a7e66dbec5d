/**
 * Inference: model directories, tokenizer and chat template, sampling, ONNX policies.
 *
 * @module
 */
export * from "./types.ts";
export * from "./tokenizer.ts";
export * from "./sampling.ts";
export * from "./model_dir.ts";
export * from "./kv.ts";
export * from "./prefix_cache.ts";
export * from "./causal_lm.ts";
export * from "./sequence_model.ts";
export * from "./policy.ts";
