/**
 * The worker side of {@linkcode ServedPolicy}: an {@linkcode OnnxPolicy} plus what a server
 * needs beyond the `PolicyModel` interface: top log-probabilities of generated tokens, prompt
 * log-probabilities (`echo`), dropping a search's KV cache, and the cache's size after every
 * call (so `/metrics` never waits behind a generation for it).
 *
 * This module is loaded in a Web Worker by `WorkerHost`; it runs the ONNX session there.
 *
 * @module
 */
import {
  type GenerateOptions,
  type Generation,
  logSumExp,
  OnnxPolicy,
  type PolicyLoadOptions,
  type ScoredContinuation,
  topK,
} from "../inference/mod.ts";

/** What every call returns: its value and the KV cache size after it. */
export interface WithStats<T> {
  /** The call's result. */
  value: T;
  /** Bytes held by the KV prefix cache after the call. */
  cacheBytes: number;
}

/** One alternative token and its log-probability. */
export interface TopToken {
  /** Token id. */
  id: number;
  /** Natural-log probability. */
  logprob: number;
}

/** Generations with, when asked, the top alternatives of every generated token. */
export interface GenerateResult {
  /** The continuations. */
  generations: Generation[];
  /** Per generation, per token, the `topLogprobs` most likely tokens (absent when not asked). */
  top?: TopToken[][][];
}

/** Prompt log-probabilities, as `echo` with `max_tokens: 0` returns them. */
export interface EchoResult {
  /** The prompt's token ids. */
  ids: number[];
  /** Log-probability of each prompt token given those before it (null for the first). */
  logprobs: (number | null)[];
  /** The `topK` most likely tokens at each position (null for the first). */
  top: (TopToken[] | null)[];
}

/** Options of {@linkcode PolicyTarget.generate}: the usual ones and `topLogprobs`. */
export type TargetGenerateOptions = GenerateOptions & { topLogprobs?: number };

/** The object living in the worker. */
export class PolicyTarget {
  /** Model id. */
  readonly id: string;
  readonly #p: OnnxPolicy;

  private constructor(policy: OnnxPolicy) {
    this.#p = policy;
    this.id = policy.id;
  }

  /**
   * Load the policy (in the worker).
   *
   * @param dir Model directory.
   * @param options As for `OnnxPolicy.load`.
   */
  static async load(dir: string, options: PolicyLoadOptions = {}): Promise<PolicyTarget> {
    return new PolicyTarget(await OnnxPolicy.load(dir, options));
  }

  #stats<T>(value: T): WithStats<T> {
    return { value, cacheBytes: this.#p.cache.bytes };
  }

  /** Generate; with `topLogprobs > 0`, also the top tokens of every generated position. */
  async generate(
    prompt: string,
    options: TargetGenerateOptions = {},
  ): Promise<WithStats<GenerateResult>> {
    const { topLogprobs = 0, ...rest } = options;
    const generations = await this.#p.generate(prompt, rest);
    if (topLogprobs <= 0) return this.#stats({ generations });
    const top: TopToken[][][] = [];
    for (const g of generations) {
      options.signal?.throwIfAborted();
      top.push(await this.#topOf(prompt, g.ids, topLogprobs));
    }
    return this.#stats({ generations, top });
  }

  /** Teacher-forced top tokens at each position of `ids` after `prompt` (uses the cache). */
  async #topOf(prompt: string, ids: readonly number[], k: number): Promise<TopToken[][]> {
    if (ids.length === 0) return [];
    const p = this.#p;
    const { node, logits } = await p.prefill(prompt);
    const rows: Float32Array[] = [logits];
    const V = p.lm.graph.vocabSize;
    if (ids.length > 1) {
      const past = p.cache.assemble(node, 1);
      const r = await p.lm.forward([ids.slice(0, -1)], { past, keep: ids.length - 1 });
      for (let i = 0; i < ids.length - 1; i++) rows.push(r.logits.subarray(i * V, (i + 1) * V));
    }
    return rows.map((row) => {
      const lse = logSumExp(row);
      return topK(row, k).map((t) => ({ id: t.id, logprob: t.value - lse }));
    });
  }

  /** {@inheritDoc PolicyModel.score} */
  async score(
    prompt: string,
    continuation: string,
    options: { topK?: number; signal?: AbortSignal } = {},
  ): Promise<WithStats<ScoredContinuation>> {
    return this.#stats(await this.#p.score(prompt, continuation, options));
  }

  /** Prompt log-probabilities of a text or of token ids (one forward pass, no cache). */
  async echo(
    prompt: string | number[],
    options: { addSpecialTokens?: boolean; topK?: number; signal?: AbortSignal } = {},
  ): Promise<WithStats<EchoResult>> {
    const p = this.#p;
    const ids = typeof prompt === "string"
      ? p.tokenizer.encode(prompt, { addSpecialTokens: options.addSpecialTokens ?? true })
      : prompt;
    if (ids.length === 0) throw new RangeError("Cannot echo an empty prompt: it has no tokens");
    const V = p.lm.graph.vocabSize;
    if (ids.some((id) => !Number.isInteger(id) || id < 0 || id >= V)) {
      throw new RangeError(`Cannot echo as a token id is outside the vocabulary [0, ${V})`);
    }
    options.signal?.throwIfAborted();
    const r = await p.lm.forward([ids], { keep: ids.length });
    const k = options.topK ?? 0;
    const logprobs: (number | null)[] = [null];
    const top: (TopToken[] | null)[] = [null];
    for (let i = 1; i < ids.length; i++) {
      const row = r.logits.subarray((i - 1) * V, i * V);
      const lse = logSumExp(row);
      logprobs.push(row[ids[i]] - lse);
      top.push(topK(row, k).map((t) => ({ id: t.id, logprob: t.value - lse })));
    }
    return this.#stats({ ids: [...ids], logprobs, top });
  }

  /**
   * Drop every cached node whose text starts with `prefix` (a search's whole tree, also the
   * chains that concurrent searches of the same question re-rooted after an earlier forget).
   *
   * @returns How many subtrees were dropped.
   */
  forget(prefix: string): WithStats<number> {
    return this.#stats(this.#p.cache.removeUnder(prefix));
  }

  /** Cache size now. */
  stats(): WithStats<null> {
    return this.#stats(null);
  }

  /** Close the session. */
  close(): Promise<void> {
    return this.#p.close();
  }
}
