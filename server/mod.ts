/**
 * The HTTP server: guided reasoning over HTTP (`/v1/reason`, streamed as Server-Sent Events),
 * OpenAI-compatible chat and completions, reward scoring, stored runs and exports, health,
 * readiness and Prometheus metrics, OpenAPI docs, and a page that shows the search tree grow.
 *
 * @example
 * ```ts
 * import { createApp, ServedPolicy, WorkerReward } from "../server/mod.ts";
 *
 * const app = createApp({
 *   policy: await ServedPolicy.load("models/policy"),
 *   reward: await WorkerReward.load("models/reward"),
 *   config: { maxConcurrency: 2 },
 * });
 * Deno.serve({ port: 8787, hostname: "127.0.0.1" }, app.fetch);
 * ```
 *
 * @module
 */
export { type AppDeps, createApp, VERSION } from "./app.ts";
export {
  isLoopback,
  parseServeFlags,
  SERVE_OPTIONS,
  SERVE_USAGE,
  serveCommand,
  type ServeFlags,
} from "./serve.ts";
export {
  DEFAULT_LIMITS,
  type Limits,
  resolveConfig,
  type ServerConfig,
  type ServerConfigInput,
} from "./_config.ts";
export {
  counted,
  type EchoResult,
  type GenerateResult,
  type PolicyCounters,
  ServedPolicy,
  type ServerPolicy,
  type TopToken,
} from "./_served_policy.ts";
export { WorkerReward } from "./_worker_reward.ts";
export { type ErrorBody, formatZodError } from "./_errors.ts";
export type { ReasonResult, StepOut } from "./_reason.ts";
