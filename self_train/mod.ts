/**
 * Self-training data: reward-model training sets (PRM, HRM, HNC, ORM) from PRM800K and from
 * stored runs, KL-SFT records for the policy, atomic JSONL exports with manifests, and the
 * ProcessBench evaluation. The Python trainer lives in `trainer/`.
 *
 * @example
 * ```ts
 * import { exportRewardSamples, readPrm800k } from "../self_train/mod.ts";
 *
 * await exportRewardSamples(readPrm800k("phase1_test.jsonl", { kind: "hrm" }), {
 *   out: "exports/prm800k-hrm", format: "paper", kind: "hrm", source: "phase1_test.jsonl" });
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./prm800k.ts";
export * from "./tree_samples.ts";
export * from "./hnc.ts";
export * from "./orm.ts";
export * from "./sft.ts";
export * from "./run_samples.ts";
export * from "./export.ts";
export * from "./processbench.ts";
export * from "./cli.ts";
export { mixSeed } from "./_lines.ts";
