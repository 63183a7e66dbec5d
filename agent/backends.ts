/**
 * Build model backends from what a user names: a directory (in-process ONNX, optionally in a
 * worker) or an http(s) URL (a vLLM-style server).
 *
 * @module
 */
import {
  type Dtype,
  OnnxPolicy,
  type PolicyModel,
  RemotePolicy,
  WorkerPolicy,
} from "../inference/mod.ts";
import { OnnxReward, RemoteReward, type RewardConfig, type RewardModel } from "../reward/mod.ts";

/** True for http:// and https:// locations. */
export function isUrl(location: string): boolean {
  return /^https?:\/\//i.test(location);
}

/** Options of {@linkcode openPolicy}. */
export interface OpenPolicyOptions {
  /** Weight file (in-process only). */
  dtype?: Dtype;
  /** Threads (in-process only). */
  threads?: number;
  /** Run the ONNX model in a worker thread (servers do, so they stay responsive). */
  worker?: boolean;
  /** Bearer token for a remote server. */
  apiKey?: string;
}

/**
 * Open a policy from a directory or a URL.
 *
 * @param location A model directory or an OpenAI-compatible server's URL.
 * @param options dtype, threads, worker, API key.
 */
export function openPolicy(
  location: string,
  options: OpenPolicyOptions = {},
): Promise<PolicyModel> {
  if (isUrl(location)) return RemotePolicy.connect({ baseUrl: location, apiKey: options.apiKey });
  const o = { dtype: options.dtype, threads: options.threads };
  return options.worker ? WorkerPolicy.load(location, o) : OnnxPolicy.load(location, o);
}

/** Options of {@linkcode openReward}. */
export interface OpenRewardOptions extends Partial<RewardConfig> {
  /** Weight file (in-process only). */
  dtype?: Dtype;
  /** Threads (in-process only). */
  threads?: number;
  /** Bearer token for a remote server. */
  apiKey?: string;
}

/**
 * Open a reward model from a directory or a vLLM pooling server's URL.
 *
 * @param location A model directory or a server URL.
 * @param options Head/format overrides of `reward.json`, dtype, threads, API key.
 */
export function openReward(
  location: string,
  options: OpenRewardOptions = {},
): Promise<RewardModel> {
  const { apiKey, ...rest } = options;
  if (isUrl(location)) return RemoteReward.connect({ baseUrl: location, apiKey });
  return OnnxReward.load(location, rest);
}
