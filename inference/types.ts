/**
 * The interfaces every policy backend implements: in-process ONNX, a Worker proxy, and a
 * remote OpenAI-compatible server. Search and agent code depend on these alone.
 *
 * @module
 */

/** One message of a chat, as chat templates take it. */
export interface ChatMessage {
  /** "system", "user" or "assistant". */
  role: string;
  /** The message text. */
  content: string;
}

/** Text <-> token ids, with the model's special tokens and chat template. */
export interface Tokenizer {
  /** Token ids of `text`; special tokens (BOS) added as the tokenizer config says unless `addSpecialTokens` is false. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; special tokens dropped when `skipSpecialTokens` is true (the default). */
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Id of one token of the vocabulary (added tokens included), or undefined. */
  tokenToId(token: string): number | undefined;
  /** Ids that end generation (from `eos_token` and the generation config). */
  readonly eosTokenIds: readonly number[];
  /** The BOS token id, if the model has one. */
  readonly bosTokenId: number | undefined;
  /** The PAD token id, if the model has one. */
  readonly padTokenId: number | undefined;
  /** Render `messages` with the model's chat template. Throws if the model has none. */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options?: { addGenerationPrompt?: boolean },
  ): string;
}

/** How to sample. Every field has a default; `temperature: 0` is greedy. */
export interface SamplingOptions {
  /** 0 means greedy; default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 (default) keeps all. */
  topK?: number;
  /** Nucleus sampling mass; 1 (default) keeps all. */
  topP?: number;
  /** Seed of the sampler. Child i of a request uses `seed + i`. Default 0. */
  seed?: number;
}

/** A generation request. */
export interface GenerateOptions extends SamplingOptions {
  /** Number of continuations (the K children of a node). Default 1. */
  n?: number;
  /** Maximum new tokens per continuation. Default 128. */
  maxNewTokens?: number;
  /** Generation stops after any of these strings appears in the new text (kept in the text). */
  stop?: readonly string[];
  /** Cancels the generation. */
  signal?: AbortSignal;
}

/** Why a continuation ended. */
export type FinishReason = "stop" | "eos" | "length";

/** One generated continuation. */
export interface Generation {
  /** The new text (up to and including the stop string that ended it; no EOS text). */
  text: string;
  /** The new token ids (EOS included when it ended the generation). */
  ids: number[];
  /** Natural-log probability of each new token under the model's raw logits (before temperature). */
  logprobs: number[];
  /** Why it ended. */
  finishReason: FinishReason;
}

/** Teacher-forced log-probabilities of a continuation. */
export interface ScoredToken {
  /** The token id of the continuation. */
  id: number;
  /** Its log-probability under the model. */
  logprob: number;
  /** The `topK` most likely tokens at this position, most likely first. */
  top: { id: number; logprob: number }[];
}

/** Result of teacher-forced scoring. */
export interface ScoredContinuation {
  /** Token ids of the prompt. */
  promptIds: number[];
  /** One entry per continuation token. */
  tokens: ScoredToken[];
}

/** A language model that proposes reasoning steps. */
export interface PolicyModel {
  /** Model id (directory name or the remote model name). */
  readonly id: string;
  /** Sample `n` continuations of `prompt` (raw text, no template applied). */
  generate(prompt: string, options?: GenerateOptions): Promise<Generation[]>;
  /** Teacher-forced scoring of `continuation` after `prompt`, with the `topK` alternatives (default 20). */
  score(
    prompt: string,
    continuation: string,
    options?: { topK?: number; signal?: AbortSignal },
  ): Promise<ScoredContinuation>;
  /** Free sessions and caches. */
  close(): Promise<void>;
}

/**
 * A request longer than a model's context (a prompt, or a reward model's input): a
 * `RangeError`, so callers that map range errors to bad requests do so here too. The message
 * gives the length, the limit and where the limit was read.
 */
export class ContextLengthError extends RangeError {
  override name = "ContextLengthError";
}
