/**
 * Reward models in ONNX, in the three head layouts users bring:
 * - `token-classification` / `qwen-prm`: Qwen2.5-Math-PRM, class 1 at every `<extra_0>`;
 * - `lm-tokens` / `math-shepherd`: a causal LM, softmax over the "+"/"-" tokens at each tag;
 * - `sequence-classification` / `paper`: one input per step in the paper's prompt.
 *
 * Graphs with a KV cache are scored incrementally through a prefix tree: scoring a trajectory
 * with one more step only runs the new step's tokens. Graphs without one run whole sequences;
 * the paper format batches every step's prompt into one run. Scores of prefixes already seen
 * are remembered, so re-scoring a growing trajectory never recomputes old steps.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import {
  type CacheNode,
  type ContextLength,
  ContextLengthError,
  contextLengthOf,
  type Dtype,
  loadOnnxModel,
  loadTokenizer,
  OnnxCausalLM,
  type OnnxSequenceModel,
  PrefixCache,
  readJsonIfAny,
  sliceRow,
  type Tokenizer,
} from "../inference/mod.ts";
import { checkScores } from "./aggregate.ts";
import { paperPrompt } from "./prompts.ts";
import type { RewardConfig, RewardModel, ScoreOptions } from "./types.ts";

/** The Qwen2.5-Math-PRM system prompt. */
export const QWEN_PRM_SYSTEM =
  "Please reason step by step, and put your final answer within \\boxed{}.";

/** The head layouts `reward.json` and `--head` name. */
export const REWARD_HEADS = [
  "token-classification",
  "lm-tokens",
  "sequence-classification",
] as const;
/** The input formats `reward.json` and `--format` name. */
export const REWARD_INPUT_FORMATS = ["qwen-prm", "math-shepherd", "paper"] as const;

const configSchema = z.object({
  head: z.enum(REWARD_HEADS),
  format: z.enum(REWARD_INPUT_FORMATS),
  step_tag: z.string().min(1).optional(),
  label_tokens: z.tuple([z.string().min(1), z.string().min(1)]).optional(),
  step_token: z.string().min(1).optional(),
  system_prompt: z.string().optional(),
});

const VALID = new Set([
  "token-classification/qwen-prm",
  "lm-tokens/math-shepherd",
  "sequence-classification/paper",
]);

/** Options of {@linkcode OnnxReward.load}: fields of `reward.json` override it. */
export interface RewardLoadOptions extends Partial<RewardConfig> {
  /** Weight file choice. */
  dtype?: Dtype;
  /** Threads per operator. */
  threads?: number;
  /** KV prefix-tree budget for incremental scoring (default 256 MiB). */
  cacheBytes?: number;
  /**
   * Score incrementally (default true): remember scores of seen prefixes and reuse the KV
   * cache of their tokens. False re-runs every text whole (for comparison and debugging).
   */
  incremental?: boolean;
}

/**
 * Read `reward.json` (if any) and apply overrides; validate.
 *
 * @param dir The model directory.
 * @param overrides Fields given on the command line.
 * @returns The complete configuration.
 * @throws Error naming the file or the field that is wrong.
 */
export async function readRewardConfig(
  dir: string,
  overrides: Partial<RewardConfig> = {},
): Promise<RewardConfig> {
  const path = join(dir, "reward.json");
  const stat = await Deno.stat(dir).catch(() => undefined);
  if (!stat?.isDirectory) {
    throw new Error(
      `Cannot load reward model: ${dir} is ${
        stat ? "not a directory" : "not there (no such directory)"
      }`,
    );
  }
  const fromFile = await readJsonIfAny(path) ?? {};
  const defined = Object.fromEntries(
    Object.entries(overrides).filter(([, v]) => v !== undefined),
  );
  const merged = { ...fromFile, ...defined };
  if (merged.head === undefined || merged.format === undefined) {
    throw new Error(
      `Cannot load reward model ${dir}: no head/format (${path} ${
        Object.keys(fromFile).length ? "lacks them" : "does not exist"
      }); write them there ({"head": "token-classification|lm-tokens|sequence-classification", "format": "qwen-prm|math-shepherd|paper"}, README "Reward models"), or pass --head and the format (--format in score-steps, --format-reward in agent)`,
    );
  }
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `Cannot load reward model ${dir}: field '${issue.path.join(".")}' ${issue.message}`,
    );
  }
  const c = parsed.data as RewardConfig;
  if (!VALID.has(`${c.head}/${c.format}`)) {
    throw new Error(
      `Cannot load reward model ${dir}: head '${c.head}' does not go with format '${c.format}' (use token-classification/qwen-prm, lm-tokens/math-shepherd or sequence-classification/paper)`,
    );
  }
  return c;
}

/** Most rows in one run of the paper format (rows of one token length, so no padding). */
const SCORE_BATCH = 64;

/** A reward model in this process. */
export class OnnxReward implements RewardModel {
  /** Model id (the directory name). */
  readonly id: string;
  /** Head layout and format. */
  readonly config: RewardConfig;
  readonly #tok: Tokenizer;
  readonly #model: OnnxCausalLM | OnnxSequenceModel;
  readonly #cache?: PrefixCache;
  readonly #memo = new Map<string, number>();
  readonly #memoMax = 50_000;
  readonly #incremental: boolean;
  readonly #tagId?: number;
  readonly #labelIds?: [number, number];
  /**
   * The model's context from its configs (undefined: none declared). An input longer than it
   * is refused with a {@linkcode ContextLengthError} rather than run past the positions the
   * model was trained on (and at a memory cost that grows with the square of the length).
   */
  readonly context?: ContextLength;

  private constructor(
    dir: string,
    parts: {
      config: RewardConfig;
      tokenizer: Tokenizer;
      model: OnnxCausalLM | OnnxSequenceModel;
      cacheBytes?: number;
      incremental?: boolean;
    },
  ) {
    this.id = dir.replace(/\/+$/, "").split("/").pop()!;
    this.config = parts.config;
    this.#tok = parts.tokenizer;
    this.#model = parts.model;
    this.#incremental = parts.incremental ?? true;
    this.context = contextLengthOf(parts.model.files);
    if (parts.model instanceof OnnxCausalLM && this.#incremental) {
      this.#cache = new PrefixCache(parts.model.layout, {
        maxBytes: parts.cacheBytes ?? 256 * 1024 * 1024,
      });
    }
    if (parts.config.format !== "paper") {
      this.#tagId = this.#singleId(this.#tagText(), "the step tag");
    }
    if (parts.config.format === "math-shepherd") {
      const [good, bad] = parts.config.label_tokens ?? ["+", "-"];
      this.#labelIds = [this.#labelId(good), this.#labelId(bad)];
    }
  }

  /**
   * Open a reward model directory.
   *
   * @param dir The directory (`reward.json` optional when options give head and format).
   * @param options Overrides of `reward.json`, dtype, threads.
   */
  static async load(dir: string, options: RewardLoadOptions = {}): Promise<OnnxReward> {
    const { dtype, threads, cacheBytes, incremental, ...overrides } = options;
    const config = await readRewardConfig(dir, overrides);
    const tokenizer = await loadTokenizer(dir);
    const model = await loadOnnxModel(dir, { dtype, threads });
    try {
      return new OnnxReward(dir, { config, tokenizer, model, cacheBytes, incremental });
    } catch (e) {
      await model.close();
      throw e;
    }
  }

  /** Token positions run through the graph since load (what incremental scoring saves). */
  get positionsRun(): number {
    const m = this.#model;
    return m instanceof OnnxCausalLM ? m.positionsRun : m.positionsRun;
  }

  /** {@inheritDoc RewardModel.scoreSteps} */
  async scoreSteps(
    question: string,
    steps: readonly string[],
    options: ScoreOptions = {},
  ): Promise<number[]> {
    return (await this.scoreMany(question, [steps], options))[0];
  }

  /**
   * {@inheritDoc RewardModel.scoreMany}
   *
   * The paper format runs every prompt not scored before, of all the solutions, together
   * (same-length prompts batched); the other formats score the solutions one after another.
   */
  async scoreMany(
    question: string,
    solutions: readonly (readonly string[])[],
    options: ScoreOptions = {},
  ): Promise<number[][]> {
    options.signal?.throwIfAborted();
    const texts = solutions.map((steps) =>
      steps.map((_, k) => this.#prefixText(question, steps, k))
    );
    const unseen = (t: string[]) => [...new Set(t.filter((x) => !this.#memo.has(x)))];
    if (this.config.format === "paper") {
      if (!this.#incremental) this.#memo.clear();
      const missing = unseen(texts.flat());
      if (missing.length) await this.#scorePaper(missing);
    } else {
      for (const t of texts) {
        if (!this.#incremental) this.#memo.clear();
        if (unseen(t).length === 0) continue;
        if (this.#cache) await this.#scoreCached(t);
        else await this.#scoreWhole(t);
      }
    }
    return texts.map((t) => checkScores(t.map((x) => this.#memo.get(x)!), this.id));
  }

  /** Release the session and caches. */
  async close(): Promise<void> {
    this.#cache?.clear();
    this.#memo.clear();
    await this.#model.close();
  }

  /** Text whose last token is step k's tag (or, for the paper format, step k's prompt). */
  #prefixText(question: string, steps: readonly string[], k: number): string {
    const c = this.config;
    switch (c.format) {
      case "paper":
        return paperPrompt(question, steps.slice(0, k), steps[k]);
      case "math-shepherd": {
        const tag = this.#tagText();
        return `${question} ${steps.slice(0, k + 1).map((s) => s + tag).join("\n")}`;
      }
      case "qwen-prm": {
        const tag = this.#tagText();
        const full = this.#tok.applyChatTemplate([
          { role: "system", content: c.system_prompt ?? QWEN_PRM_SYSTEM },
          { role: "user", content: question },
          { role: "assistant", content: steps.slice(0, k + 1).join(tag) + tag },
        ]);
        return full.slice(0, full.lastIndexOf(tag) + tag.length);
      }
    }
  }

  #tagText(): string {
    return this.config.format === "math-shepherd"
      ? this.config.step_tag ?? " ки"
      : this.config.step_token ?? "<extra_0>";
  }

  #singleId(token: string, what: string): number {
    const direct = this.#tok.tokenToId(token);
    if (direct !== undefined) return direct;
    const ids = this.#tok.encode(token, { addSpecialTokens: false });
    if (ids.length === 0) {
      throw new Error(`Cannot load reward model ${this.id}: ${what} '${token}' encodes to nothing`);
    }
    return ids[ids.length - 1];
  }

  /** A label token's id: it must be one token of the vocabulary (its logit is read). */
  #labelId(token: string): number {
    const direct = this.#tok.tokenToId(token);
    if (direct !== undefined) return direct;
    const ids = this.#tok.encode(token, { addSpecialTokens: false });
    if (ids.length !== 1) {
      throw new RangeError(
        `Cannot load reward model ${this.id}: label token '${token}' must be one token of its vocabulary, it encodes to ${ids.length} tokens [${ids}]`,
      );
    }
    return ids[0];
  }

  /** Score of one position's logits row for the tag-based heads. */
  #rowScore(row: Float32Array): number {
    if (this.#labelIds) {
      const [g, b] = this.#labelIds;
      return 1 / (1 + Math.exp(row[b] - row[g]));
    }
    if (row.length === 1) return clip01(row[0]);
    const m = Math.max(row[0], row[1]);
    const e0 = Math.exp(row[0] - m), e1 = Math.exp(row[1] - m);
    return e1 / (e0 + e1);
  }

  #remember(text: string, score: number): void {
    if (this.#memo.size >= this.#memoMax) {
      this.#memo.delete(this.#memo.keys().next().value!);
    }
    this.#memo.set(text, score);
  }

  /**
   * Paper format: one prompt per missing step. Prompts of the same token length run as one
   * batch (at most {@linkcode SCORE_BATCH} rows), others apart: no padding. Measured on the
   * bundled 128-wide reward models (one thread, 64 solutions of 8 steps): padded batches of
   * 8 rows took 1.4x and of 64 rows 5x the time of single rows, with 2.5x and 12x the memory.
   */
  async #scorePaper(texts: readonly string[]): Promise<void> {
    if (this.#model instanceof OnnxCausalLM) {
      throw new Error(
        `Cannot score with ${this.id}: a sequence-classification head is expected to have no KV-cache inputs`,
      );
    }
    const model = this.#model;
    const byLength = new Map<number, { text: string; ids: number[] }[]>();
    for (const text of texts) {
      const ids = this.#fits(this.#tok.encode(text));
      const group = byLength.get(ids.length) ?? [];
      group.push({ text, ids });
      byLength.set(ids.length, group);
    }
    for (const group of byLength.values()) {
      for (let i = 0; i < group.length; i += SCORE_BATCH) {
        const chunk = group.slice(i, i + SCORE_BATCH);
        const out = await model.run(chunk.map((r) => r.ids), { padId: this.#tok.padTokenId });
        const labels = out.dims[out.dims.length - 1];
        if (out.dims.length !== 2) {
          throw new Error(
            `Cannot score with ${this.id}: a sequence-classification head must output logits [batch, labels], got [${out.dims}]`,
          );
        }
        chunk.forEach(({ text }, j) => {
          this.#remember(text, this.#rowScore(out.data.subarray(j * labels, (j + 1) * labels)));
        });
      }
    }
  }

  /** Tag heads without incremental state: run the longest text once, read every tag. */
  async #scoreWhole(texts: string[]): Promise<void> {
    const ids = this.#fits(this.#tok.encode(texts[texts.length - 1]));
    const out = this.#model instanceof OnnxCausalLM
      ? await this.#runCausalWhole(ids)
      : await this.#model.run([ids]);
    if (out.dims.length !== 3) {
      throw new Error(
        `Cannot score with ${this.id}: expected logits [batch, seq, labels], got [${out.dims}]`,
      );
    }
    const V = out.dims[2];
    this.#readTags(ids, 0, texts, (p) => out.data.subarray(p * V, (p + 1) * V));
  }

  async #runCausalWhole(ids: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    const lm = this.#model as OnnxCausalLM;
    const r = await lm.forward([ids], { keep: ids.length });
    return { data: r.logits, dims: [1, ids.length, lm.graph.vocabSize] };
  }

  /** Tag heads with a KV cache: feed only what the prefix tree lacks, step by step. */
  async #scoreCached(texts: string[]): Promise<void> {
    const lm = this.#model as OnnxCausalLM;
    const cache = this.#cache!;
    const V = lm.graph.vocabSize;
    for (let k = 0; k < texts.length; k++) {
      if (this.#memo.has(texts[k])) continue;
      const found: CacheNode = cache.lookup(texts[k]);
      const rest = texts[k].slice(found.text.length);
      const ids = this.#fits(
        found === cache.root
          ? this.#tok.encode(texts[k])
          : [...found.ids, ...this.#tok.encode(rest, { addSpecialTokens: false })],
      );
      const start = Math.min(found.kvEnd, ids.length - 1);
      const past = start === found.kvEnd ? cache.assemble(found, 1) : undefined;
      const from = past ? start : 0;
      const r = await lm.forward([ids.slice(from)], { past, keep: ids.length - from });
      this.#readTags(
        ids,
        from,
        texts,
        (p) => r.logits.subarray((p - from) * V, (p - from + 1) * V),
      );
      const segment = sliceRow(lm.layout, r.kv, { row: 0, start: found.kvEnd, end: ids.length });
      if (past) cache.insert(found, { text: texts[k], ids, segment });
    }
    cache.evict();
  }

  /** `ids`, when they fit the context; else a {@linkcode ContextLengthError}. */
  #fits(ids: number[]): number[] {
    if (this.context && ids.length > this.context.tokens) {
      throw new ContextLengthError(
        `Cannot score with ${this.id}: the input (question and steps in the ${this.config.format} format) is ${ids.length} tokens, more than the model's context of ${this.context.tokens} (${this.context.source})`,
      );
    }
    return ids;
  }

  /** Score every tag position at or after `from`: the j-th tag of `ids` is step j. */
  #readTags(
    ids: readonly number[],
    from: number,
    texts: string[],
    row: (position: number) => Float32Array,
  ): void {
    let j = 0;
    for (let p = 0; p < ids.length && j < texts.length; p++) {
      if (ids[p] !== this.#tagId) continue;
      if (p >= from) this.#remember(texts[j], this.#rowScore(row(p)));
      j++;
    }
  }
}

function clip01(x: number): number {
  return Number.isNaN(x) ? NaN : Math.min(1, Math.max(0, x));
}
