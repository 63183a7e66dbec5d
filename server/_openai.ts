/**
 * The OpenAI-compatible routes: `GET /v1/models`, `POST /v1/chat/completions` (guided
 * reasoning behind the chat API, steps and rewards in an extra `arborist` field) and
 * `POST /v1/completions` (raw sampling with vLLM's extensions, so that one arborist node can be
 * another's remote policy).
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { STRATEGIES, type Strategy } from "../agent/mod.ts";
import type { Generation } from "../inference/mod.ts";
import {
  abortError,
  type AppContext,
  type LoadedModels,
  readJson,
  type RequestSignal,
  requestSignal,
  reserve,
} from "./_context.ts";
import { apiError, isAbort, parseOr400 } from "./_errors.ts";
import {
  errorEventOf,
  type ReasonRequest,
  type ReasonResult,
  resultOf,
  runSearch,
  solveOptionsOf,
} from "./_reason.ts";
import type { Limits } from "./_config.ts";
import type { ServerPolicy, TopToken } from "./_served_policy.ts";

const now = () => Math.floor(Date.now() / 1000);

/** 404 unless `model` names the served policy (or the alias "arborist"). */
function checkModel(model: string | undefined, models: LoadedModels): void {
  if (model === undefined || model === models.policy.id || model === "arborist") return;
  throw apiError(
    404,
    `model: '${model}' does not exist; this server serves '${models.policy.id}'`,
  );
}

// ---- GET /v1/models ----

function registerModels(app: Hono, ctx: AppContext): void {
  app.get("/v1/models", (c) => {
    const { policy, reward } = ctx.models.need();
    const data = [{ id: policy.id, object: "model", created: 0, owned_by: "arborist" }];
    return c.json({
      object: "list",
      data,
      arborist: { policy: policy.id, reward: reward?.id ?? null },
    });
  });
}

/** Whether an OpenAI parameter's value leaves the result as if it were absent. */
function inert(name: string, v: unknown, body: Record<string, unknown>): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") {
    return Object.keys(v).length === 0 ||
      (name === "response_format" && (v as { type?: unknown }).type === "text");
  }
  if (name === "top_p") return v === 1;
  if (name === "best_of") return v === (body.n ?? 1);
  if (name === "tool_choice") return v === "none" || v === "auto";
  return false;
}

/**
 * OpenAI parameters this server does not implement are refused (400) when they would change the
 * result, rather than silently ignored: a client would otherwise get output it did not ask for.
 */
function refuseUnsupported(body: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) {
    if (!inert(name, body[name], body)) {
      throw apiError(
        400,
        `${name}: not supported by this server, got ${
          JSON.stringify(body[name]).slice(0, 80)
        }; leave it out (or send its neutral value)`,
      );
    }
  }
}

/** Chat parameters of OpenAI's API that arborist's search does not implement. */
const CHAT_UNSUPPORTED = [
  "frequency_penalty",
  "presence_penalty",
  "logit_bias",
  "logprobs",
  "top_logprobs",
  "top_p",
  "tools",
  "functions",
  "tool_choice",
  "function_call",
  "response_format",
] as const;

/** Completions parameters of OpenAI's API that this server does not implement. */
const COMPLETIONS_UNSUPPORTED = [
  "suffix",
  "best_of",
  "frequency_penalty",
  "presence_penalty",
  "logit_bias",
] as const;

// ---- POST /v1/chat/completions ----

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });

const CHAT_MAX_TOKENS_TEXT =
  'Hard limit on each choice\'s message: it is cut at this many tokens (finish_reason "length"; usage.completion_tokens counts the messages sent). The search also reads it as its soft token budget (see /v1/reason budget.max_tokens); arborist.steps and arborist.stats show the whole solution and what the search spent.';

/** The body of `POST /v1/chat/completions`. */
function buildChatSchema(limits: Limits) {
  return z.looseObject({
    model: z.string().max(256).optional(),
    messages: z.array(z.looseObject({
      role: z.enum(["system", "developer", "user", "assistant", "tool"]),
      content: z.union([z.string().max(limits.textChars), z.array(contentPart).max(limits.items)], {
        error: 'a string or an array of content parts ({"type": "text", "text": "..."})',
      }).nullish(),
    })).min(1).max(limits.items),
    n: z.int().min(1).max(limits.n).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    max_tokens: z.int().min(1).max(limits.maxTokens).nullish().describe(CHAT_MAX_TOKENS_TEXT),
    max_completion_tokens: z.int().min(1).max(limits.maxTokens).nullish().describe(
      CHAT_MAX_TOKENS_TEXT,
    ),
    seed: z.int().min(0).max(2 ** 31 - 1).nullish(),
    stop: z.union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(4)], {
      error: "a string or an array of up to 4 strings",
    }).nullish().describe(
      'The message ends before the first of these (finish_reason "stop"); the search is not cut by it.',
    ),
    stream: z.boolean().nullish(),
    arborist: z.strictObject({
      strategy: z.enum(STRATEGIES as [Strategy, ...Strategy[]]).optional(),
      k: z.int().min(1).max(limits.k).optional(),
      max_depth: z.int().min(1).max(limits.maxDepth).optional(),
      max_step_tokens: z.int().min(1).max(limits.maxStepTokens).optional(),
      simulations: z.int().min(1).max(limits.simulations).optional(),
      seconds: z.number().gt(0).max(limits.seconds).optional(),
    }).optional(),
  });
}

/** The zod schema type of chatSchema. */
export type ChatSchema = ReturnType<typeof buildChatSchema>;

/**
 * The request schema with the server's caps.
 *
 * @param limits The caps.
 */
export function chatSchema(limits: Limits): ChatSchema {
  return buildChatSchema(limits);
}

type ChatRequest = z.infer<ReturnType<typeof chatSchema>>;

/** The question of a chat: the text of its last user message. */
function questionOf(body: ChatRequest, limits: Limits): string {
  const last = body.messages.findLast((m) => m.role === "user");
  if (!last) throw apiError(400, "messages: must contain a message with role 'user'");
  const c = last.content;
  const text = typeof c === "string"
    ? c
    : (c ?? []).filter((p) => p.type === "text").map((p) => p.text ?? "").join("\n");
  if (text.trim() === "") throw apiError(400, "messages: the last user message is empty");
  if (text.length > limits.textChars) {
    throw apiError(
      400,
      `messages: the last user message must have at most ${limits.textChars} characters, got ${text.length}`,
    );
  }
  return text.trim();
}

/** `max_completion_tokens`, else `max_tokens`. */
function maxTokensOf(body: ChatRequest): number | undefined {
  return body.max_completion_tokens ?? body.max_tokens ?? undefined;
}

function reasonRequestOf(body: ChatRequest, question: string): ReasonRequest {
  const a = body.arborist ?? {};
  return {
    question,
    strategy: a.strategy,
    k: a.k,
    max_depth: a.max_depth,
    max_step_tokens: a.max_step_tokens,
    temperature: body.temperature ?? undefined,
    seed: body.seed ?? undefined,
    budget: {
      simulations: a.simulations,
      seconds: a.seconds,
      max_tokens: maxTokensOf(body),
    },
  };
}

function promptTokens(policy: ServerPolicy, question: string): number {
  return policy.tokenizer?.encode(question).length ?? 0;
}

function arboristOf(r: ReasonResult): Record<string, unknown> {
  return {
    id: r.id,
    strategy: r.strategy,
    reward_model: r.reward_model,
    answer: r.answer,
    score: r.score,
    complete: r.complete,
    seed: r.seed,
    steps: r.steps,
    stats: r.stats,
  };
}

/** A choice's message: the solution's text, cut at `max_tokens` tokens. */
interface ChatMessageOut {
  /** The text sent. */
  content: string;
  /** Its tokens (the search's generated tokens when the policy has no tokenizer here). */
  tokens: number;
  /** "length" when cut at max_tokens or when the solution is unfinished. */
  finish: "stop" | "length";
}

/**
 * The message of one choice. With the policy's tokenizer on this server, `max_tokens` is a hard
 * limit on the message: its tokens past the limit are cut (finish reason "length"); the search
 * itself reads it as a token budget. A remote policy gives no tokenizer: nothing is cut then.
 */
function messageOf(
  r: ReasonResult,
  policy: ServerPolicy,
  o: { maxTokens?: number; stop?: string | string[] | null },
): ChatMessageOut {
  let text = r.text, finish: ChatMessageOut["finish"] = r.complete ? "stop" : "length";
  // `stop`: the message ends before the first stop string (OpenAI leaves it out).
  const cuts = [o.stop ?? []].flat().map((s) => text.indexOf(s)).filter((i) => i >= 0);
  if (cuts.length > 0) [text, finish] = [text.slice(0, Math.min(...cuts)), "stop"];
  const maxTokens = o.maxTokens;
  const tok = policy.tokenizer;
  if (!tok) return { content: text, tokens: r.stats.tokens, finish };
  const ids = tok.encode(text, { addSpecialTokens: false });
  if (maxTokens === undefined || ids.length <= maxTokens) {
    return { content: text, tokens: ids.length, finish };
  }
  // A cut inside a multi-byte character decodes to U+FFFD: leave that partial character out.
  const content = tok.decode(ids.slice(0, maxTokens)).replace(/\uFFFD+$/, "");
  return { content, tokens: maxTokens, finish: "length" };
}

/** The content deltas of a streamed choice: one per step, ending where `content` ends. */
function deltasOf(steps: readonly { text: string }[], content: string): string[] {
  const pieces = steps.map((s, i) => (i === 0 ? s.text : `\n\n${s.text}`));
  if (!pieces.join("").startsWith(content)) return content ? [content] : [];
  const out: string[] = [];
  let at = 0;
  for (const p of pieces) {
    if (at >= content.length) break;
    out.push(content.slice(at, at + p.length));
    at += p.length;
  }
  return out;
}

/**
 * Run `n` searches, seeds `seed + i`, one after the other, within one time allowance: each
 * search gets an equal share of what is left (time one leaves unused goes to the next), so
 * `n` choices fit the request's time limit as one does.
 */
async function chatSearches(
  body: ChatRequest,
  question: string,
  o: { ctx: AppContext; models: LoadedModels; rs: RequestSignal; id: string },
): Promise<ReasonResult[]> {
  const req = reasonRequestOf(body, question);
  const options = solveOptionsOf(req, o.ctx, o.models);
  const n = body.n ?? 1;
  const end = performance.now() + (options.budget?.ms ?? Infinity);
  const out: ReasonResult[] = [];
  for (let i = 0; i < n; i++) {
    const ms = Math.max(0, end - performance.now()) / (n - i);
    const budget = { ...options.budget, ms: Number.isFinite(ms) ? ms : undefined };
    const solve = { ...options, seed: options.seed + i, budget };
    const s = await runSearch(question, { models: o.models, solve, ctx: o.ctx, rs: o.rs });
    out.push(
      resultOf(`${o.id}-${i}`, s, {
        strategy: options.strategy,
        models: o.models,
        seed: solve.seed,
      }),
    );
  }
  return out;
}

function registerChat(app: Hono, ctx: AppContext): void {
  app.post("/v1/chat/completions", async (c) => {
    const body = parseOr400(chatSchema(ctx.config.limits), await readJson(c));
    refuseUnsupported(body, CHAT_UNSUPPORTED);
    const models = ctx.models.need();
    checkModel(body.model, models);
    const question = questionOf(body, ctx.config.limits);
    solveOptionsOf(reasonRequestOf(body, question), ctx, models); // 400s before any work
    const rs = requestSignal(c, ctx);
    const ticket = reserve(ctx, rs.signal);
    const id = `chatcmpl-${crypto.randomUUID()}`;
    const o = { ctx, models, rs, id };
    if (body.stream) return streamChat(c, { body, question, o, ticket });
    try {
      await ticket.ready.catch(() => {
        throw abortError(rs, ctx);
      });
      const results = await chatSearches(body, question, o);
      const messages = results.map((r) =>
        messageOf(r, models.policy, { maxTokens: maxTokensOf(body), stop: body.stop })
      );
      const completion = messages.reduce((s, m) => s + m.tokens, 0);
      const prompt = promptTokens(models.policy, question);
      return c.json({
        id,
        object: "chat.completion",
        created: now(),
        model: models.policy.id,
        choices: results.map((r, index) => ({
          index,
          message: { role: "assistant", content: messages[index].content },
          logprobs: null,
          finish_reason: messages[index].finish,
          arborist: arboristOf(r),
        })),
        usage: {
          prompt_tokens: prompt,
          completion_tokens: completion,
          total_tokens: prompt + completion,
        },
        arborist: arboristOf(results[0]),
      });
    } finally {
      ticket.release();
    }
  });
}

function streamChat(
  c: Context,
  a: {
    body: ChatRequest;
    question: string;
    o: { ctx: AppContext; models: LoadedModels; rs: RequestSignal; id: string };
    ticket: { ready: Promise<void>; release(): void };
  },
): Response {
  const { body, question, o, ticket } = a;
  const n = body.n ?? 1;
  const base = {
    id: o.id,
    object: "chat.completion.chunk",
    created: now(),
    model: o.models.policy.id,
  };
  return streamSSE(c, async (stream) => {
    stream.onAbort(() =>
      o.rs.abort(new DOMException("The client closed the stream", "AbortError"))
    );
    const send = (data: unknown) => stream.writeSSE({ data: JSON.stringify(data) });
    const ping = setInterval(() => stream.write(": keep-alive\n\n"), 10_000);
    try {
      await ticket.ready;
      for (let index = 0; index < n; index++) {
        await send({
          ...base,
          choices: [{ index, delta: { role: "assistant", content: "" }, finish_reason: null }],
        });
      }
      const results = await chatSearches(body, question, o);
      const messages = results.map((r) =>
        messageOf(r, o.models.policy, { maxTokens: maxTokensOf(body), stop: body.stop })
      );
      for (const [index, r] of results.entries()) {
        for (const content of deltasOf(r.steps, messages[index].content)) {
          await send({ ...base, choices: [{ index, delta: { content }, finish_reason: null }] });
        }
        await send({
          ...base,
          choices: [{ index, delta: {}, finish_reason: messages[index].finish }],
          arborist: arboristOf(r),
        });
      }
      const completion = messages.reduce((s, m) => s + m.tokens, 0);
      const prompt = promptTokens(o.models.policy, question);
      await send({
        ...base,
        choices: [],
        usage: {
          prompt_tokens: prompt,
          completion_tokens: completion,
          total_tokens: prompt + completion,
        },
      });
      await stream.writeSSE({ data: "[DONE]" });
    } catch (e) {
      if (!stream.aborted) await send(errorEventOf(e, o.rs, o.ctx));
    } finally {
      clearInterval(ping);
      ticket.release();
    }
  });
}

// ---- POST /v1/completions ----

/** The body of `POST /v1/completions`. */
function buildCompletionsSchema(limits: Limits) {
  const text = z.string().max(limits.textChars);
  return z.looseObject({
    model: z.string().max(256),
    prompt: z.union([
      text,
      z.array(z.int().nonnegative()).min(1).max(limits.textChars),
      z.array(text).min(1).max(limits.items),
    ], { error: "a string, an array of strings or an array of token ids" }),
    n: z.int().min(1).max(limits.n).default(1),
    max_tokens: z.int().min(0).max(limits.maxTokens).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    top_k: z.int().min(-1).max(1000).nullish(),
    seed: z.int().min(-(2 ** 53) + 1).max(2 ** 53 - 1).nullish(),
    stop: z.union([z.string().max(256), z.array(z.string().max(256)).max(16)], {
      error: "a string or an array of strings",
    }).nullish(),
    logprobs: z.int().min(0).max(limits.logprobs).nullish(),
    echo: z.boolean().nullish(),
    stream: z.boolean().nullish(),
    include_stop_str_in_output: z.boolean().nullish(),
    return_tokens_as_token_ids: z.boolean().nullish(),
    add_special_tokens: z.boolean().nullish(),
  });
}

/** The zod schema type of completionsSchema. */
export type CompletionsSchema = ReturnType<typeof buildCompletionsSchema>;

/**
 * The request schema with the server's caps.
 *
 * @param limits The caps.
 */
export function completionsSchema(limits: Limits): CompletionsSchema {
  return buildCompletionsSchema(limits);
}

type CompletionsRequest = z.infer<ReturnType<typeof completionsSchema>>;

interface Choice {
  text: string;
  finish_reason: "stop" | "length";
  stop_reason: string | null;
  logprobs: LegacyLogprobs | null;
  tokens: number;
}

interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

function namer(policy: ServerPolicy, body: CompletionsRequest): (id: number) => string {
  const tok = policy.tokenizer;
  if (body.return_tokens_as_token_ids || !tok) return (id) => `token_id:${id}`;
  return (id) => tok.decode([id], { skipSpecialTokens: false });
}

function pieceLength(policy: ServerPolicy): (id: number) => number {
  const tok = policy.tokenizer;
  return tok ? (id) => tok.decode([id], { skipSpecialTokens: true }).length : () => 0;
}

/** The legacy logprobs object: token names, values, top alternatives, text offsets. */
function legacy(
  policy: ServerPolicy,
  body: CompletionsRequest,
  ids: readonly number[],
  values: readonly (number | null)[],
  tops: readonly (TopToken[] | null)[],
  start = 0,
): LegacyLogprobs {
  const name = namer(policy, body);
  const len = pieceLength(policy);
  const offsets: number[] = [];
  let at = start;
  for (const id of ids) {
    offsets.push(at);
    at += len(id);
  }
  return {
    tokens: ids.map(name),
    token_logprobs: [...values],
    top_logprobs: tops.map((t, i) => {
      if (t === null) return null;
      const dict: Record<string, number> = {};
      if (values[i] !== null) dict[name(ids[i])] = values[i]!;
      for (const x of t) dict[name(x.id)] = x.logprob;
      return dict;
    }),
    text_offset: offsets,
  };
}

function stopsOf(body: CompletionsRequest): string[] {
  const s = body.stop;
  return (typeof s === "string" ? [s] : s ?? []).filter((x) => x.length > 0);
}

async function echoChoice(
  policy: ServerPolicy,
  body: CompletionsRequest,
  prompt: string | number[],
  signal: AbortSignal,
): Promise<{ text: string; ids: number[]; logprobs: LegacyLogprobs | null }> {
  if (!policy.echo) {
    throw apiError(400, `echo: not supported by this server's policy backend ('${policy.id}')`);
  }
  const k = body.logprobs ?? 0;
  const r = await policy.echo(prompt, {
    addSpecialTokens: body.add_special_tokens ?? true,
    topK: k,
    signal,
  });
  const text = typeof prompt === "string" ? prompt : policy.tokenizer?.decode(r.ids) ?? "";
  const logprobs = body.logprobs === null || body.logprobs === undefined
    ? null
    : legacy(policy, body, r.ids, r.logprobs, r.top);
  return { text, ids: r.ids, logprobs };
}

async function sample(
  policy: ServerPolicy,
  body: CompletionsRequest,
  prompt: string,
  signal: AbortSignal,
): Promise<{ gens: Generation[]; top?: TopToken[][][] }> {
  const k = body.logprobs ?? 0;
  const options = {
    n: body.n,
    maxNewTokens: body.max_tokens ?? 16,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: (body.top_k ?? -1) > 0 ? body.top_k! : 0,
    seed: body.seed ?? Math.floor(Math.random() * 2 ** 31),
    stop: stopsOf(body),
    signal,
  };
  if (k > 1 && policy.generateWithTop) {
    const r = await policy.generateWithTop(prompt, { ...options, topLogprobs: k });
    return { gens: r.generations, top: r.top };
  }
  return { gens: await policy.generate(prompt, options) };
}

function choiceOf(
  policy: ServerPolicy,
  body: CompletionsRequest,
  g: Generation,
  top: TopToken[][] | undefined,
  echoed?: { text: string; ids: number[]; logprobs: LegacyLogprobs | null },
): Choice {
  const stops = stopsOf(body);
  const matched = g.finishReason === "stop"
    ? stops.filter((s) => g.text.endsWith(s)).sort((a, b) => b.length - a.length)[0]
    : undefined;
  const text = matched && !body.include_stop_str_in_output
    ? g.text.slice(0, -matched.length)
    : g.text;
  let logprobs: LegacyLogprobs | null = null;
  if (body.logprobs !== null && body.logprobs !== undefined) {
    const tops = g.ids.map((_, i) => top?.[i] ?? []);
    logprobs = legacy(policy, body, g.ids, g.logprobs, tops, echoed?.text.length ?? 0);
    if (echoed?.logprobs) logprobs = joinLogprobs(echoed.logprobs, logprobs);
  }
  return {
    text: (echoed?.text ?? "") + text,
    finish_reason: g.finishReason === "length" ? "length" : "stop",
    stop_reason: matched ?? null,
    logprobs,
    tokens: g.ids.length,
  };
}

function joinLogprobs(a: LegacyLogprobs, b: LegacyLogprobs): LegacyLogprobs {
  return {
    tokens: [...a.tokens, ...b.tokens],
    token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
    top_logprobs: [...a.top_logprobs, ...b.top_logprobs],
    text_offset: [...a.text_offset, ...b.text_offset],
  };
}

/** The choices of one prompt. */
async function complete(
  policy: ServerPolicy,
  body: CompletionsRequest,
  prompt: string | number[],
  signal: AbortSignal,
): Promise<{ choices: Choice[]; promptTokens: number }> {
  const maxTokens = body.max_tokens ?? 16;
  const echoed = body.echo ? await echoChoice(policy, body, prompt, signal) : undefined;
  let promptText: string;
  if (typeof prompt === "string") promptText = prompt;
  else if (policy.tokenizer) promptText = policy.tokenizer.decode(prompt);
  else throw apiError(400, "prompt: token ids need a policy with a tokenizer on this server");
  const promptTokens = echoed?.ids.length ??
    (typeof prompt === "string" ? policy.tokenizer?.encode(prompt).length ?? 0 : prompt.length);
  if (maxTokens === 0) {
    const c: Choice = {
      text: echoed!.text,
      finish_reason: "length",
      stop_reason: null,
      logprobs: echoed!.logprobs,
      tokens: 0,
    };
    return { choices: Array.from({ length: body.n }, () => ({ ...c })), promptTokens };
  }
  const { gens, top } = await sample(policy, body, promptText, signal);
  return { choices: gens.map((g, i) => choiceOf(policy, body, g, top?.[i], echoed)), promptTokens };
}

/** 400 for a token id the policy's vocabulary lacks (they would be dropped silently). */
function checkTokenIds(prompts: readonly (string | number[])[], policy: ServerPolicy): void {
  const size = policy.vocabSize;
  if (size === undefined) return;
  for (const p of prompts) {
    if (typeof p === "string") continue;
    const at = p.findIndex((id) => id >= size);
    if (at >= 0) {
      throw apiError(
        400,
        `prompt.${at}: token id ${p[at]} is out of range (vocabulary ${size}: ids 0 to ${
          size - 1
        })`,
      );
    }
  }
}

function registerCompletions(app: Hono, ctx: AppContext): void {
  app.post("/v1/completions", async (c) => {
    const body = parseOr400(completionsSchema(ctx.config.limits), await readJson(c));
    refuseUnsupported(body, COMPLETIONS_UNSUPPORTED);
    const models = ctx.models.need();
    checkModel(body.model, models);
    if ((body.max_tokens ?? 16) === 0 && !body.echo) {
      throw apiError(400, "max_tokens: must be >= 1 unless echo is true, got 0");
    }
    const prompts: (string | number[])[] = typeof body.prompt === "string" ||
        typeof body.prompt[0] === "number"
      ? [body.prompt as string | number[]]
      : body.prompt as string[];
    if (prompts.some((p) => p.length === 0)) throw apiError(400, "prompt: must not be empty");
    checkTokenIds(prompts, models.policy);
    const rs = requestSignal(c, ctx);
    const ticket = reserve(ctx, rs.signal);
    const id = `cmpl-${crypto.randomUUID()}`;
    let results: { choices: Choice[]; promptTokens: number }[];
    try {
      await ticket.ready;
      results = [];
      for (const p of prompts) results.push(await complete(models.policy, body, p, rs.signal));
    } catch (e) {
      if (rs.signal.aborted && isAbort(e)) throw abortError(rs, ctx);
      if (e instanceof RangeError) throw apiError(400, e.message);
      throw e;
    } finally {
      ticket.release();
    }
    const choices = results.flatMap((r) => r.choices).map(({ tokens: _, ...ch }, index) => ({
      index,
      ...ch,
    }));
    const prompt = results.reduce((s, r) => s + r.promptTokens, 0);
    const completion = results.flatMap((r) => r.choices).reduce((s, ch) => s + ch.tokens, 0);
    const usage = {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
    };
    const base = { id, object: "text_completion", created: now(), model: models.policy.id };
    if (!body.stream) return c.json({ ...base, choices, usage });
    return streamSSE(c, async (stream) => {
      for (const ch of choices) {
        await stream.writeSSE({ data: JSON.stringify({ ...base, choices: [ch] }) });
      }
      await stream.writeSSE({ data: JSON.stringify({ ...base, choices: [], usage }) });
      await stream.writeSSE({ data: "[DONE]" });
    });
  });
}

/** Register the OpenAI-compatible routes. */
export function registerOpenAi(app: Hono, ctx: AppContext): void {
  registerModels(app, ctx);
  registerChat(app, ctx);
  registerCompletions(app, ctx);
}
