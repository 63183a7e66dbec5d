/**
 * The server's settings: limits on work and on what a request may ask for.
 *
 * @module
 */
import { z } from "zod";

/** Caps on what one request may ask for. */
export interface Limits {
  /** MCTS simulations (or expansions of the other strategies). */
  simulations: number;
  /** Generated tokens of one search or completion. */
  maxTokens: number;
  /** Wall seconds of one search. */
  seconds: number;
  /** `n` (candidates, choices). */
  n: number;
  /** Children per expansion. */
  k: number;
  /** Steps of a solution. */
  maxDepth: number;
  /** Tokens of one step. */
  maxStepTokens: number;
  /** Characters of a question, prompt or step. */
  textChars: number;
  /** Steps sent to `/v1/rewards`, messages to chat. */
  items: number;
  /** Top log-probabilities per token (`logprobs` of completions). */
  logprobs: number;
}

/** Settings of {@linkcode createApp}. */
export interface ServerConfig {
  /** Bearer token; when set, every API route needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Allowed CORS origin (`*` for any); absent: no CORS headers. */
  cors?: string;
  /** Requests waiting for a model slot before new ones get 429 (default 32). */
  maxQueue: number;
  /** Model requests running at once (default 2). */
  maxConcurrency: number;
  /** Time limit of one request in seconds (default 300). */
  timeoutSeconds: number;
  /** Largest request body in bytes (default 1 MiB). */
  maxBodyBytes: number;
  /** Caps of request fields. */
  limits: Limits;
}

/** The defaults of every cap. */
export const DEFAULT_LIMITS: Limits = {
  simulations: 512,
  maxTokens: 8192,
  seconds: 300,
  n: 8,
  k: 8,
  maxDepth: 16,
  maxStepTokens: 512,
  textChars: 16_000,
  items: 64,
  logprobs: 20,
};

const limitsSchema = z.strictObject({
  simulations: z.int().positive(),
  maxTokens: z.int().positive(),
  seconds: z.number().positive(),
  n: z.int().positive(),
  k: z.int().positive(),
  maxDepth: z.int().positive(),
  maxStepTokens: z.int().positive(),
  textChars: z.int().positive(),
  items: z.int().positive(),
  logprobs: z.int().nonnegative(),
}).partial();

const configSchema = z.strictObject({
  token: z.string().min(1).optional(),
  cors: z.string().min(1).optional(),
  maxQueue: z.int().nonnegative().default(32),
  maxConcurrency: z.int().positive().default(2),
  timeoutSeconds: z.number().positive().default(300),
  maxBodyBytes: z.int().positive().default(1024 * 1024),
  limits: limitsSchema.default({}),
});

/** What {@linkcode resolveConfig} takes: every field optional. */
export type ServerConfigInput = Partial<Omit<ServerConfig, "limits">> & {
  limits?: Partial<Limits>;
};

/**
 * Fill defaults and check a configuration.
 *
 * @param input Partial settings.
 * @returns The complete settings.
 * @throws TypeError naming the field that is wrong.
 */
export function resolveConfig(input: ServerConfigInput = {}): ServerConfig {
  const r = configSchema.safeParse(input);
  if (!r.success) {
    throw new TypeError(
      `Cannot create the server as its config is invalid: ${
        z.prettifyError(r.error).replace(/\n/g, " ")
      }`,
    );
  }
  return { ...r.data, limits: { ...DEFAULT_LIMITS, ...r.data.limits } };
}
