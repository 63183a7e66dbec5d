/**
 * A {@linkcode PolicyModel} served by an OpenAI-compatible `POST /v1/completions` endpoint
 * (vLLM, SGLang, llama.cpp server), so that search scales out to GPU servers.
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
} from "./_http.ts";
import type {
  FinishReason,
  GenerateOptions,
  Generation,
  PolicyModel,
  ScoredContinuation,
  ScoredToken,
} from "./types.ts";

/** Options of {@linkcode RemotePolicy}. */
export interface RemotePolicyOptions {
  /** Server root or its `/v1` URL, e.g. `http://127.0.0.1:8000` or `http://127.0.0.1:8000/v1`. */
  baseUrl: string;
  /**
   * Model name sent with every request. Required by the constructor; {@linkcode RemotePolicy.connect}
   * takes the first id of `GET /v1/models` when it is absent.
   */
  model?: string;
  /** Bearer token. */
  apiKey?: string;
  /** Time limit of one HTTP attempt in milliseconds (default 60 000). */
  timeoutMs?: number;
  /** Retries on 408/429/5xx, network errors and timeouts (default 3). */
  retries?: number;
  /** Base of the exponential backoff in milliseconds (default 500). */
  backoffMs?: number;
  /** Longest wait between attempts in milliseconds, `Retry-After` included (default 30 000). */
  maxBackoffMs?: number;
}

const optionsSchema = z.strictObject({
  baseUrl: z.string().min(1),
  model: z.string().min(1).optional(),
  apiKey: z.string().optional(),
  timeoutMs: z.number().positive().optional(),
  retries: z.int().nonnegative().optional(),
  backoffMs: z.number().nonnegative().optional(),
  maxBackoffMs: z.number().nonnegative().optional(),
});

const logprobsSchema = z.looseObject({
  tokens: z.array(z.string()),
  token_logprobs: z.array(z.number().nullable()),
  top_logprobs: z.array(z.record(z.string(), z.number()).nullable()).nullish(),
  text_offset: z.array(z.number()).nullish(),
});
const choiceSchema = z.looseObject({
  index: z.int().optional(),
  text: z.string(),
  finish_reason: z.string().nullish(),
  stop_reason: z.union([z.string(), z.number(), z.null()]).optional(),
  logprobs: logprobsSchema.nullish(),
});
const completionSchema = z.looseObject({ choices: z.array(choiceSchema) });

type Choice = z.infer<typeof choiceSchema>;
type Logprobs = z.infer<typeof logprobsSchema>;

interface Checked {
  n: number;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number | undefined;
  stop: string[];
}

/**
 * A policy on an OpenAI-compatible completions server.
 *
 * How it maps the {@linkcode PolicyModel} contract onto the API:
 * - `generate` sends `{model, prompt, n, max_tokens, temperature, top_p, top_k (only when > 0),
 *   seed, stop, logprobs: 1, include_stop_str_in_output: true, return_tokens_as_token_ids: true}`.
 *   With a `seed`, child i must use `seed + i` (as in-process), so it sends one request per child,
 *   in parallel, each with `n: 1` and `seed: seed + i`: results are reproducible and equal to the
 *   in-process policy's for the same model. Without a seed it sends one request with `n` (the
 *   server's randomness: not reproducible). Greedy (`temperature: 0`) sends one request with
 *   `n: 1` and copies the result, since all children are equal.
 * - `text` always ends with the stop string when `finishReason` is `"stop"`: servers that strip it
 *   and name it in `stop_reason` get it appended. `finish_reason: "stop"` maps to `"stop"` when
 *   `stop_reason` is a string (or, when the server sends no `stop_reason`, when the text ends with
 *   one of the stop strings) and to `"eos"` otherwise (vLLM: `stop_reason` null or a token id).
 * - `ids` are read from `"token_id:N"` tokens (vLLM's `return_tokens_as_token_ids`). A server that
 *   returns token strings instead gives `ids: []`; `logprobs` still has one entry per token.
 * - `logprobs` are the server's: vLLM V1 returns raw log-probabilities (before temperature and
 *   truncation) by default, matching the in-process policy.
 * - `score` needs token ids: it tokenizes the prompt (special tokens added) and the continuation
 *   (none added) separately, like the in-process policy, with `echo: true, max_tokens: 0`, then
 *   sends the concatenated ids as the prompt with `logprobs: topK` and reads the prompt logprobs of
 *   the continuation positions. vLLM caps `topK` at its `--max-logprobs` (default 20).
 *   That is three requests per call (the two tokenizations in parallel); vLLM's prefix cache
 *   makes the last one cheap. A server without token ids fails with a {@linkcode RemoteError}.
 *
 * @example
 * ```ts
 * const policy = await RemotePolicy.connect({ baseUrl: "http://127.0.0.1:8000" });
 * const [g] = await policy.generate("2 + 2 =", { maxNewTokens: 8, temperature: 0 });
 * ```
 */
export class RemotePolicy implements PolicyModel {
  /** The model name on the server. */
  readonly id: string;
  /** The server root (no trailing `/v1`). */
  readonly baseUrl: string;
  readonly #http: HttpOptions;

  /**
   * Create a policy for a known model name.
   *
   * @param options Server, model (required here), key, timeout and retries.
   * @throws TypeError when an option is invalid or `model` is missing.
   */
  constructor(options: RemotePolicyOptions) {
    const o = parseOptions(options);
    if (o.model === undefined) {
      throw new TypeError(
        "Cannot create RemotePolicy as 'model' is missing: pass it, or use RemotePolicy.connect() to take the server's first model",
      );
    }
    this.id = o.model;
    this.baseUrl = serverRoot(o.baseUrl);
    this.#http = httpOptionsOf(o);
  }

  /**
   * Create a policy, asking `GET /v1/models` for the model name when `options.model` is absent.
   *
   * @param options As the constructor; `model` optional.
   * @returns The policy.
   * @throws RemoteError when the model list cannot be read.
   */
  static async connect(options: RemotePolicyOptions): Promise<RemotePolicy> {
    const o = parseOptions(options);
    if (o.model !== undefined) return new RemotePolicy(o);
    return new RemotePolicy({ ...o, model: await firstModelId(o.baseUrl, httpOptionsOf(o)) });
  }

  /** {@inheritDoc PolicyModel.generate} */
  async generate(prompt: string, options: GenerateOptions = {}): Promise<Generation[]> {
    const o = checkGenerate(options);
    const signal = options.signal;
    signal?.throwIfAborted();
    const body: Record<string, unknown> = {
      model: this.id,
      prompt,
      max_tokens: o.maxNewTokens,
      temperature: o.temperature,
      top_p: o.topP,
      logprobs: 1,
      include_stop_str_in_output: true,
      return_tokens_as_token_ids: true,
    };
    if (o.topK > 0) body.top_k = o.topK;
    if (o.stop.length > 0) body.stop = o.stop;
    if (o.temperature === 0) {
      const [g] = await this.#complete({ ...body, n: 1 }, o, signal);
      return Array.from(
        { length: o.n },
        () => ({ ...g, ids: [...g.ids], logprobs: [...g.logprobs] }),
      );
    }
    if (o.seed === undefined) return await this.#complete({ ...body, n: o.n }, o, signal);
    const seed = o.seed;
    const runs = Array.from(
      { length: o.n },
      (_, i) => (s: AbortSignal) => this.#complete({ ...body, n: 1, seed: seed + i }, o, s),
    );
    return (await allOrAbort(runs, signal)).flat();
  }

  /** {@inheritDoc PolicyModel.score} */
  async score(
    prompt: string,
    continuation: string,
    options: { topK?: number; signal?: AbortSignal } = {},
  ): Promise<ScoredContinuation> {
    const k = options.topK ?? 20;
    if (!Number.isInteger(k) || k < 0) {
      throw new RangeError(`Cannot score as 'topK' must be an integer >= 0: current value is ${k}`);
    }
    if (prompt === "") throw new RangeError("Cannot score after an empty prompt");
    options.signal?.throwIfAborted();
    const [promptIds, contIds] = await allOrAbort([
      (s) => this.#tokenize(prompt, true, s),
      (s) => continuation === "" ? Promise.resolve([]) : this.#tokenize(continuation, false, s),
    ], options.signal);
    if (contIds.length === 0) return { promptIds, tokens: [] };
    const all = [...promptIds, ...contIds];
    const lp = await this.#echo(all, { logprobs: k, addSpecialTokens: false }, options.signal);
    const echoed = tokenIds(lp.tokens);
    if (echoed && !sameIds(echoed.slice(0, all.length), all)) {
      throw this.#invalid("echoed different token ids than it was sent");
    }
    const tokens = contIds.map((id, j) => this.#scoredAt(lp, promptIds.length + j, id, k));
    return { promptIds, tokens };
  }

  /** Nothing to free: the server holds the model. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  get #completionsUrl(): string {
    return `${this.baseUrl}/v1/completions`;
  }

  /** POST one completion request and turn its choices into generations. */
  async #complete(
    body: Record<string, unknown>,
    o: Checked,
    signal: AbortSignal | undefined,
  ): Promise<Generation[]> {
    const choices = await this.#post(body, signal);
    const expected = body.n as number;
    if (choices.length !== expected) {
      throw this.#invalid(`returned ${choices.length} choices, expected ${expected}`);
    }
    return choices.map((c) => this.#generation(c, o.stop));
  }

  async #post(body: Record<string, unknown>, signal: AbortSignal | undefined): Promise<Choice[]> {
    const raw = await postJson(this.#completionsUrl, body, { ...this.#http, signal });
    const parsed = completionSchema.safeParse(raw);
    if (!parsed.success) {
      throw this.#invalid(`returned an unexpected body: ${z.prettifyError(parsed.error)}`);
    }
    return [...parsed.data.choices].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  }

  #generation(c: Choice, stop: readonly string[]): Generation {
    const lp = c.logprobs;
    const logprobs = (lp?.token_logprobs ?? []).map((x, i) => {
      if (x === null) throw this.#invalid(`returned no logprob for generated token ${i}`);
      return x;
    });
    const ids = lp ? tokenIds(lp.tokens) ?? [] : [];
    return { ...this.#finish(c, stop), ids, logprobs };
  }

  /** The text (ending with its stop string) and why it ended. */
  #finish(c: Choice, stop: readonly string[]): { text: string; finishReason: FinishReason } {
    const text = c.text;
    if (c.finish_reason === "length") return { text, finishReason: "length" };
    if (c.finish_reason !== "stop") {
      throw this.#invalid(`returned finish_reason ${JSON.stringify(c.finish_reason)}`);
    }
    const reason = c.stop_reason;
    if (typeof reason === "string") {
      return { text: text.endsWith(reason) ? text : text + reason, finishReason: "stop" };
    }
    if (reason === undefined && stop.some((s) => text.endsWith(s))) {
      return { text, finishReason: "stop" };
    }
    return { text, finishReason: "eos" };
  }

  /** Token ids of `text` via `echo` (the server's tokenizer). */
  async #tokenize(text: string, addSpecialTokens: boolean, signal: AbortSignal): Promise<number[]> {
    const lp = await this.#echo(text, { logprobs: 0, addSpecialTokens }, signal);
    const ids = tokenIds(lp.tokens);
    if (!ids) {
      throw this.#invalid(
        'returned token strings, not "token_id:N": score() needs a server that honours return_tokens_as_token_ids (vLLM)',
      );
    }
    return ids;
  }

  /** Prompt logprobs of `prompt` with `echo: true, max_tokens: 0`. */
  async #echo(
    prompt: string | number[],
    o: { logprobs: number; addSpecialTokens: boolean },
    signal: AbortSignal | undefined,
  ): Promise<Logprobs> {
    const [c] = await this.#post({
      model: this.id,
      prompt,
      max_tokens: 0,
      echo: true,
      temperature: 0,
      logprobs: o.logprobs,
      add_special_tokens: o.addSpecialTokens,
      return_tokens_as_token_ids: true,
    }, signal);
    if (!c?.logprobs) throw this.#invalid("returned no logprobs for an echo request");
    return c.logprobs;
  }

  #scoredAt(lp: Logprobs, pos: number, id: number, k: number): ScoredToken {
    const logprob = lp.token_logprobs[pos];
    const dict = lp.top_logprobs?.[pos];
    if (logprob === null || logprob === undefined || (k > 0 && !dict)) {
      throw this.#invalid(`returned no prompt logprobs at position ${pos}`);
    }
    const top = Object.entries(dict ?? {}).map(([t, v]) => {
      const tid = tokenId(t);
      if (tid === undefined) {
        throw this.#invalid(`returned top_logprobs key "${t}", not "token_id:N"`);
      }
      return { id: tid, logprob: v };
    });
    top.sort((a, b) => b.logprob - a.logprob);
    return { id, logprob, top: top.slice(0, k) };
  }

  #invalid(what: string): RemoteError {
    const url = this.#completionsUrl;
    return new RemoteError(`POST ${url} ${what}`, { kind: "invalid-response", url });
  }
}

function parseOptions(options: RemotePolicyOptions): RemotePolicyOptions {
  const r = optionsSchema.safeParse(options);
  if (!r.success) {
    throw new TypeError(
      `Cannot create RemotePolicy as options are invalid: ${z.prettifyError(r.error)}`,
    );
  }
  serverRoot(r.data.baseUrl);
  return r.data;
}

function checkGenerate(options: GenerateOptions): Checked {
  const o: Checked = {
    n: options.n ?? 1,
    maxNewTokens: options.maxNewTokens ?? 128,
    temperature: options.temperature ?? 1,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
    seed: options.seed,
    stop: (options.stop ?? []).filter((s) => s.length > 0),
  };
  const bad = (name: string, rule: string, value: unknown) =>
    new RangeError(`Cannot generate as '${name}' must be ${rule}: current value is ${value}`);
  if (!Number.isInteger(o.n) || o.n < 1) throw bad("n", "an integer >= 1", o.n);
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) {
    throw bad("maxNewTokens", "an integer >= 1", o.maxNewTokens);
  }
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) {
    throw bad("temperature", "a finite number >= 0", o.temperature);
  }
  if (!Number.isInteger(o.topK) || o.topK < 0) throw bad("topK", "an integer >= 0", o.topK);
  if (!(o.topP > 0 && o.topP <= 1)) throw bad("topP", "in (0, 1]", o.topP);
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) {
    throw bad("seed", "an integer", o.seed);
  }
  return o;
}

/** The id of a `"token_id:N"` token string. */
function tokenId(token: string): number | undefined {
  const m = /^token_id:(\d+)$/.exec(token);
  return m ? Number(m[1]) : undefined;
}

/** All ids, or undefined when any token is not `"token_id:N"`. */
function tokenIds(tokens: readonly string[]): number[] | undefined {
  const ids: number[] = [];
  for (const t of tokens) {
    const id = tokenId(t);
    if (id === undefined) return undefined;
    ids.push(id);
  }
  return ids;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Run tasks in parallel; on the first failure abort the rest (through the signal each gets)
 * and throw that failure once all have settled, so no request outlives the call.
 */
async function allOrAbort<T>(
  tasks: ((signal: AbortSignal) => Promise<T>)[],
  signal: AbortSignal | undefined,
): Promise<T[]> {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let first: { error: unknown } | undefined;
  try {
    const settled = await Promise.allSettled(tasks.map((t) =>
      t(ctl.signal).catch((e) => {
        first ??= { error: e };
        ctl.abort(e);
        throw e;
      })
    ));
    if (first) throw signal?.aborted ? signal.reason : first.error;
    return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
