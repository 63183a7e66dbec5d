/**
 * `POST /v1/reason`: guided reasoning on one question, as one JSON answer or as a stream of
 * Server-Sent Events that shows the search tree grow.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { z } from "zod";
import {
  extractAnswer,
  plainPrompt,
  solve,
  type Solved,
  type SolveOptions,
  STRATEGIES,
  type Strategy,
  STRATEGY_SETTINGS,
} from "../agent/mod.ts";
import { type SearchEvent, StepTree, type TreeNode } from "../mcts/mod.ts";
import type { Limits } from "./_config.ts";
import {
  abortError,
  type AppContext,
  type LoadedModels,
  readJson,
  type RequestSignal,
  requestSignal,
  reserve,
} from "./_context.ts";
import { apiError, isAbort, parseOr400, typeOf } from "./_errors.ts";

/**
 * What `budget.max_tokens` means: a soft search budget, not a cap on the answer. (A hard cap
 * would need the search to give each expansion only the tokens left; it checks between
 * expansions instead.)
 */
export const MAX_TOKENS_TEXT =
  "Soft search budget of generated tokens, every candidate counted: the search checks it between expansions and stops expanding once it is spent, so one expansion can pass it by up to k × max_step_tokens, and a solution still unfinished then is completed greedily; stats.tokens can therefore exceed it. It does not cut the answer.";

/** The body of `POST /v1/reason`, with the server's caps. */
function buildReasonSchema(limits: Limits) {
  return z.strictObject({
    question: z.string().trim().min(1).max(limits.textChars),
    strategy: z.enum(STRATEGIES as [Strategy, ...Strategy[]]).optional(),
    n: z.int().min(1).max(limits.n).optional(),
    k: z.int().min(1).max(limits.k).optional(),
    max_depth: z.int().min(1).max(limits.maxDepth).optional(),
    max_step_tokens: z.int().min(1).max(limits.maxStepTokens).optional(),
    temperature: z.number().min(0).max(2).optional(),
    budget: z.strictObject({
      simulations: z.int().min(1).max(limits.simulations).optional(),
      max_tokens: z.int().min(1).max(limits.maxTokens).optional().describe(MAX_TOKENS_TEXT),
      seconds: z.number().gt(0).max(limits.seconds).optional(),
    }).optional(),
    seed: z.int().min(0).max(2 ** 31 - 1).optional(),
    stream: z.boolean().optional(),
    include_tree: z.boolean().optional(),
  });
}

/** The zod schema type of reasonSchema. */
export type ReasonSchema = ReturnType<typeof buildReasonSchema>;

/**
 * The request schema with the server's caps.
 *
 * @param limits The caps.
 */
export function reasonSchema(limits: Limits): ReasonSchema {
  return buildReasonSchema(limits);
}

/** A parsed reasoning request. */
export type ReasonRequest = z.infer<ReturnType<typeof reasonSchema>>;

/** One step of the answer. */
export interface StepOut {
  /** The step's text. */
  text: string;
  /** Its reward (null when not scored). */
  reward: number | null;
}

/** The answer of `POST /v1/reason` (and the `result` event). */
export interface ReasonResult {
  /** Request id. */
  id: string;
  /** Always "reasoning". */
  object: "reasoning";
  /** The policy. */
  model: string;
  /** The reward model (null without one). */
  reward_model: string | null;
  /** The strategy used. */
  strategy: Strategy;
  /** The final answer read off the solution (null when none is stated). */
  answer: string | null;
  /** The whole solution, steps joined by blank lines. */
  text: string;
  /** The chosen steps with their rewards. */
  steps: StepOut[];
  /** Aggregate score of the solution (null when unscored). */
  score: number | null;
  /** Whether the solution reached a final step. */
  complete: boolean;
  /** The sampling seed used (the request's, else drawn at random): send it to repeat the run. */
  seed: number;
  /** Spend. */
  stats: { nodes: number; tokens: number; seconds: number; simulations: number | null };
  /** The search tree (MCTS), when `include_tree` was set. */
  tree?: TreeNode[];
}

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** Settings the search strategies serve here (annotate is not one). */
type ServedOptions = SolveOptions & { strategy: Strategy; seed: number };

/** Request fields only some strategies read, and which (the agent's table, and the tree). */
const UNREAD: [keyof ReasonRequest, readonly string[]][] = [
  ["n", STRATEGY_SETTINGS.n],
  ["k", STRATEGY_SETTINGS.k],
  ["temperature", STRATEGY_SETTINGS.temperature],
  ["include_tree", ["mcts"]],
];

/**
 * A `/v1/reason` setting the strategy would ignore is refused, as the CLI refuses the flag: a
 * client that sends it expects an effect it would not get. (Chat is exempt: OpenAI clients send
 * `temperature` whatever the server's strategy.)
 */
function refuseUnread(r: ReasonRequest, strategy: Strategy): void {
  for (const [field, readers] of UNREAD) {
    if (r[field] !== undefined && r[field] !== false && !readers.includes(strategy)) {
      throw apiError(
        400,
        `${field}: not read by strategy '${strategy}' (only by ${
          readers.filter((x) => STRATEGIES.includes(x as Strategy)).join(", ")
        }); leave it out`,
      );
    }
  }
}

/** The search settings of a request. */
export function solveOptionsOf(
  r: ReasonRequest,
  ctx: AppContext,
  models: LoadedModels,
): ServedOptions {
  const strategy = r.strategy ?? (models.reward ? "mcts" : "greedy");
  if (strategy !== "greedy" && !models.reward) {
    throw apiError(
      400,
      `strategy: '${strategy}' needs a reward model and this server has none (start it with --reward); use "greedy"`,
    );
  }
  const { limits, timeoutSeconds } = ctx.config;
  const seconds = Math.min(r.budget?.seconds ?? limits.seconds, timeoutSeconds * 0.95);
  return {
    strategy,
    n: r.n,
    k: r.k,
    maxDepth: r.max_depth,
    temperature: r.temperature,
    // Without a seed each request samples anew (as OpenAI's API does); the result reports the
    // seed it used, so a run can be repeated.
    seed: r.seed ?? Math.floor(Math.random() * 2 ** 31),
    // A question the policy cannot even start is the client's error (400 with the length and
    // the limit), not an empty answer.
    steps: { maxStepTokens: r.max_step_tokens, questionOverContext: "error" },
    budget: {
      simulations: r.budget?.simulations ?? (strategy === "mcts" ? 24 : undefined),
      tokens: r.budget?.max_tokens ?? limits.maxTokens,
      ms: seconds * 1000,
    },
  };
}

/**
 * Run one search with the request's cancellation; then free its KV cache.
 *
 * @param question The question.
 * @param options Models, settings, signal, events.
 * @returns What `solve` returns and the simulations counted.
 */
export async function runSearch(
  question: string,
  options: {
    models: LoadedModels;
    solve: SolveOptions & { strategy: Strategy };
    ctx: AppContext;
    rs: RequestSignal;
    onEvent?: (e: SearchEvent) => void;
  },
): Promise<Solved & { simulations: number | null }> {
  const { models, ctx, rs } = options;
  const strategy = options.solve.strategy;
  let simulations: number | null = null;
  try {
    const solved = await solve(question, {
      ...options.solve,
      models,
      signal: rs.signal,
      onEvent: (e) => {
        if (e.type === "simulation") simulations = e.count;
        options.onEvent?.(e);
      },
    });
    ctx.metrics.searches.inc({ strategy, outcome: "ok" });
    return { ...solved, simulations };
  } catch (e) {
    const aborted = rs.signal.aborted;
    const outcome = !aborted ? "error" : rs.timeout.aborted ? "timeout" : "cancelled";
    ctx.metrics.searches.inc({ strategy, outcome });
    if (aborted && (isAbort(e) || e === rs.signal.reason)) throw abortError(rs, ctx);
    if (e instanceof RangeError) throw apiError(400, e.message);
    throw e;
  } finally {
    // The search's KV cache (its whole tree) goes with it, finished or cancelled: what the
    // server holds then grows with the searches running, not with those it ran before.
    await models.policy.forget?.(plainPrompt(question)).catch(() => {});
  }
}

/** The markers of a stated final answer (those that end a search's path). */
const STATED = /\\boxed\{|\\fbox\{|\banswer\s+is\b|####|^#\s*Answer\s*$/im;

/**
 * The final answer the solution states (`\boxed{...}`, "The answer is ...", "#### ...", "#
 * Answer"), as written: never a number read off an intermediate step, never reformatted. Null
 * when the text states none.
 *
 * @param text The solution.
 * @returns The answer, or null.
 */
export function statedAnswer(text: string): string | null {
  if (!STATED.test(text)) return null;
  const a = extractAnswer(text, { kind: "math" });
  return a === undefined || a === text.trim() ? null : a;
}

/** The JSON answer of a finished search. */
export function resultOf(
  id: string,
  s: Solved & { simulations: number | null },
  o: { strategy: Strategy; models: LoadedModels; seed: number; includeTree?: boolean },
): ReasonResult {
  const text = s.steps.join("\n\n");
  const out: ReasonResult = {
    id,
    object: "reasoning",
    model: o.models.policy.id,
    reward_model: o.models.reward?.id ?? null,
    strategy: o.strategy,
    answer: statedAnswer(text),
    text,
    steps: s.steps.map((t, i) => ({ text: t, reward: finite(s.stepRewards[i] ?? NaN) })),
    score: finite(s.score),
    complete: s.complete,
    seed: o.seed,
    stats: {
      nodes: s.tree?.length ?? s.candidates.length,
      tokens: s.tokens,
      seconds: s.ms / 1000,
      simulations: s.simulations,
    },
  };
  if (o.includeTree && s.tree) out.tree = s.tree;
  return out;
}

/** A node as the `node` event carries it. */
export function nodeEvent(n: TreeNode): Record<string, unknown> {
  return {
    id: n.id,
    parent: n.parent,
    depth: n.depth,
    text: n.text,
    reward: finite(n.reward),
    prior: finite(n.prior),
    terminal: n.terminal,
    pruned: n.pruned,
    tokens: n.tokens,
  };
}

/** Register `POST /v1/reason`. */
export function registerReason(app: Hono, ctx: AppContext): void {
  app.post("/v1/reason", async (c) => {
    const body = parseOr400(reasonSchema(ctx.config.limits), await readJson(c));
    const models = ctx.models.need();
    const options = solveOptionsOf(body, ctx, models);
    refuseUnread(body, options.strategy);
    const rs = requestSignal(c, ctx);
    const ticket = reserve(ctx, rs.signal);
    const id = `rsn-${crypto.randomUUID()}`;
    if (body.stream) return streamReason(c, { body, models, options, rs, ticket, id, ctx });
    try {
      await ticket.ready.catch(() => {
        throw abortError(rs, ctx);
      });
      const s = await runSearch(body.question, { models, solve: options, ctx, rs });
      return c.json(resultOf(id, s, {
        strategy: options.strategy,
        models,
        seed: options.seed,
        includeTree: body.include_tree,
      }));
    } finally {
      ticket.release();
    }
  });
}

interface StreamArgs {
  body: ReasonRequest;
  models: LoadedModels;
  options: ServedOptions;
  rs: RequestSignal;
  ticket: { ready: Promise<void>; release(): void };
  id: string;
  ctx: AppContext;
}

/** Send events in order without blocking the search on the socket. */
function sender(stream: SSEStreamingApi): {
  send(event: string, data: unknown): void;
  flush(): Promise<void>;
} {
  let chain = Promise.resolve();
  return {
    send(event, data) {
      chain = chain.then(() => stream.writeSSE({ event, data: JSON.stringify(data) }));
    },
    flush: () => chain,
  };
}

function streamReason(c: Context, a: StreamArgs): Response {
  const { body, models, options, rs, ticket, id, ctx } = a;
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => rs.abort(new DOMException("The client closed the stream", "AbortError")));
    const out = sender(stream);
    const nodes = new Map<number, TreeNode>();
    let best: number[] = [0];
    let pending: number | undefined;
    const flushScore = () => {
      if (pending === undefined) return;
      const end = nodes.get(best[best.length - 1]);
      out.send("score", {
        simulations: pending,
        nodes: nodes.size + 1,
        best_value: end ? finite(end.value) : null,
      });
      pending = undefined;
    };
    try {
      if (ctx.queue.waiting > 0) out.send("queued", { waiting: ctx.queue.waiting });
      await ticket.ready;
      out.send("start", {
        id,
        strategy: options.strategy,
        question: body.question,
        model: models.policy.id,
      });
      out.send("node", nodeEvent(new StepTree().root));
      const s = await runSearch(body.question, {
        models,
        solve: options,
        ctx,
        rs,
        onEvent: (e) => {
          if (e.type === "expand") {
            for (const n of e.children) {
              nodes.set(n.id, n);
              out.send("node", nodeEvent(n));
            }
          } else if (e.type === "prune") out.send("pruned", { nodes: e.nodes });
          else if (e.type === "best") {
            best = e.path;
            out.send("best", { path: e.path });
            flushScore();
          } else if (e.type === "simulation") {
            // The search tells a new best path right after the simulation that found it: the
            // score waits for it, so that it always carries the value of the path sent last.
            flushScore();
            pending = e.count;
            queueMicrotask(flushScore);
          }
        },
      });
      flushScore();
      out.send(
        "result",
        resultOf(id, s, {
          strategy: options.strategy,
          models,
          seed: options.seed,
          includeTree: body.include_tree,
        }),
      );
    } catch (e) {
      if (!stream.aborted) out.send("error", errorEventOf(e, rs, ctx));
    } finally {
      ticket.release();
      await out.flush().catch(() => {});
    }
  });
}

/** The `error` event's data: the API's error body. */
export function errorEventOf(
  e: unknown,
  rs: RequestSignal,
  ctx: AppContext,
): { error: { type: string; message: string } } {
  if (rs.signal.aborted) {
    const err = abortError(rs, ctx) as { status?: number; message: string };
    return { error: { type: typeOf(err.status ?? 499), message: err.message } };
  }
  const status = (e as { status?: number })?.status;
  if (typeof status === "number" && status < 500) {
    return { error: { type: typeOf(status), message: (e as Error).message } };
  }
  ctx.report(e);
  return { error: { type: "internal_error", message: "The search failed on the server" } };
}
