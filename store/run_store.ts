/**
 * The run store: runs, finished problems, their search trees and trajectories, in libsql
 * (a local file, `:memory:` or a sqld server) through drizzle.
 *
 * @module
 */
import type { InStatement, InValue, ResultSet } from "@libsql/client";
import { and, asc, count, desc, eq, gt, gte, inArray, sql, sum } from "drizzle-orm";
import { resolve } from "node:path";
import { z } from "zod";
import {
  configDiff,
  fromNodeRows,
  fromTrajectoryRow,
  nullable,
  toNodeRows,
  toTrajectoryRows,
} from "./_codec.ts";
import { insertRows, type RawSql } from "./_bulk.ts";
import { openDb, redact, resolveTarget, type StoreDb } from "./_open.ts";
import {
  nodes,
  problems,
  RUN_STATUSES,
  runs,
  type RunStatus,
  trajectories,
  TREE_KINDS,
  type TreeKind,
  type TreeRow,
  trees,
} from "./schema.ts";
import type {
  NewRun,
  Problem,
  ProblemResult,
  Run,
  RunSummary,
  StoredTree,
  Trajectory,
  TrajectoryInput,
  TreeInput,
} from "./types.ts";

export type { StoreDb };

/** Where runs and their results live. Implementations pass the same contract tests. */
export interface RunStore {
  /**
   * Create a run.
   *
   * @throws {Error} When a run with this id exists.
   */
  createRun(run: NewRun): Promise<Run>;
  /**
   * The run with this id when its strategy, config, seed, policy, reward model and problem
   * source match (to resume it), else a new one. A problem file given relative or absolute, with
   * or without a trailing slash, is the same source; model ids (directory names) and URLs are
   * compared without trailing slashes.
   *
   * @throws {Error} When the stored run differs, saying what differs (stored and given).
   */
  getOrCreateRun(run: NewRun): Promise<Run>;
  /** The run, or undefined. */
  getRun(id: string): Promise<Run | undefined>;
  /** Runs, newest first (default limit 100). */
  listRuns(options?: { limit?: number; offset?: number }): Promise<Run[]>;
  /** Set a run's status (and its `updatedAt`). @throws {Error} When there is no such run. */
  setRunStatus(id: string, status: RunStatus): Promise<void>;
  /** Ids of the run's finished problems (to skip them on resume). */
  finishedProblemIds(runId: string): Promise<Set<string>>;
  /**
   * Store a finished problem, its tree with all nodes and its trajectories in ONE
   * transaction: after a crash either all of it is there or none.
   *
   * @returns The new tree's id (null without a tree).
   */
  saveProblemResult(runId: string, result: ProblemResult): Promise<{ treeId: number | null }>;
  /**
   * Store one more tree (and trajectories read off it) for a stored problem, e.g. an
   * annotation tree built later, in one transaction.
   *
   * @returns The new tree's id.
   */
  saveTree(
    runId: string,
    problemId: string,
    tree: TreeInput & { trajectories?: readonly TrajectoryInput[] },
  ): Promise<number>;
  /** The run's finished problems, by index. */
  listProblems(runId: string, options?: { limit?: number; offset?: number }): Promise<Problem[]>;
  /** A tree with its nodes rebuilt, or undefined. */
  getTree(treeId: number): Promise<StoredTree | undefined>;
  /** A problem's trees, oldest first. */
  getTrees(runId: string, problemId: string): Promise<StoredTree[]>;
  /** Every tree of a run (of one kind), read page by page, for exports. */
  iterTrees(
    runId: string,
    options?: { kind?: TreeKind; pageSize?: number },
  ): AsyncGenerator<StoredTree, void, undefined>;
  /** A run's trajectories, filtered. */
  listTrajectories(
    runId: string,
    options?: { minScore?: number; correct?: boolean; chosen?: boolean; problemId?: string },
  ): Promise<Trajectory[]>;
  /** Totals of a run. */
  runSummary(runId: string): Promise<RunSummary>;
  /** Release the database (a local file is checkpointed first: its `.db` then holds everything). */
  close(): Promise<void>;
}

/** Options of {@linkcode openStore}. */
export interface OpenStoreOptions {
  /** Auth token for `libsql://` and `http(s)://` servers. */
  authToken?: string;
  /** The clock (default: `new Date()`). */
  now?: () => Date;
  /** Rows per multi-row INSERT (default 250; keeps under SQLite's variable limit). */
  chunkSize?: number;
}

const newRunSchema = z.object({
  id: z.string().min(1),
  strategy: z.string().min(1),
  config: z.record(z.string(), z.unknown()),
  seed: z.number().int(),
  policyId: z.string(),
  rewardId: z.string().nullish(),
  problemsSource: z.string(),
  shards: z.number().int().positive().nullish(),
  status: z.enum(RUN_STATUSES).optional(),
});

const problemSchema = z.object({
  problemId: z.string().min(1),
  index: z.number().int().nonnegative(),
  question: z.string(),
  gold: z.string().nullish(),
  source: z.string().nullish(),
  shard: z.number().int().nonnegative().nullish(),
  prediction: z.string().nullish(),
  answer: z.string().nullish(),
  correct: z.boolean().nullish(),
  reward: z.number().nullish(),
  tokens: z.number().int().nonnegative(),
  seconds: z.number().nonnegative(),
  finishedAt: z.date().optional(),
  tree: z.any().optional(),
  trajectories: z.array(z.any()).optional(),
});

const treeSchema = z.object({
  kind: z.enum(TREE_KINDS),
  seed: z.number().int(),
  nodes: z.array(z.any()),
});

const pageSchema = z.object({
  limit: z.number().int().positive().optional(),
  offset: z.number().int().nonnegative().optional(),
});

/** Parse `value` with `schema`, or throw a TypeError saying what was wrong. */
function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new TypeError(`Cannot ${what}: ${z.prettifyError(r.error)}`);
  return r.data;
}

/**
 * The id of the tree just inserted: inside the write transaction nobody else can have
 * inserted one since (and AUTOINCREMENT ids only grow).
 */
const LAST_TREE_ID: RawSql = { raw: `(SELECT max("id") FROM "trees")` };

/** {@linkcode RunStore} on libsql through drizzle. Make one with {@linkcode openStore}. */
export class LibsqlRunStore implements RunStore {
  /** The drizzle database, its libsql client at `db.$client` (for queries the interface lacks). */
  readonly db: StoreDb;
  readonly #now: () => Date;
  readonly #chunk: number;

  /**
   * Wrap an open, migrated database; {@linkcode openStore} opens and migrates one.
   *
   * @param db The drizzle database over the store's schema.
   * @param options The clock; rows per multi-row INSERT.
   */
  constructor(db: StoreDb, options: { now?: () => Date; chunkSize?: number } = {}) {
    this.db = db;
    this.#now = options.now ?? (() => new Date());
    this.#chunk = options.chunkSize ?? 250;
  }

  /** {@inheritDoc RunStore.createRun} */
  async createRun(run: NewRun): Promise<Run> {
    const r = check(newRunSchema, run, `create run '${run?.id}'`);
    const row = await this.#insertRun(r);
    if (!row) {
      throw new Error(
        `Cannot create run '${r.id}': a run with this id exists (resume it with getOrCreateRun)`,
      );
    }
    return row;
  }

  /** {@inheritDoc RunStore.getOrCreateRun} */
  async getOrCreateRun(run: NewRun): Promise<Run> {
    const r = check(newRunSchema, run, `resume run '${run?.id}'`);
    // Insert-or-nothing, then compare: sharded workers may start the same run at once.
    const created = await this.#insertRun(r);
    if (created) return created;
    const stored = await this.getRun(r.id);
    if (!stored) throw new Error(`Cannot resume run '${r.id}': it vanished while opening it`);
    const diffs = [
      ...configDiff(stored.strategy, r.strategy, "strategy"),
      ...configDiff(stored.seed, r.seed, "seed"),
      ...configDiff(stored.config, r.config, "config"),
      ...identityDiff(stored.policyId, r.policyId, "policy", "model"),
      ...identityDiff(stored.rewardId, r.rewardId ?? null, "reward model", "model"),
      ...identityDiff(stored.problemsSource, r.problemsSource, "problems", "source"),
    ];
    if (diffs.length > 0) {
      throw new Error(
        `Cannot resume run '${r.id}': it was started with other settings: ${diffs.join("; ")}`,
      );
    }
    return stored;
  }

  /** Insert the run unless its id exists; the new row, or undefined. */
  async #insertRun(r: z.infer<typeof newRunSchema>): Promise<Run | undefined> {
    const now = this.#now();
    const [row] = await this.db.insert(runs)
      .values({ ...r, status: r.status ?? "running", createdAt: now, updatedAt: now })
      .onConflictDoNothing({ target: runs.id })
      .returning();
    return row;
  }

  /** {@inheritDoc RunStore.getRun} */
  async getRun(id: string): Promise<Run | undefined> {
    return (await this.db.select().from(runs).where(eq(runs.id, id)))[0];
  }

  /** {@inheritDoc RunStore.listRuns} */
  async listRuns(options: { limit?: number; offset?: number } = {}): Promise<Run[]> {
    const { limit = 100, offset = 0 } = check(pageSchema, options, "list runs");
    return await this.db.select().from(runs).orderBy(desc(runs.createdAt), asc(runs.id))
      .limit(limit).offset(offset);
  }

  /** {@inheritDoc RunStore.setRunStatus} */
  async setRunStatus(id: string, status: RunStatus): Promise<void> {
    check(z.enum(RUN_STATUSES), status, `set the status of run '${id}'`);
    const done = await this.db.update(runs).set({ status, updatedAt: this.#now() })
      .where(eq(runs.id, id)).returning({ id: runs.id });
    if (done.length === 0) throw new Error(`Cannot set the status of run '${id}': no such run`);
  }

  /** {@inheritDoc RunStore.finishedProblemIds} */
  async finishedProblemIds(runId: string): Promise<Set<string>> {
    const rows = await this.db.select({ id: problems.problemId }).from(problems)
      .where(and(eq(problems.runId, runId), eq(problems.status, "done")));
    return new Set(rows.map((r) => r.id));
  }

  /** {@inheritDoc RunStore.saveProblemResult} */
  async saveProblemResult(
    runId: string,
    result: ProblemResult,
  ): Promise<{ treeId: number | null }> {
    const where = `problem '${result?.problemId}' of run '${runId}'`;
    const p = check(problemSchema, result, `save ${where}`);
    const now = this.#now();
    const { tree, trajectories: trajs = [] } = result;
    const stmts: InStatement[] = [
      // The run's updatedAt tells when a worker last finished a problem.
      statement(this.db.update(runs).set({ updatedAt: now }).where(eq(runs.id, runId))),
      statement(this.db.insert(problems).values(problemRow(runId, p, now, where))),
    ];
    if (tree) stmts.push(...this.#treeStatements(runId, p.problemId, tree, where));
    stmts.push(...this.#trajectoryStatements(runId, p.problemId, tree !== undefined, trajs, where));
    const results = await this.#write(stmts, runId, where);
    return { treeId: tree ? Number(results[2].lastInsertRowid) : null };
  }

  /** {@inheritDoc RunStore.saveTree} */
  async saveTree(
    runId: string,
    problemId: string,
    tree: TreeInput & { trajectories?: readonly TrajectoryInput[] },
  ): Promise<number> {
    const where = `a ${tree?.kind} tree of problem '${problemId}' of run '${runId}'`;
    const stmts = [
      ...this.#treeStatements(runId, problemId, tree, where),
      ...this.#trajectoryStatements(runId, problemId, true, tree.trajectories ?? [], where),
    ];
    return Number((await this.#write(stmts, runId, where))[0].lastInsertRowid);
  }

  /** The tree row and its nodes, in multi-row INSERTs. */
  #treeStatements(runId: string, problemId: string, tree: TreeInput, where: string): InStatement[] {
    check(treeSchema, tree, `save ${where}`);
    const rows = toNodeRows(tree.nodes, `the tree of ${where}`);
    return [
      statement(
        this.db.insert(trees).values({
          runId,
          problemId,
          kind: tree.kind,
          seed: tree.seed,
          nodeCount: rows.length,
          createdAt: this.#now(),
        }),
      ),
      ...insertRows(nodes, rows, { same: { treeId: LAST_TREE_ID }, chunkSize: this.#chunk }),
    ];
  }

  /** Trajectory INSERTs; with `ofNewTree` they point at the tree inserted before them. */
  #trajectoryStatements(
    runId: string,
    problemId: string,
    ofNewTree: boolean,
    list: readonly TrajectoryInput[],
    where: string,
  ): InStatement[] {
    return insertRows(trajectories, toTrajectoryRows(list, where), {
      same: { runId, problemId, treeId: ofNewTree ? LAST_TREE_ID : null },
      chunkSize: this.#chunk,
    });
  }

  /** Run `stmts` as one write transaction; name what failed and why. */
  async #write(stmts: InStatement[], runId: string, where: string): Promise<ResultSet[]> {
    try {
      return await this.db.$client.batch(stmts, "write");
    } catch (e) {
      const cause = String((e as Error)?.message ?? e);
      let why = cause;
      if (/UNIQUE constraint failed: problems\./.test(cause)) why = "it is already stored";
      else if (/FOREIGN KEY/.test(cause) && !(await this.getRun(runId))) {
        why = `there is no run '${runId}' (create it first)`;
      } else if (/FOREIGN KEY/.test(cause)) why = `the problem is not stored (${cause})`;
      throw new Error(`Cannot save ${where}: ${why}`, { cause: e });
    }
  }

  /** {@inheritDoc RunStore.listProblems} */
  async listProblems(
    runId: string,
    options: { limit?: number; offset?: number } = {},
  ): Promise<Problem[]> {
    const { limit = -1, offset = 0 } = check(pageSchema, options, "list problems");
    return await this.db.select().from(problems).where(eq(problems.runId, runId))
      .orderBy(asc(problems.index), asc(problems.problemId)).limit(limit).offset(offset);
  }

  /** {@inheritDoc RunStore.getTree} */
  async getTree(treeId: number): Promise<StoredTree | undefined> {
    const [row] = await this.db.select().from(trees).where(eq(trees.id, treeId));
    return row ? (await this.#withNodes([row]))[0] : undefined;
  }

  /** {@inheritDoc RunStore.getTrees} */
  async getTrees(runId: string, problemId: string): Promise<StoredTree[]> {
    const rows = await this.db.select().from(trees)
      .where(and(eq(trees.runId, runId), eq(trees.problemId, problemId))).orderBy(asc(trees.id));
    return await this.#withNodes(rows);
  }

  /** {@inheritDoc RunStore.iterTrees} */
  async *iterTrees(
    runId: string,
    options: { kind?: TreeKind; pageSize?: number } = {},
  ): AsyncGenerator<StoredTree, void, undefined> {
    const pageSize = check(z.number().int().positive(), options.pageSize ?? 20, "iterate trees");
    let after = 0;
    for (;;) {
      const page = await this.db.select().from(trees).where(and(
        eq(trees.runId, runId),
        options.kind ? eq(trees.kind, options.kind) : undefined,
        gt(trees.id, after),
      )).orderBy(asc(trees.id)).limit(pageSize);
      if (page.length === 0) return;
      yield* await this.#withNodes(page);
      after = page[page.length - 1].id;
    }
  }

  /** Attach rebuilt nodes to tree rows (one query for all of them). */
  async #withNodes(rows: TreeRow[]): Promise<StoredTree[]> {
    if (rows.length === 0) return [];
    const all = await this.db.select().from(nodes)
      .where(inArray(nodes.treeId, rows.map((r) => r.id)))
      .orderBy(asc(nodes.treeId), asc(nodes.nodeIndex));
    const byTree = Map.groupBy(all, (n) => n.treeId);
    return rows.map((r) => ({ ...r, nodes: fromNodeRows(byTree.get(r.id) ?? []) }));
  }

  /** {@inheritDoc RunStore.listTrajectories} */
  async listTrajectories(
    runId: string,
    options: { minScore?: number; correct?: boolean; chosen?: boolean; problemId?: string } = {},
  ): Promise<Trajectory[]> {
    const { minScore, correct, chosen, problemId } = options;
    const rows = await this.db.select().from(trajectories).where(and(
      eq(trajectories.runId, runId),
      problemId === undefined ? undefined : eq(trajectories.problemId, problemId),
      minScore === undefined ? undefined : gte(trajectories.score, minScore),
      correct === undefined ? undefined : eq(trajectories.correct, correct),
      chosen === undefined ? undefined : eq(trajectories.chosen, chosen),
    )).orderBy(asc(trajectories.id));
    return rows.map(fromTrajectoryRow);
  }

  /** {@inheritDoc RunStore.runSummary} */
  async runSummary(runId: string): Promise<RunSummary> {
    const [r] = await this.db.select({
      problems: count(),
      graded: count(problems.correct),
      correct: sum(sql`${problems.correct} = 1`),
      tokens: sum(problems.tokens),
      seconds: sum(problems.seconds),
    }).from(problems).where(eq(problems.runId, runId));
    const graded = r.graded;
    const correct = Number(r.correct ?? 0);
    return {
      problems: r.problems,
      graded,
      correct,
      accuracy: graded > 0 ? correct / graded : null,
      tokens: Number(r.tokens ?? 0),
      seconds: Number(r.seconds ?? 0),
    };
  }

  /**
   * {@inheritDoc RunStore.close}
   *
   * A local file is first checkpointed (`PRAGMA wal_checkpoint(TRUNCATE)`), so that the `.db`
   * file alone holds everything once the process exits. The checkpoint does not wait for other
   * connections (shards of a run): while one reads or writes it does what it can, and the last
   * store to close finishes it. It never fails the close; servers are only closed.
   */
  async close(): Promise<void> {
    const client = this.db.$client;
    if (client.closed) return;
    if (client.protocol === "file") {
      try {
        await client.execute("PRAGMA busy_timeout=0");
        await client.execute("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch {
        // Another connection holds the database: its own close checkpoints later.
      }
    }
    client.close();
  }

  /** Close the store (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The messages of an error and its causes, past drizzle's "Failed query: <sql>" wrappers. */
function rootMessage(e: unknown): string {
  const parts: string[] = [];
  for (let err = e, depth = 0; err !== undefined && depth < 5; depth++) {
    const text = err instanceof Error ? err.message : String(err);
    if (!text.startsWith("Failed query:") && !parts.some((p) => p.includes(text))) parts.push(text);
    err = err instanceof Error ? err.cause : undefined;
  }
  return parts.join(": ");
}

/**
 * What identifies a model or a problem source: a URL without trailing slashes; a model id (the
 * model directory's name) as it is; a problem file as a resolved path (so `data/p.jsonl`,
 * `./data/p.jsonl` and its absolute path are one); a data set spec such as `synthetic:3` as it is.
 */
function identity(value: string | null, kind: "model" | "source"): string | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return v.replace(/\/+$/, "");
  if (kind === "model" || /^synthetic:/.test(v)) return v.replace(/\/+$/, "");
  return resolve(v);
}

/** `name is <stored> in the store, <given> now` when the two differ as identities. */
function identityDiff(
  stored: string | null,
  given: string | null,
  name: string,
  kind: "model" | "source",
): string[] {
  if (identity(stored, kind) === identity(given, kind)) return [];
  const show = (v: string | null) => v === null ? "none" : JSON.stringify(v);
  return [`${name} is ${show(stored)} in the store, ${show(given)} now`];
}

/** The problems row of a result. */
function problemRow(
  runId: string,
  p: z.infer<typeof problemSchema>,
  now: Date,
  where: string,
): typeof problems.$inferInsert {
  return {
    runId,
    problemId: p.problemId,
    index: p.index,
    question: p.question,
    gold: p.gold ?? null,
    source: p.source ?? null,
    shard: p.shard ?? null,
    status: "done",
    prediction: p.prediction ?? null,
    answer: p.answer ?? null,
    correct: p.correct ?? null,
    reward: nullable(p.reward, "reward", where),
    tokens: p.tokens,
    seconds: p.seconds,
    finishedAt: p.finishedAt ?? now,
  };
}

/** A drizzle query as a libsql statement (for a batch). */
function statement(query: { toSQL(): { sql: string; params: unknown[] } }): InStatement {
  const { sql, params } = query.toSQL();
  return { sql, args: params as InValue[] };
}

/**
 * Open (and create or migrate) a run store.
 *
 * @param url A file path (`data/arborist.db`; parent folders are created), `file:...`,
 *   `:memory:`, or a server: `libsql://...`, `http(s)://...`.
 * @param options The server's auth token; the clock; the insert chunk size.
 * @returns The open store; close it when done.
 * @throws {Error} `Cannot open run store at <url>: <cause>` when the database cannot be
 *   opened or migrated.
 * @example
 * ```ts
 * const store = await openStore("data/arborist.db");
 * try {
 *   const run = await store.getOrCreateRun({ id: "r1", strategy: "mcts", config: {}, seed: 0,
 *     policyId: "tiny", problemsSource: "synthetic" });
 * } finally {
 *   await store.close();
 * }
 * ```
 */
export async function openStore(
  url: string,
  options: OpenStoreOptions = {},
): Promise<LibsqlRunStore> {
  const { authToken, now, chunkSize } = check(
    z.object({
      authToken: z.string().optional(),
      now: z.custom<() => Date>((v) => typeof v === "function").optional(),
      chunkSize: z.number().int().positive().max(2000).optional(),
    }),
    options,
    `open run store at ${redact(String(url))}`,
  );
  try {
    const db = await openDb(resolveTarget(url), authToken);
    return new LibsqlRunStore(db, { now, chunkSize });
  } catch (e) {
    throw new Error(`Cannot open run store at ${redact(url)}: ${rootMessage(e)}`, { cause: e });
  }
}
