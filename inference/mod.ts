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
export * from "./worker.ts";
export * from "./remote_policy.ts";
export {
  firstModelId,
  getJson,
  type HttpOptions,
  httpOptionsOf,
  postJson,
  RemoteError,
  type RemoteErrorKind,
  serverRoot,
} from "./_http.ts";
export * from "./progress.ts";
