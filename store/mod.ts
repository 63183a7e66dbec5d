/**
 * The run store: runs, finished problems, search trees and trajectories in libsql through
 * drizzle, plus sharding of a run's problems over workers.
 *
 * @example
 * ```ts
 * import { openStore, shardOf } from "../store/mod.ts";
 *
 * await using store = await openStore("data/arborist.db");
 * const run = await store.getOrCreateRun({ id: "r1", strategy: "mcts", config: { k: 4 },
 *   seed: 0, policyId: "tiny", problemsSource: "synthetic" });
 * const done = await store.finishedProblemIds(run.id);
 * ```
 *
 * @module
 */
export { LibsqlRunStore, openStore } from "./run_store.ts";
export type { OpenStoreOptions, RunStore, StoreDb } from "./run_store.ts";
export { parseShard, shardOf } from "./shard.ts";
export { resolveTarget, type Target } from "./_open.ts";
export type { Shard } from "./shard.ts";
export * as schema from "./schema.ts";
export { RUN_STATUSES, TREE_KINDS } from "./schema.ts";
export type { RunStatus, TreeKind } from "./schema.ts";
export type {
  NewRun,
  Problem,
  ProblemResult,
  Run,
  RunSummary,
  StoredTree,
  Trajectory,
  TrajectoryInput,
  TreeInput,
  TreeNodeData,
} from "./types.ts";
