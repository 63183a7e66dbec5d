/**
 * A small OpenAI-compatible completions server over an in-process {@linkcode OnnxPolicy}, behaving
 * like vLLM where the remote policy depends on it: `include_stop_str_in_output`,
 * `return_tokens_as_token_ids`, `stop_reason`, `echo` with `max_tokens: 0` and prompt logprobs,
 * token-id prompts, `add_special_tokens`, per-request `seed`, vLLM's error body.
 *
 * Simplifications: `echo` works only with `max_tokens: 0`; generated tokens' `top_logprobs` hold
 * only the sampled token; requests run one at a time.
 *
 * @module
 */
import { z } from "zod";
import { type Generation, logSumExp, type OnnxPolicy, topK } from "../../inference/mod.ts";

/** A running loopback server. */
export interface TestServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Requests received, in order (bodies parsed). */
  requests: { path: string; body: unknown }[];
  /** Shut the server down (waits for requests in flight). */
  close: () => Promise<void>;
}

const bodySchema = z.looseObject({
  model: z.string(),
  prompt: z.union([z.string(), z.array(z.int().nonnegative())]),
  n: z.int().positive().default(1),
  max_tokens: z.int().nonnegative().default(16),
  temperature: z.number().nonnegative().default(1),
  top_p: z.number().gt(0).lte(1).default(1),
  top_k: z.int().default(-1),
  seed: z.int().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  logprobs: z.int().nonnegative().nullish(),
  echo: z.boolean().default(false),
  include_stop_str_in_output: z.boolean().default(false),
  return_tokens_as_token_ids: z.boolean().default(false),
  add_special_tokens: z.boolean().default(true),
});
type Body = z.infer<typeof bodySchema>;

/**
 * Serve `policy` on a free loopback port as model `model`.
 *
 * @param policy The in-process policy answering the requests (not closed by the server).
 * @param options The model name to serve.
 * @returns The server.
 */
export function startOpenAiServer(policy: OnnxPolicy, options: { model: string }): TestServer {
  const requests: TestServer["requests"] = [];
  let queue: Promise<unknown> = Promise.resolve();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/v1/models") {
      requests.push({ path, body: undefined });
      return Response.json({ object: "list", data: [{ id: options.model, object: "model" }] });
    }
    if (req.method !== "POST" || path !== "/v1/completions") return error(404, `No route ${path}`);
    const body = await req.json().catch(() => undefined);
    requests.push({ path, body });
    const run = queue.then(() => complete(policy, options.model, body));
    queue = run.catch(() => {});
    return await run;
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  };
}

async function complete(policy: OnnxPolicy, model: string, raw: unknown): Promise<Response> {
  const parsed = bodySchema.safeParse(raw);
  if (!parsed.success) return error(400, z.prettifyError(parsed.error));
  const body = parsed.data;
  if (body.model !== model) return error(404, `The model \`${body.model}\` does not exist.`);
  try {
    const choices = body.echo ? [await echo(policy, body)] : await generate(policy, body);
    return Response.json({
      id: "cmpl-test",
      object: "text_completion",
      model,
      choices: choices.map((c, index) => ({ index, ...c })),
    });
  } catch (e) {
    return error(400, (e as Error).message);
  }
}

async function generate(policy: OnnxPolicy, body: Body): Promise<Record<string, unknown>[]> {
  if (typeof body.prompt !== "string") throw new Error("token-id prompts need echo here");
  const stop = typeof body.stop === "string" ? [body.stop] : body.stop ?? [];
  const gens = await policy.generate(body.prompt, {
    n: body.n,
    maxNewTokens: body.max_tokens,
    temperature: body.temperature,
    topP: body.top_p,
    topK: body.top_k > 0 ? body.top_k : 0,
    seed: body.seed ?? Math.floor(Math.random() * 2 ** 31),
    stop,
  });
  return gens.map((g) => choiceOf(policy, body, g, stop));
}

function choiceOf(
  policy: OnnxPolicy,
  body: Body,
  g: Generation,
  stop: readonly string[],
): Record<string, unknown> {
  const matched = g.finishReason === "stop"
    ? stop.filter((s) => g.text.endsWith(s)).sort((a, b) => b.length - a.length)[0]
    : undefined;
  const text = matched && !body.include_stop_str_in_output
    ? g.text.slice(0, -matched.length)
    : g.text;
  const name = tokenNamer(policy, body);
  const logprobs = body.logprobs === null || body.logprobs === undefined ? null : legacyLogprobs(
    g.ids.map(name),
    g.logprobs,
    g.ids.map((id, i) => ({ [name(id)]: g.logprobs[i] })),
  );
  return {
    text,
    finish_reason: g.finishReason === "length" ? "length" : "stop",
    stop_reason: matched ?? null,
    logprobs,
  };
}

/** `echo: true, max_tokens: 0`: the prompt back with its prompt logprobs, like vLLM. */
async function echo(policy: OnnxPolicy, body: Body): Promise<Record<string, unknown>> {
  if (body.max_tokens !== 0) {
    throw new Error("this test server supports echo only with max_tokens 0");
  }
  const tok = policy.tokenizer;
  const ids = typeof body.prompt === "string"
    ? tok.encode(body.prompt, { addSpecialTokens: body.add_special_tokens })
    : body.prompt;
  if (ids.length === 0) throw new Error("The prompt cannot be empty");
  const V = policy.lm.graph.vocabSize;
  const r = await policy.lm.forward([ids], { keep: ids.length });
  const name = tokenNamer(policy, body);
  const k = body.logprobs ?? 0;
  const values: (number | null)[] = [null];
  const tops: (Record<string, number> | null)[] = [null];
  for (let p = 1; p < ids.length; p++) {
    const row = r.logits.subarray((p - 1) * V, p * V);
    const lse = logSumExp(row);
    const dict: Record<string, number> = { [name(ids[p])]: row[ids[p]] - lse };
    for (const t of topK(row, k)) dict[name(t.id)] = t.value - lse;
    values.push(row[ids[p]] - lse);
    tops.push(dict);
  }
  const text = typeof body.prompt === "string" ? body.prompt : tok.decode(ids);
  return {
    text,
    finish_reason: "length",
    stop_reason: null,
    logprobs: body.logprobs === null || body.logprobs === undefined
      ? null
      : legacyLogprobs(ids.map(name), values, tops),
  };
}

function tokenNamer(policy: OnnxPolicy, body: Body): (id: number) => string {
  return body.return_tokens_as_token_ids
    ? (id) => `token_id:${id}`
    : (id) => policy.tokenizer.decode([id], { skipSpecialTokens: false });
}

/** The legacy completions logprobs object; text offsets as vLLM computes them. */
function legacyLogprobs(
  tokens: string[],
  values: (number | null)[],
  tops: (Record<string, number> | null)[],
): Record<string, unknown> {
  const offsets: number[] = [];
  let at = 0;
  for (const t of tokens) {
    offsets.push(at);
    at += t.length;
  }
  return { tokens, token_logprobs: values, top_logprobs: tops, text_offset: offsets };
}

function error(status: number, message: string): Response {
  const type = status === 404 ? "NotFoundError" : "BadRequestError";
  return Response.json({ object: "error", message, type, param: null, code: status }, { status });
}
