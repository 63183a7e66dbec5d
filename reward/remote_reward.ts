/**
 * A {@linkcode RewardModel} served by vLLM's pooling endpoints (`POST /classify` or
 * `POST /pooling`).
 *
 * @module
 */
import { z } from "zod";
import {
  firstModelId,
  type HttpOptions,
  httpOptionsOf,
  postJson,
  RemoteError,
  serverRoot,
} from "../inference/mod.ts";
import { paperPrompt, qwenPrmPrompt } from "./prompts.ts";
import type { RewardModel, ScoreOptions } from "./types.ts";

/** Which endpoint a {@linkcode RemoteReward} calls. */
export type RemoteRewardApi = "classify" | "pooling";

/** Options of {@linkcode RemoteReward}. */
export interface RemoteRewardOptions {
  /** Server root or its `/v1` URL, e.g. `http://127.0.0.1:8000`. */
  baseUrl: string;
  /**
   * Model name sent with every request. Required by the constructor;
   * {@linkcode RemoteReward.connect} takes the first id of `GET /v1/models` when it is absent.
   */
  model?: string;
  /**
   * `"classify"` (default): one input per step in the paper's format ({@linkcode paperPrompt}),
   * for a sequence classifier with 2 labels (score = probs[1]) or 1 regression output (score =
   * probs[0] clipped to [0, 1]). `"pooling"`: one input per solution in Qwen2.5-Math-PRM's format
   * ({@linkcode qwenPrmPrompt}); the server must return one row per step tag (see the class docs).
   */
  api?: RemoteRewardApi;
  /** Endpoint path on the server root (default `/classify` or `/pooling`; SGLang: `/v1/classify`). */
  path?: string;
  /** pooling: the system prompt of the Qwen PRM format. */
  systemPrompt?: string;
  /** pooling: the step token of the Qwen PRM format (default `<extra_0>`). */
  stepToken?: string;
  /** Bearer token. */
  apiKey?: string;
  /** Time limit of one HTTP attempt in milliseconds (default 60 000). */
  timeoutMs?: number;
  /** Retries on 408/429/5xx, network errors and timeouts (default 3). */
  retries?: number;
  /** Base of the exponential backoff in milliseconds (default 500). */
  backoffMs?: number;
  /** Longest wait between attempts in milliseconds (default 30 000). */
  maxBackoffMs?: number;
}

const optionsSchema = z.strictObject({
  baseUrl: z.string().min(1),
  model: z.string().min(1).optional(),
  api: z.enum(["classify", "pooling"]).optional(),
  path: z.string().startsWith("/").optional(),
  systemPrompt: z.string().optional(),
  stepToken: z.string().min(1).optional(),
  apiKey: z.string().optional(),
  timeoutMs: z.number().positive().optional(),
  retries: z.int().nonnegative().optional(),
  backoffMs: z.number().nonnegative().optional(),
  maxBackoffMs: z.number().nonnegative().optional(),
});

const classifySchema = z.looseObject({
  data: z.array(z.looseObject({ index: z.int().optional(), probs: z.array(z.number()) })),
});
const row = z.union([z.number(), z.array(z.number())]);
const poolingSchema = z.looseObject({
  data: z.array(z.looseObject({ data: z.union([row, z.array(row)]) })).min(1),
});

const EPS = 1e-6; // float noise allowed outside [0, 1] on probabilities

/**
 * A process reward model on a vLLM server.
 *
 * - `api: "classify"` posts `{model, input: [one paper-format text per step]}` to `/classify` and
 *   reads `data[i].probs` (vLLM ≥ 0.7; a model served with `--task classify` / `--runner pooling`).
 *   Scores are prefix-consistent: a step's score depends only on the question and the steps up to
 *   it.
 * - `api: "pooling"` posts `{model, input: qwenPrmPrompt(question, steps)}` to `/pooling` and reads
 *   `data[0].data`, which must hold exactly one row per step: `[p0, p1]` (score = p1) or a single
 *   value (clipped). For Qwen2.5-Math-PRM start vLLM with a STEP pooler on the step token, e.g.
 *   `--override-pooler-config '{"pooling_type": "STEP", "step_tag_id": N}'` with N the id of
 *   `<extra_0>` in its tokenizer; a server that
 *   returns one row per token is rejected with an error that says so.
 *
 * Scores outside [0, 1] (beyond float noise) and non-numbers are rejected with a
 * {@linkcode RemoteError}, never returned.
 *
 * @example
 * ```ts
 * const prm = await RemoteReward.connect({ baseUrl: "http://127.0.0.1:8001" });
 * const scores = await prm.scoreSteps("1+1?", ["1+1=2", "The answer is 2."]);
 * ```
 */
export class RemoteReward implements RewardModel {
  /** The model name on the server. */
  readonly id: string;
  /** The server root (no trailing `/v1`). */
  readonly baseUrl: string;
  /** The endpoint used. */
  readonly api: RemoteRewardApi;
  readonly #url: string;
  readonly #http: HttpOptions;
  readonly #systemPrompt?: string;
  readonly #stepToken?: string;

  /**
   * Create a reward model for a known model name.
   *
   * @param options Server, model (required here), API, key, timeout and retries.
   * @throws TypeError when an option is invalid or `model` is missing.
   */
  constructor(options: RemoteRewardOptions) {
    const o = parseOptions(options);
    if (o.model === undefined) {
      throw new TypeError(
        "Cannot create RemoteReward as 'model' is missing: pass it, or use RemoteReward.connect() to take the server's first model",
      );
    }
    this.id = o.model;
    this.api = o.api ?? "classify";
    this.baseUrl = serverRoot(o.baseUrl);
    this.#url = `${this.baseUrl}${o.path ?? `/${this.api}`}`;
    this.#http = httpOptionsOf(o);
    this.#systemPrompt = o.systemPrompt;
    this.#stepToken = o.stepToken;
  }

  /**
   * Create a reward model, asking `GET /v1/models` for the model name when `options.model` is
   * absent.
   *
   * @param options As the constructor; `model` optional.
   * @returns The reward model.
   * @throws RemoteError when the model list cannot be read.
   */
  static async connect(options: RemoteRewardOptions): Promise<RemoteReward> {
    const o = parseOptions(options);
    if (o.model !== undefined) return new RemoteReward(o);
    return new RemoteReward({ ...o, model: await firstModelId(o.baseUrl, httpOptionsOf(o)) });
  }

  /** {@inheritDoc RewardModel.scoreSteps} */
  async scoreSteps(
    question: string,
    steps: readonly string[],
    options: ScoreOptions = {},
  ): Promise<number[]> {
    if (typeof question !== "string" || !Array.isArray(steps)) {
      throw new TypeError("Cannot score steps as 'question' must be a string and 'steps' an array");
    }
    options.signal?.throwIfAborted();
    if (steps.length === 0) return [];
    return this.api === "classify"
      ? await this.#classify(question, steps, options.signal)
      : await this.#pooling(question, steps, options.signal);
  }

  /** Nothing to free: the server holds the model. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  async #classify(q: string, steps: readonly string[], signal?: AbortSignal): Promise<number[]> {
    const input = steps.map((s, i) => paperPrompt(q, steps.slice(0, i), s));
    const raw = await postJson(this.#url, { model: this.id, input }, { ...this.#http, signal });
    const r = classifySchema.safeParse(raw);
    if (!r.success) throw this.#invalid(`an unexpected body: ${z.prettifyError(r.error)}`);
    const data = [...r.data.data].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    if (data.length !== steps.length) {
      throw this.#invalid(`${data.length} results for ${steps.length} inputs`);
    }
    return data.map((d, i) => this.#score(d.probs, `data[${i}].probs`));
  }

  async #pooling(q: string, steps: readonly string[], signal?: AbortSignal): Promise<number[]> {
    const input = qwenPrmPrompt(q, steps, {
      systemPrompt: this.#systemPrompt,
      stepToken: this.#stepToken,
    });
    const raw = await postJson(this.#url, { model: this.id, input }, { ...this.#http, signal });
    const r = poolingSchema.safeParse(raw);
    if (!r.success) throw this.#invalid(`an unexpected body: ${z.prettifyError(r.error)}`);
    const out = r.data.data[0].data;
    const rows = Array.isArray(out) ? out : [out];
    if (rows.length !== steps.length) {
      throw this.#invalid(
        `${rows.length} score rows for ${steps.length} steps: the server must return one row per step tag (vLLM: a STEP pooler with step_tag_id set to the step token's id)`,
      );
    }
    return rows.map((x, i) => this.#score(typeof x === "number" ? [x] : x, `data[0].data[${i}]`));
  }

  /** Class 1 of two, or one clipped value; anything else is an error. */
  #score(probs: readonly number[], where: string): number {
    if (probs.length === 1) {
      const v = probs[0];
      if (!Number.isFinite(v)) {
        throw this.#invalid(`a score that is not a number at ${where}: ${v}`);
      }
      return Math.min(1, Math.max(0, v));
    }
    if (probs.length !== 2) {
      throw this.#invalid(`${probs.length} classes at ${where}; expected 1 or 2`);
    }
    const p = probs[1];
    if (!(p >= -EPS && p <= 1 + EPS)) {
      throw this.#invalid(`a probability outside [0, 1] at ${where}: ${JSON.stringify(probs)}`);
    }
    return Math.min(1, Math.max(0, p));
  }

  #invalid(what: string): RemoteError {
    return new RemoteError(`POST ${this.#url} returned ${what}`, {
      kind: "invalid-response",
      url: this.#url,
    });
  }
}

function parseOptions(options: RemoteRewardOptions): RemoteRewardOptions {
  const r = optionsSchema.safeParse(options);
  if (!r.success) {
    throw new TypeError(
      `Cannot create RemoteReward as options are invalid: ${z.prettifyError(r.error)}`,
    );
  }
  serverRoot(r.data.baseUrl);
  return r.data;
}
