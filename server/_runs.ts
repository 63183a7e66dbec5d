/**
 * Stored runs over HTTP: `GET /v1/runs`, `/v1/runs/:id`, `/v1/runs/:id/tree` and the JSONL
 * exports `GET /v1/exports/:kind`.
 *
 * @module
 */
import type { Hono } from "hono";
import { stream } from "hono/streaming";
import { z } from "zod";
import {
  lineKey,
  REWARD_FORMATS,
  type RewardSample,
  runRewardSamples,
  type RunSampleKind,
  toOpenRlhf,
  toPaper,
  toTrl,
} from "../self_train/mod.ts";
import type { RunStore, StoredTree } from "../store/mod.ts";
import type { AppContext } from "./_context.ts";
import { apiError, clip, parseOr400 } from "./_errors.ts";

/** A query parameter that is a plain decimal integer (not `0x10`, `1e2`, `+5` or ` 5`). */
const decimal = (min: number, max: number) =>
  z.string().regex(/^-?\d+$/, { error: "must be a plain decimal integer" })
    .transform((v) => Number(v)).pipe(z.int().min(min).max(max));

const page = z.strictObject({
  limit: decimal(1, 1000).optional(),
  offset: decimal(0, Number.MAX_SAFE_INTEGER).optional(),
});

function needStore(ctx: AppContext): RunStore {
  if (!ctx.store) {
    throw apiError(503, "This server has no run store (start it with --db URL)");
  }
  return ctx.store;
}

async function needRun(store: RunStore, id: string) {
  const run = await store.getRun(id);
  if (!run) throw apiError(404, `No run with id '${clip(id)}'`);
  return run;
}

function treeOut(t: StoredTree): Record<string, unknown> {
  return {
    id: t.id,
    problem_id: t.problemId,
    kind: t.kind,
    seed: t.seed,
    node_count: t.nodeCount,
    nodes: t.nodes,
  };
}

/** The export kinds: stored rows as they are, and reward samples read off a run's trees. */
export const EXPORT_KINDS = ["trajectories", "trees", "prm", "hrm", "hnc", "orm"] as const;
type ExportKind = (typeof EXPORT_KINDS)[number];
const SAMPLE_KINDS: readonly string[] = ["prm", "hrm", "hnc", "orm"];
const FORMATS = ["raw", ...REWARD_FORMATS] as const;

function formatter(format: (typeof FORMATS)[number]): (s: RewardSample) => unknown {
  if (format === "trl") return (s) => toTrl(s);
  if (format === "openrlhf") return (s) => toOpenRlhf(s);
  if (format === "paper") return (s) => toPaper(s);
  return (s) => s;
}

/** JSON lines of reward samples; the first is read before the response starts (errors: 400). */
async function sampleLines(
  store: RunStore,
  runId: string,
  o: { kind: RunSampleKind; format: (typeof FORMATS)[number] },
): Promise<AsyncGenerator<string>> {
  const it = runRewardSamples(store, runId, { kind: o.kind });
  const fmt = formatter(o.format);
  let first: IteratorResult<RewardSample>;
  try {
    first = await it.next();
  } catch (e) {
    throw apiError(400, (e as Error).message);
  }
  // Repeated lines are dropped, as `deno task export` drops them (the same sample drawn from a
  // tree and from its HNC tree, or twice in one format).
  const seen = new Set<string>();
  const once = (s: RewardSample): string | undefined => {
    const line = JSON.stringify(fmt(s)) + "\n", key = lineKey(line);
    if (seen.has(key)) return undefined;
    seen.add(key);
    return line;
  };
  return (async function* () {
    if (first.done) return;
    yield once(first.value)!;
    for await (const s of it) {
      const line = once(s);
      if (line !== undefined) yield line;
    }
  })();
}

/** One JSON line per record of `kind` in `runs`. */
async function* exportLines(
  store: RunStore,
  kind: "trajectories" | "trees",
  runs: string[],
): AsyncGenerator<string> {
  for (const runId of runs) {
    if (kind === "trajectories") {
      for (const t of await store.listTrajectories(runId)) yield JSON.stringify(t) + "\n";
    } else {
      for await (const t of store.iterTrees(runId)) {
        yield JSON.stringify({ run_id: runId, ...treeOut(t) }) + "\n";
      }
    }
  }
}

async function allRunIds(store: RunStore): Promise<string[]> {
  const ids: string[] = [];
  for (let offset = 0;; offset += 500) {
    const rows = await store.listRuns({ limit: 500, offset });
    ids.push(...rows.map((r) => r.id));
    if (rows.length < 500) return ids;
  }
}

/** Register the run routes. */
export function registerRuns(app: Hono, ctx: AppContext): void {
  app.get("/v1/runs", async (c) => {
    const q = parseOr400(page, c.req.query());
    const runs = await needStore(ctx).listRuns({ limit: q.limit ?? 100, offset: q.offset });
    return c.json({ object: "list", data: runs });
  });

  app.get("/v1/runs/:id", async (c) => {
    const q = parseOr400(page, c.req.query());
    const store = needStore(ctx);
    const run = await needRun(store, c.req.param("id"));
    const [summary, problems] = await Promise.all([
      store.runSummary(run.id),
      store.listProblems(run.id, { limit: q.limit ?? 100, offset: q.offset }),
    ]);
    return c.json({ ...run, summary, problems });
  });

  app.get("/v1/runs/:id/tree", async (c) => {
    const q = parseOr400(page.extend({ problem: z.string().min(1).optional() }), c.req.query());
    const store = needStore(ctx);
    const run = await needRun(store, c.req.param("id"));
    if (q.problem !== undefined) {
      const trees = await store.getTrees(run.id, q.problem);
      if (trees.length === 0) {
        throw apiError(404, `Run '${clip(run.id)}' has no tree for problem '${clip(q.problem)}'`);
      }
      return c.json({ run_id: run.id, trees: trees.map(treeOut) });
    }
    const limit = q.limit ?? 50;
    let skip = q.offset ?? 0;
    const out: Record<string, unknown>[] = [];
    for await (const t of store.iterTrees(run.id)) {
      if (out.length >= limit) break;
      if (skip > 0) skip--;
      else out.push(treeOut(t));
    }
    return c.json({ run_id: run.id, trees: out });
  });

  app.get("/v1/exports/:kind", async (c) => {
    const kind = c.req.param("kind") as ExportKind;
    if (!EXPORT_KINDS.includes(kind)) {
      throw apiError(
        404,
        `Unknown export kind '${clip(kind)}': one of ${EXPORT_KINDS.join(", ")}`,
      );
    }
    const q = parseOr400(
      z.strictObject({ run: z.string().min(1).optional(), format: z.enum(FORMATS).default("raw") }),
      c.req.query(),
    );
    if (!SAMPLE_KINDS.includes(kind) && q.format !== "raw") {
      throw apiError(
        400,
        `format: kind '${kind}' is exported as stored ("raw" only), got "${q.format}"; the formats ${
          REWARD_FORMATS.join(", ")
        } apply to reward samples (${SAMPLE_KINDS.join(", ")})`,
      );
    }
    const store = needStore(ctx);
    let lines: AsyncGenerator<string>;
    if (SAMPLE_KINDS.includes(kind)) {
      if (!q.run) throw apiError(400, `run: is required for kind '${kind}' (?run=ID)`);
      await needRun(store, q.run);
      lines = await sampleLines(store, q.run, { kind: kind as RunSampleKind, format: q.format });
    } else {
      const runs = q.run ? [(await needRun(store, q.run)).id] : await allRunIds(store);
      lines = exportLines(store, kind as "trajectories" | "trees", runs);
    }
    c.header("content-type", "application/x-ndjson; charset=utf-8");
    return stream(c, async (s) => {
      try {
        for await (const line of lines) {
          if (s.aborted) return;
          await s.write(line);
        }
      } catch (e) {
        ctx.report(e);
        await s.write(
          JSON.stringify({
            error: { type: "internal_error", message: "The export stopped on an error" },
          }) + "\n",
        );
      }
    });
  });
}
