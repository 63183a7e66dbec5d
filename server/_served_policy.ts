/**
 * The policy a server runs: the ONNX model in a worker thread (so the event loop, and with it
 * `/health`, stays free during a search) plus a tokenizer on this thread, and the optional
 * abilities the OpenAI-compatible routes use when a backend has them.
 *
 * @module
 */
import {
  type GenerateOptions,
  type Generation,
  type HfTokenizer,
  loadTokenizer,
  type PolicyLoadOptions,
  type PolicyModel,
  type ScoredContinuation,
  type Tokenizer,
  WorkerHost,
} from "../inference/mod.ts";
import type {
  EchoResult,
  GenerateResult,
  TargetGenerateOptions,
  WithStats,
} from "./_policy_target.ts";

export type { EchoResult, GenerateResult, TopToken } from "./_policy_target.ts";

/**
 * A {@linkcode PolicyModel} with what a server may use beyond it. Every extra is optional:
 * a remote policy or a test double has none, and the routes that need one say so (400).
 */
export interface ServerPolicy extends PolicyModel {
  /** The model's tokenizer (token strings of logprobs, chat templates). */
  readonly tokenizer?: Tokenizer;
  /** Token ids the tokenizer knows (ids are `0 .. vocabSize - 1`); absent when unknown. */
  readonly vocabSize?: number;
  /** Bytes of KV cache held now (for `/metrics`). */
  readonly cacheBytes?: number;
  /** Generate, with the top alternatives of every generated token. */
  generateWithTop?(
    prompt: string,
    options: GenerateOptions & { topLogprobs: number },
  ): Promise<GenerateResult>;
  /** Prompt log-probabilities (`echo` with `max_tokens: 0`). */
  echo?(
    prompt: string | number[],
    options?: { addSpecialTokens?: boolean; topK?: number; signal?: AbortSignal },
  ): Promise<EchoResult>;
  /** Free the KV cache of a prompt and all its continuations (a cancelled search's tree). */
  forget?(prefix: string): Promise<void>;
}

/** An ONNX policy in a worker thread, with every {@linkcode ServerPolicy} extra. */
export class ServedPolicy implements ServerPolicy {
  /** Model id. */
  readonly id: string;
  /** The tokenizer (a copy on this thread). */
  readonly tokenizer: Tokenizer;
  /** {@inheritDoc ServerPolicy.vocabSize} */
  readonly vocabSize: number;
  readonly #host: WorkerHost;
  #cacheBytes = 0;

  private constructor(host: WorkerHost, tokenizer: HfTokenizer) {
    this.#host = host;
    this.id = host.id;
    this.tokenizer = tokenizer;
    this.vocabSize = tokenizer.vocabSize;
  }

  /**
   * Load a model directory in a new worker.
   *
   * @param dir The model directory.
   * @param options As for `OnnxPolicy.load` (dtype, threads, cache budget, id).
   * @returns The policy, once the worker has loaded the model.
   */
  static async load(dir: string, options: PolicyLoadOptions = {}): Promise<ServedPolicy> {
    const tokenizer = await loadTokenizer(dir);
    const host = await WorkerHost.start({
      module: new URL("./_policy_target.ts", import.meta.url).href,
      factory: "PolicyTarget.load",
      args: [dir, options],
    });
    return new ServedPolicy(host, tokenizer);
  }

  /** KV cache bytes after the last call that finished. */
  get cacheBytes(): number {
    return this.#cacheBytes;
  }

  async #call<T>(method: string, args: unknown[]): Promise<T> {
    const r = await this.#host.call<WithStats<T>>(method, args);
    this.#cacheBytes = r.cacheBytes;
    return r.value;
  }

  /** {@inheritDoc PolicyModel.generate} */
  async generate(prompt: string, options: GenerateOptions = {}): Promise<Generation[]> {
    return (await this.#call<GenerateResult>("generate", [prompt, options])).generations;
  }

  /** {@inheritDoc ServerPolicy.generateWithTop} */
  generateWithTop(
    prompt: string,
    options: GenerateOptions & { topLogprobs: number },
  ): Promise<GenerateResult> {
    return this.#call<GenerateResult>("generate", [prompt, options as TargetGenerateOptions]);
  }

  /** {@inheritDoc PolicyModel.score} */
  score(
    prompt: string,
    continuation: string,
    options: { topK?: number; signal?: AbortSignal } = {},
  ): Promise<ScoredContinuation> {
    return this.#call("score", [prompt, continuation, options]);
  }

  /** {@inheritDoc ServerPolicy.echo} */
  echo(
    prompt: string | number[],
    options: { addSpecialTokens?: boolean; topK?: number; signal?: AbortSignal } = {},
  ): Promise<EchoResult> {
    return this.#call("echo", [prompt, options]);
  }

  /** {@inheritDoc ServerPolicy.forget} */
  async forget(prefix: string): Promise<void> {
    await this.#call("forget", [prefix]);
  }

  /** Close the model and stop the worker. */
  close(): Promise<void> {
    return this.#host.close();
  }
}

/** What {@linkcode counted} reports. */
export interface PolicyCounters {
  /** Tokens of every finished generation. */
  onTokens(n: number): void;
  /** +1 when a model call starts, -1 when it settles. */
  onInFlight(delta: number): void;
}

/**
 * The same policy, reporting tokens generated and calls in flight.
 *
 * @param policy The policy.
 * @param counters Where to report.
 * @returns A {@linkcode ServerPolicy} with the same extras.
 */
export function counted(policy: ServerPolicy, counters: PolicyCounters): ServerPolicy {
  const track = async <T>(run: () => Promise<T>, tokens: (v: T) => number): Promise<T> => {
    counters.onInFlight(1);
    try {
      const v = await run();
      counters.onTokens(tokens(v));
      return v;
    } finally {
      counters.onInFlight(-1);
    }
  };
  const sum = (gs: Generation[]) => gs.reduce((s, g) => s + g.ids.length, 0);
  const out: ServerPolicy = {
    id: policy.id,
    get tokenizer() {
      return policy.tokenizer;
    },
    get cacheBytes() {
      return policy.cacheBytes;
    },
    get vocabSize() {
      return policy.vocabSize;
    },
    generate: (prompt, options) => track(() => policy.generate(prompt, options), sum),
    score: (prompt, cont, options) => track(() => policy.score(prompt, cont, options), () => 0),
    close: () => policy.close(),
  };
  const withTop = policy.generateWithTop?.bind(policy);
  if (withTop) {
    out.generateWithTop = (prompt, options) =>
      track(() => withTop(prompt, options), (r) => sum(r.generations));
  }
  const echo = policy.echo?.bind(policy);
  if (echo) out.echo = (prompt, options) => track(() => echo(prompt, options), () => 0);
  const forget = policy.forget?.bind(policy);
  if (forget) out.forget = (prefix) => forget(prefix);
  return out;
}
