/**
 * The in-process policy: an ONNX decoder plus its tokenizer, generating K children of a node
 * as one batch from the node's cached prefix.
 *
 * @module
 */
import { type LoadOptions, OnnxCausalLM } from "./causal_lm.ts";
import { type KvBatch, selectRows, sliceRow } from "./kv.ts";
import { type ContextLength, contextLengthOf } from "./model_dir.ts";
import { type CacheNode, PrefixCache } from "./prefix_cache.ts";
import { logSumExp, makeSampler, Random, type Sampler, sampleToken, topK } from "./sampling.ts";
import { loadTokenizer } from "./tokenizer.ts";
import {
  ContextLengthError,
  type FinishReason,
  type GenerateOptions,
  type Generation,
  type PolicyModel,
  type ScoredContinuation,
  type Tokenizer,
} from "./types.ts";

/** Options of {@linkcode OnnxPolicy.load}. */
export interface PolicyLoadOptions extends LoadOptions {
  /** Byte budget of the KV prefix tree (default 512 MiB). */
  cacheBytes?: number;
  /** Model id to report (default: the directory name). */
  id?: string;
}

/** Where a prompt's cache stands after {@linkcode OnnxPolicy.prefill}. */
export interface Prefilled {
  /** The cached node of the whole prompt (its KV covers every prompt token). */
  node: CacheNode;
  /** Logits after the last prompt token. */
  logits: Float32Array;
}

const TAIL = 4; // prompt tokens decoded with new ones, so that new text joins correctly

/** A {@linkcode PolicyModel} running an ONNX decoder in this process. */
export class OnnxPolicy implements PolicyModel {
  /** Model id. */
  readonly id: string;
  /** The decoder. */
  readonly lm: OnnxCausalLM;
  /** Its tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The KV prefix tree. */
  readonly cache: PrefixCache;
  /**
   * The model's context from its configs (undefined: none declared, nothing enforced). A prompt
   * must leave room in it: {@linkcode OnnxPolicy.generate} stops at the context ("length") and
   * refuses a prompt that fills it ({@linkcode ContextLengthError}).
   */
  readonly context?: ContextLength;
  #tokensGenerated = 0;

  /**
   * @param lm An opened decoder.
   * @param tokenizer Its tokenizer.
   * @param options Cache budget and id.
   */
  constructor(
    lm: OnnxCausalLM,
    tokenizer: Tokenizer,
    options: { cacheBytes?: number; id?: string } = {},
  ) {
    this.lm = lm;
    this.tokenizer = tokenizer;
    this.cache = new PrefixCache(lm.layout, { maxBytes: options.cacheBytes });
    this.id = options.id ?? lm.files.dir.replace(/\/+$/, "").split("/").pop()!;
    this.context = contextLengthOf(lm.files);
  }

  /**
   * Open a model directory (ONNX graph, tokenizer, configs).
   *
   * @param dir The directory.
   * @param options dtype, threads, cache budget.
   */
  static async load(dir: string, options: PolicyLoadOptions = {}): Promise<OnnxPolicy> {
    const lm = await OnnxCausalLM.load(dir, options);
    try {
      const tokenizer = await loadTokenizer(dir);
      return new OnnxPolicy(lm, tokenizer, options);
    } catch (e) {
      await lm.close();
      throw e;
    }
  }

  /** Tokens generated since load. */
  get tokensGenerated(): number {
    return this.#tokensGenerated;
  }

  /**
   * Bring `prompt` into the cache: reuse its longest cached prefix, run only the rest.
   *
   * @param prompt Raw prompt text.
   * @returns The prompt's node and the logits after it.
   */
  async prefill(prompt: string): Promise<Prefilled> {
    const found = this.cache.lookup(prompt);
    if (found.text === prompt && found.lastLogits) return { node: found, logits: found.lastLogits };
    const rest = prompt.slice(found.text.length);
    const ids = found === this.cache.root
      ? this.tokenizer.encode(prompt)
      : [...found.ids, ...this.tokenizer.encode(rest, { addSpecialTokens: false })];
    if (ids.length === 0) {
      throw new RangeError("Cannot generate from an empty prompt: it encodes to no tokens");
    }
    this.#fits(ids.length, "the prompt");
    const past = this.cache.assemble(found, 1);
    const r = await this.lm.forward([ids.slice(found.kvEnd)], { past, keep: 1 });
    const logits = r.logits.slice(0, this.lm.graph.vocabSize);
    const segment = sliceRow(this.lm.layout, r.kv, {
      row: 0,
      start: found.kvEnd,
      end: ids.length,
    });
    const node = this.cache.insert(found, { text: prompt, ids, segment, lastLogits: logits });
    return { node, logits };
  }

  /** {@inheritDoc PolicyModel.generate} */
  async generate(prompt: string, options: GenerateOptions = {}): Promise<Generation[]> {
    const n = options.n ?? 1;
    const maxNewTokens = options.maxNewTokens ?? 128;
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`Cannot generate as 'n' must be an integer >= 1: current value is ${n}`);
    }
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
      throw new RangeError(
        `Cannot generate as 'maxNewTokens' must be an integer >= 1: current value is ${maxNewTokens}`,
      );
    }
    const sampler = makeSampler(options);
    options.signal?.throwIfAborted();
    const { node, logits } = await this.prefill(prompt);
    const room = this.context ? this.context.tokens - node.ids.length : Infinity;
    if (room < 1) {
      throw new ContextLengthError(
        `Cannot generate: the prompt is ${node.ids.length} tokens, which fills the model's context of ${
          this.context!.tokens
        } (${this.context!.source}); no room for new tokens`,
      );
    }
    const run = new BatchRun(this, {
      node,
      n,
      sampler,
      seed: options.seed ?? 0,
      stop: options.stop ?? [],
      maxNewTokens: Math.min(maxNewTokens, room),
    });
    const out = await run.execute(logits, options.signal);
    this.#tokensGenerated += out.reduce((s, g) => s + g.ids.length, 0);
    this.cache.evict();
    return out;
  }

  /** {@inheritDoc PolicyModel.score} */
  async score(
    prompt: string,
    continuation: string,
    options: { topK?: number; signal?: AbortSignal } = {},
  ): Promise<ScoredContinuation> {
    const k = options.topK ?? 20;
    options.signal?.throwIfAborted();
    const { node, logits } = await this.prefill(prompt);
    const cont = this.tokenizer.encode(continuation, { addSpecialTokens: false });
    this.#fits(node.ids.length + cont.length, "the prompt and the continuation");
    const rows: Float32Array[] = [logits];
    const V = this.lm.graph.vocabSize;
    if (cont.length > 1) {
      const past = this.cache.assemble(node, 1);
      const r = await this.lm.forward([cont.slice(0, -1)], { past, keep: cont.length - 1 });
      for (let i = 0; i < cont.length - 1; i++) rows.push(r.logits.subarray(i * V, (i + 1) * V));
    }
    this.cache.evict();
    return {
      promptIds: [...node.ids],
      tokens: cont.map((id, i) => {
        const lse = logSumExp(rows[i]);
        return {
          id,
          logprob: rows[i][id] - lse,
          top: topK(rows[i], k).map((t) => ({ id: t.id, logprob: t.value - lse })),
        };
      }),
    };
  }

  /** Close the session and drop the cache. */
  async close(): Promise<void> {
    this.cache.clear();
    await this.lm.close();
  }

  /** Throw a {@linkcode ContextLengthError} when `tokens` exceed the context. */
  #fits(tokens: number, what: string): void {
    if (this.context && tokens > this.context.tokens) {
      throw new ContextLengthError(
        `Cannot run ${this.id}: ${what} is ${tokens} tokens, more than the model's context of ${this.context.tokens} (${this.context.source})`,
      );
    }
  }
}

interface Child {
  ids: number[];
  logprobs: number[];
  text: string;
  rng: Random;
  done?: FinishReason;
}

/** One batched expansion: K children sampled together from a shared prefix. */
class BatchRun {
  readonly #p: OnnxPolicy;
  readonly #node: CacheNode;
  readonly #sampler: Sampler;
  readonly #stop: readonly string[];
  readonly #max: number;
  readonly #children: Child[];
  readonly #eos: Set<number>;
  readonly #tail: number[];
  readonly #tailText: string;

  constructor(
    policy: OnnxPolicy,
    o: {
      node: CacheNode;
      n: number;
      sampler: Sampler;
      seed: number;
      stop: readonly string[];
      maxNewTokens: number;
    },
  ) {
    this.#p = policy;
    this.#node = o.node;
    this.#sampler = o.sampler;
    this.#stop = o.stop.filter((s) => s.length > 0);
    this.#max = o.maxNewTokens;
    this.#eos = new Set(policy.tokenizer.eosTokenIds);
    this.#tail = o.node.ids.slice(-TAIL);
    this.#tailText = policy.tokenizer.decode(this.#tail, { skipSpecialTokens: true });
    this.#children = Array.from({ length: o.n }, (_, i) => ({
      ids: [],
      logprobs: [],
      text: "",
      rng: new Random(o.seed + i),
    }));
  }

  async execute(first: Float32Array, signal?: AbortSignal): Promise<Generation[]> {
    const lm = this.#p.lm;
    const V = lm.graph.vocabSize;
    const L = this.#node.kvEnd;
    for (const c of this.#children) this.#push(c, first);
    let active = this.#children.filter((c) => !c.done);
    let kv: KvBatch | undefined = active.length
      ? this.#p.cache.assemble(this.#node, active.length)
      : undefined;
    while (active.length && kv) {
      signal?.throwIfAborted();
      const r = await lm.forward(active.map((c) => [c.ids[c.ids.length - 1]]), { past: kv });
      kv = r.kv;
      active.forEach((c, b) => this.#push(c, r.logits.subarray(b * V, (b + 1) * V)));
      const keep: number[] = [];
      active.forEach((c, b) => {
        if (!c.done) keep.push(b);
        else this.#remember(c, kv!, b, L);
      });
      if (keep.length < active.length) {
        active = keep.map((b) => active[b]);
        kv = keep.length ? selectRows(lm.layout, kv, keep) : undefined;
      }
    }
    return this.#children.map((c) => ({
      text: c.text,
      ids: c.ids,
      logprobs: c.logprobs,
      finishReason: c.done ?? "length",
    }));
  }

  /** Sample the next token of child `c` and decide whether it is done. */
  #push(c: Child, logits: Float32Array): void {
    if (c.done) return;
    const t = sampleToken(logits, { sampler: this.#sampler, rng: c.rng });
    c.ids.push(t.id);
    c.logprobs.push(t.logprob);
    if (this.#eos.has(t.id)) {
      c.done = "eos";
      c.text = this.#decode(c.ids.slice(0, -1));
      return;
    }
    const before = c.text.length;
    c.text = this.#decode(c.ids);
    for (const s of this.#stop) {
      const at = c.text.indexOf(s, Math.max(0, before - s.length));
      if (at >= 0) {
        c.text = c.text.slice(0, at + s.length);
        c.done = "stop";
        return;
      }
    }
    if (c.ids.length >= this.#max) c.done = "length";
  }

  #decode(ids: number[]): string {
    const full = this.#p.tokenizer.decode([...this.#tail, ...ids], { skipSpecialTokens: true });
    return full.startsWith(this.#tailText) ? full.slice(this.#tailText.length) : full;
  }

  /** Keep a finished child's cache segment, so expanding it later starts from there. */
  #remember(c: Child, kv: KvBatch, row: number, L: number): void {
    if (c.done === "eos") return; // terminal: never expanded
    const end = L + c.ids.length - 1; // its last token was sampled, not yet fed
    if (end > kv.length) return;
    // Tokens that decode to no text (special tokens, ids past the tokenizer's vocabulary)
    // would give a node with its parent's text, which lookup() would then pick for the parent's
    // prompt: a later generate() of that prompt would continue after these tokens.
    const text = this.#decode(c.ids);
    if (text.length === 0) return;
    const segment = sliceRow(this.#p.lm.layout, kv, { row, start: L, end });
    this.#p.cache.insert(this.#node, {
      text: this.#node.text + text,
      ids: [...this.#node.ids, ...c.ids],
      segment,
    });
  }
}
