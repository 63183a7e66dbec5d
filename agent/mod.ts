/**
 * The agent: problems and their formats, answer grading, the loop, the synthetic domain.
 *
 * @module
 */
export * from "./problems.ts";
export * from "./grading.ts";
export * from "./adapters.ts";
export * from "./backends.ts";
export * from "./loop.ts";
export * from "./eval.ts";
export * from "./synthetic.ts";
export * from "./default_run.ts";
