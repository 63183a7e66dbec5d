/**
 * The database schema: runs, their problems, the search trees with their nodes, and the
 * trajectories read off them. camelCase keys over snake_case columns; row types come from
 * `$inferSelect` / `$inferInsert`.
 *
 * After changing this file, generate a migration (from the repository root):
 *
 * ```sh
 * deno run -A npm:drizzle-kit@0.31.11 generate --config store/drizzle.config.ts
 * ```
 *
 * @module
 */
import {
  foreignKey,
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
} from "drizzle-orm/sqlite-core";

/** The states of a run. */
export const RUN_STATUSES = ["running", "done", "stopped"] as const;
/** A run's state: `running` while a worker may add to it, then `done` or `stopped`. */
export type RunStatus = (typeof RUN_STATUSES)[number];

/** The kinds of stored trees. */
export const TREE_KINDS = ["search", "annotation", "hnc"] as const;
/** What a stored tree is: the search's own tree, an MC-annotation tree, or an HNC tree. */
export type TreeKind = (typeof TREE_KINDS)[number];

/** Milliseconds since the epoch, as a `Date`; the store sets it (its `now` option). */
const timestamp = (name: string) =>
  integer(name, { mode: "timestamp_ms" }).notNull().$defaultFn(() => new Date());

/** One run of a strategy over a problem set. */
export const runs = sqliteTable("runs", {
  id: text("id").primaryKey(),
  strategy: text("strategy").notNull(),
  config: text("config", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  seed: integer("seed").notNull(),
  policyId: text("policy_id").notNull(),
  rewardId: text("reward_id"),
  problemsSource: text("problems_source").notNull(),
  status: text("status", { enum: RUN_STATUSES }).notNull().default("running"),
  createdAt: timestamp("created_at"),
  updatedAt: timestamp("updated_at"),
  shards: integer("shards"),
});

/** One finished problem of a run. */
export const problems = sqliteTable("problems", {
  runId: text("run_id").notNull().references(() => runs.id, { onDelete: "cascade" }),
  problemId: text("problem_id").notNull(),
  index: integer("problem_index").notNull(),
  question: text("question").notNull(),
  gold: text("gold"),
  source: text("source"),
  shard: integer("shard"),
  status: text("status", { enum: ["done"] }).notNull().default("done"),
  prediction: text("prediction"),
  answer: text("answer"),
  correct: integer("correct", { mode: "boolean" }),
  reward: real("reward"),
  tokens: integer("tokens").notNull().default(0),
  seconds: real("seconds").notNull().default(0),
  finishedAt: timestamp("finished_at"),
}, (t) => [primaryKey({ columns: [t.runId, t.problemId] })]);

/** A stored tree of one problem. */
export const trees = sqliteTable("trees", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  runId: text("run_id").notNull(),
  problemId: text("problem_id").notNull(),
  kind: text("kind", { enum: TREE_KINDS }).notNull(),
  seed: integer("seed").notNull(),
  nodeCount: integer("node_count").notNull(),
  createdAt: timestamp("created_at"),
}, (t) => [
  foreignKey({
    columns: [t.runId, t.problemId],
    foreignColumns: [problems.runId, problems.problemId],
  })
    .onDelete("cascade"),
  index("trees_run_problem_idx").on(t.runId, t.problemId),
  index("trees_run_kind_idx").on(t.runId, t.kind),
]);

/**
 * The nodes of a tree (a `TreeNode` each). The primary key (tree_id, node_index) is also the
 * index by tree. `siblingIndex` is the node's position in its parent's children list, so the
 * lists rebuild in their original order (HNC re-attaches subtrees, so it is not id order).
 */
export const nodes = sqliteTable("nodes", {
  treeId: integer("tree_id").notNull().references(() => trees.id, { onDelete: "cascade" }),
  nodeIndex: integer("node_index").notNull(),
  parentIndex: integer("parent_index").notNull(),
  siblingIndex: integer("sibling_index").notNull(),
  depth: integer("depth").notNull(),
  text: text("text").notNull(),
  logprob: real("logprob").notNull(),
  prior: real("prior").notNull(),
  reward: real("reward"),
  visits: integer("visits").notNull(),
  value: real("value").notNull(),
  mcLabel: real("mc_label"),
  terminal: integer("terminal", { mode: "boolean" }).notNull(),
  correct: integer("correct", { mode: "boolean" }),
  pruned: integer("pruned", { mode: "boolean" }).notNull(),
  tokens: integer("tokens").notNull(),
}, (t) => [primaryKey({ columns: [t.treeId, t.nodeIndex] })]);

/** A solution path of a problem with its step rewards and labels (the training rows). */
export const trajectories = sqliteTable("trajectories", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  runId: text("run_id").notNull(),
  problemId: text("problem_id").notNull(),
  treeId: integer("tree_id").references(() => trees.id, { onDelete: "cascade" }),
  steps: text("steps", { mode: "json" }).$type<string[]>().notNull(),
  stepRewards: text("step_rewards", { mode: "json" }).$type<(number | null)[]>().notNull(),
  score: real("score").notNull(),
  mcScore: real("mc_score"),
  correct: integer("correct", { mode: "boolean" }),
  pseudoLabel: integer("pseudo_label", { mode: "boolean" }).notNull().default(false),
  chosen: integer("chosen", { mode: "boolean" }).notNull().default(false),
  answer: text("answer"),
}, (t) => [
  foreignKey({
    columns: [t.runId, t.problemId],
    foreignColumns: [problems.runId, problems.problemId],
  })
    .onDelete("cascade"),
  index("trajectories_run_problem_idx").on(t.runId, t.problemId),
]);

/** A stored run. */
export type RunRow = typeof runs.$inferSelect;
/** A run to insert. */
export type NewRunRow = typeof runs.$inferInsert;
/** A stored problem result. */
export type ProblemRow = typeof problems.$inferSelect;
/** A problem result to insert. */
export type NewProblemRow = typeof problems.$inferInsert;
/** A stored tree's metadata. */
export type TreeRow = typeof trees.$inferSelect;
/** A tree to insert. */
export type NewTreeRow = typeof trees.$inferInsert;
/** A stored tree node. */
export type NodeRow = typeof nodes.$inferSelect;
/** A tree node to insert. */
export type NewNodeRow = typeof nodes.$inferInsert;
/** A stored trajectory. */
export type TrajectoryRow = typeof trajectories.$inferSelect;
/** A trajectory to insert. */
export type NewTrajectoryRow = typeof trajectories.$inferInsert;
