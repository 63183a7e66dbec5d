/**
 * A decoder-only language model in the ONNX layout optimum and transformers.js export:
 * `input_ids`, `attention_mask`, `position_ids`?, `past_key_values.{i}.key|value`,
 * `num_logits_to_keep`?, `use_cache_branch`? in; `logits`, `present.{i}.key|value` out.
 *
 * @module
 */
import { createSession, ort, type OrtSession } from "./_ort.ts";
import { halfsToFloats } from "./_half.ts";
import { emptyKv, type KvBatch, type KvData, type KvDtype, type KvLayout } from "./kv.ts";
import { type Dtype, type ModelFiles, resolveModelDir } from "./model_dir.ts";

/** Options of {@linkcode OnnxCausalLM.load}. */
export interface LoadOptions {
  /** Which weight file (`model.onnx`, `model_fp16.onnx`, ...). */
  dtype?: Dtype;
  /** Threads per operator (default: all cores). */
  threads?: number;
}

/** What one forward pass returns. */
export interface ForwardResult {
  /** Logits, [batch, kept, vocab] flattened, float32. */
  logits: Float32Array;
  /** Positions kept per row (the last `kept` fed positions). */
  kept: number;
  /** The cache after this pass (past + fed tokens). */
  kv: KvBatch;
}

/** The graph facts the runner needs. */
export interface DecoderGraph {
  /** KV shape. */
  layout: KvLayout;
  /** Vocabulary size (last dim of logits). */
  vocabSize: number;
  /** Whether the graph takes `position_ids`. */
  hasPositionIds: boolean;
  /** Whether the graph takes `attention_mask`. */
  hasAttentionMask: boolean;
  /** Whether the graph takes `num_logits_to_keep` (logits only for the last positions). */
  hasLogitsToKeep: boolean;
  /** Whether the graph is an optimum merged decoder (`use_cache_branch`). */
  hasCacheBranch: boolean;
  /** Element type of `logits`. */
  logitsType: KvDtype;
}

type Meta = { name: string; isTensor: boolean; type?: string; shape?: (number | string)[] };

/**
 * Read and check a decoder graph's inputs and outputs against the layout.
 *
 * @param files The resolved model directory (for messages and the config cross-check).
 * @param session The opened session.
 * @returns The graph facts.
 * @throws Error naming the file and what was expected when the graph does not fit.
 */
export function inspectDecoder(files: ModelFiles, session: OrtSession): DecoderGraph {
  const inputs = new Map((session.inputMetadata as Meta[]).map((m) => [m.name, m]));
  const outputs = new Map((session.outputMetadata as Meta[]).map((m) => [m.name, m]));
  const where = files.onnxPath;
  const inputList = [...inputs.keys()].join(", ");
  if ([...inputs.keys()].some((n) => /^past_\d+$/.test(n))) {
    throw new Error(
      `Cannot load ${where}: it has the ONNX Runtime GenAI input layout (past_0, past_1, ...; inputs: ${inputList}), which is not supported; export the model with Hugging Face optimum or transformers.js (inputs input_ids, attention_mask, position_ids, past_key_values.{i}.key/value)`,
    );
  }
  if (!inputs.has("input_ids")) {
    throw new Error(`Cannot load ${where}: expected an input 'input_ids', got inputs ${inputList}`);
  }
  let layers = 0;
  while (inputs.has(`past_key_values.${layers}.key`)) layers++;
  if (layers === 0) {
    throw new Error(
      `Cannot load ${where}: expected KV-cache inputs past_key_values.{i}.key/value (a decoder exported with past, e.g. optimum task text-generation-with-past), got inputs ${inputList}`,
    );
  }
  const key0 = inputs.get("past_key_values.0.key")!;
  const shape = key0.shape ?? [];
  const dtype = key0.type === "float16" ? "float16" : "float32";
  if (key0.type !== "float32" && key0.type !== "float16") {
    throw new Error(
      `Cannot load ${where}: past_key_values.0.key must be float32 or float16, got ${key0.type}`,
    );
  }
  const layout: KvLayout = {
    layers,
    kvHeads: dimOr(shape[1], files.config, "num_key_value_heads", where),
    headDim: dimOr(shape[3], files.config, "head_dim", where),
    dtype,
  };
  for (let i = 0; i < layers; i++) {
    for (const kind of ["key", "value"]) {
      if (!inputs.has(`past_key_values.${i}.${kind}`)) {
        throw new Error(`Cannot load ${where}: expected input past_key_values.${i}.${kind}`);
      }
      if (!outputs.has(`present.${i}.${kind}`)) {
        throw new Error(
          `Cannot load ${where}: expected output present.${i}.${kind}, got outputs ${
            [...outputs.keys()].join(", ")
          }`,
        );
      }
    }
  }
  const logits = outputs.get("logits");
  if (!logits) {
    throw new Error(
      `Cannot load ${where}: expected an output 'logits', got ${[...outputs.keys()].join(", ")}`,
    );
  }
  const vocabDim = logits.shape?.[2];
  const vocabSize = typeof vocabDim === "number"
    ? vocabDim
    : dimOr(undefined, files.config, "vocab_size", where);
  crossCheck(files, layout, vocabSize);
  return {
    layout,
    vocabSize,
    hasPositionIds: inputs.has("position_ids"),
    hasAttentionMask: inputs.has("attention_mask"),
    hasLogitsToKeep: inputs.has("num_logits_to_keep") || inputs.has("logits_to_keep"),
    hasCacheBranch: inputs.has("use_cache_branch"),
    logitsType: logits.type === "float16" ? "float16" : "float32",
  };
}

function dimOr(
  dim: number | string | undefined,
  config: Record<string, unknown> | undefined,
  field: string,
  where: string,
): number {
  if (typeof dim === "number" && dim > 0) return dim;
  let v = config?.[field];
  if (v === undefined && field === "head_dim" && config) {
    const hidden = config.hidden_size, heads = config.num_attention_heads;
    if (typeof hidden === "number" && typeof heads === "number") v = hidden / heads;
  }
  if (typeof v === "number" && Number.isInteger(v) && v > 0) return v;
  throw new Error(
    `Cannot load ${where}: the graph leaves '${field}' symbolic (${dim}) and config.json has no usable '${field}'`,
  );
}

function crossCheck(files: ModelFiles, layout: KvLayout, vocab: number): void {
  const c = files.config;
  const g = (files.genaiConfig?.model as Record<string, unknown> | undefined)?.decoder as
    | Record<string, unknown>
    | undefined;
  const checks: [string, unknown, number][] = [
    ["config.json num_hidden_layers", c?.num_hidden_layers ?? c?.n_layer, layout.layers],
    ["config.json num_key_value_heads", c?.num_key_value_heads, layout.kvHeads],
    ["config.json head_dim", c?.head_dim, layout.headDim],
    ["config.json vocab_size", c?.vocab_size, vocab],
    ["genai_config.json model.decoder.num_hidden_layers", g?.num_hidden_layers, layout.layers],
    ["genai_config.json model.decoder.num_key_value_heads", g?.num_key_value_heads, layout.kvHeads],
    ["genai_config.json model.decoder.head_size", g?.head_size, layout.headDim],
  ];
  for (const [what, declared, actual] of checks) {
    if (typeof declared === "number" && declared !== actual) {
      throw new Error(
        `Cannot load ${files.onnxPath}: ${what} is ${declared} but the graph has ${actual}`,
      );
    }
  }
}

/** A decoder LM session: one forward pass at a time, with an explicit KV cache. */
export class OnnxCausalLM {
  /** The directory's files. */
  readonly files: ModelFiles;
  /** Graph facts. */
  readonly graph: DecoderGraph;
  readonly #session: OrtSession;
  #positionsRun = 0;

  private constructor(files: ModelFiles, session: OrtSession, graph: DecoderGraph) {
    this.files = files;
    this.#session = session;
    this.graph = graph;
  }

  /**
   * Wrap an opened session (checked with {@linkcode inspectDecoder}); the model takes
   * ownership and releases it on failure.
   */
  static async fromSession(files: ModelFiles, session: OrtSession): Promise<OnnxCausalLM> {
    try {
      return new OnnxCausalLM(files, session, inspectDecoder(files, session));
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /**
   * Open a model directory.
   *
   * @param dir The directory (ONNX at its root or under `onnx/`).
   * @param options dtype and threads.
   */
  static async load(dir: string, options: LoadOptions = {}): Promise<OnnxCausalLM> {
    const files = await resolveModelDir(dir, { dtype: options.dtype });
    const session = await createSession(files.onnxPath, { threads: options.threads });
    return await OnnxCausalLM.fromSession(files, session);
  }

  /** Token positions run through the graph since load (batch rows counted): what caching saves. */
  get positionsRun(): number {
    return this.#positionsRun;
  }

  /** KV layout. */
  get layout(): KvLayout {
    return this.graph.layout;
  }

  /**
   * Run `tokens` (one row per batch entry, all rows the same length) after `past`.
   *
   * @param tokens Token ids, [batch][seq].
   * @param options The past cache (empty if absent) and how many last positions' logits to keep.
   * @returns Logits of the kept positions and the new cache.
   */
  async forward(
    tokens: readonly (readonly number[])[],
    options: { past?: KvBatch; keep?: number } = {},
  ): Promise<ForwardResult> {
    const batch = tokens.length;
    const seq = tokens[0]?.length ?? 0;
    if (batch === 0 || seq === 0 || tokens.some((r) => r.length !== seq)) {
      throw new RangeError(
        `Cannot run forward as 'tokens' must be a non-empty batch of equal-length rows`,
      );
    }
    const { layout } = this.graph;
    const past = options.past ?? emptyKv(layout, batch);
    if (past.batch !== batch) {
      throw new RangeError(
        `Cannot run forward as the past cache has ${past.batch} rows and tokens ${batch}`,
      );
    }
    const keep = Math.min(Math.max(1, options.keep ?? 1), seq);
    this.#positionsRun += batch * seq;
    const feeds = this.#feeds(tokens, past, keep);
    const out = await this.#session.run(feeds);
    return { logits: this.#logits(out.logits, keep), kept: keep, kv: this.#presents(out, past) };
  }

  #feeds(tokens: readonly (readonly number[])[], past: KvBatch, keep: number) {
    const g = this.graph;
    const batch = tokens.length, seq = tokens[0].length, total = past.length + seq;
    const feeds: Record<string, ort.Tensor> = {};
    const ids = new BigInt64Array(batch * seq);
    tokens.forEach((row, b) => row.forEach((t, i) => ids[b * seq + i] = BigInt(t)));
    feeds.input_ids = new ort.Tensor("int64", ids, [batch, seq]);
    if (g.hasAttentionMask) {
      feeds.attention_mask = new ort.Tensor("int64", new BigInt64Array(batch * total).fill(1n), [
        batch,
        total,
      ]);
    }
    if (g.hasPositionIds) {
      const pos = new BigInt64Array(batch * seq);
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < seq; i++) pos[b * seq + i] = BigInt(past.length + i);
      }
      feeds.position_ids = new ort.Tensor("int64", pos, [batch, seq]);
    }
    if (g.hasLogitsToKeep) {
      const name = this.#session.inputNames.includes("num_logits_to_keep")
        ? "num_logits_to_keep"
        : "logits_to_keep";
      feeds[name] = new ort.Tensor("int64", BigInt64Array.of(BigInt(keep)), []);
    }
    if (g.hasCacheBranch) {
      feeds.use_cache_branch = new ort.Tensor("bool", Uint8Array.of(past.length > 0 ? 1 : 0), [1]);
    }
    const { kvHeads, headDim, dtype } = g.layout;
    const dims = [batch, kvHeads, past.length, headDim];
    for (let l = 0; l < g.layout.layers; l++) {
      feeds[`past_key_values.${l}.key`] = new ort.Tensor(dtype, past.keys[l], dims);
      feeds[`past_key_values.${l}.value`] = new ort.Tensor(dtype, past.values[l], dims);
    }
    return feeds;
  }

  #logits(t: ort.Tensor, keep: number): Float32Array {
    const [batch, positions, vocab] = t.dims as number[];
    const data = t.data as Float32Array | Uint16Array;
    const start = positions - keep;
    if (start === 0) {
      return data instanceof Uint16Array ? halfsToFloats(data) : data as Float32Array;
    }
    const out = new Float32Array(batch * keep * vocab);
    for (let b = 0; b < batch; b++) {
      const from = (b * positions + start) * vocab;
      const rows = data instanceof Uint16Array
        ? halfsToFloats(data, from, from + keep * vocab)
        : data.subarray(from, from + keep * vocab);
      out.set(rows, b * keep * vocab);
    }
    return out;
  }

  #presents(out: Record<string, ort.Tensor>, past: KvBatch): KvBatch {
    const keys: KvData[] = [], values: KvData[] = [];
    for (let l = 0; l < this.graph.layout.layers; l++) {
      keys.push(out[`present.${l}.key`].data as KvData);
      values.push(out[`present.${l}.value`].data as KvData);
    }
    const length = (out["present.0.key"].dims as number[])[2];
    return { batch: past.batch, length, keys, values };
  }

  /** Release the session. */
  async close(): Promise<void> {
    await this.#session.release();
  }
}
