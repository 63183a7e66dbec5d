/**
 * Conversions between the store's inputs/outputs and table rows, with the checks that make
 * a bad value fail before it reaches the database (libsql refuses NaN and Infinity).
 *
 * @module
 */
import type { NewNodeRow, NewTrajectoryRow, NodeRow, TrajectoryRow } from "./schema.ts";
import type { Trajectory, TrajectoryInput, TreeNodeData } from "./types.ts";

/** A finite number, or a RangeError naming the field and where it came from. */
export function finite(value: number, field: string, where: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RangeError(
      `Cannot save ${where}: '${field}' must be a finite number: got ${String(value)}`,
    );
  }
  return value;
}

/** NaN, null and undefined become NULL; other numbers must be finite. */
export function nullable(
  value: number | null | undefined,
  field: string,
  where: string,
): number | null {
  if (value === null || value === undefined || Number.isNaN(value)) return null;
  return finite(value, field, where);
}

/** Each node's position in its parent's children list; checks parents and lists agree. */
function siblingIndices(nodes: readonly TreeNodeData[], where: string): Map<number, number> {
  const rank = new Map<number, number>();
  const listedBy = new Map<number, number>();
  for (const n of nodes) {
    n.children.forEach((c, k) => {
      if (listedBy.has(c)) {
        throw new RangeError(
          `Cannot save ${where}: node ${c} is listed twice as a child (by nodes ${
            listedBy.get(c)
          } and ${n.id})`,
        );
      }
      rank.set(c, k);
      listedBy.set(c, n.id);
    });
  }
  for (const n of nodes) {
    if (n.parent < 0) continue;
    if (listedBy.get(n.id) !== n.parent) {
      const by = listedBy.has(n.id) ? `node ${listedBy.get(n.id)}'s` : "no node's";
      throw new RangeError(
        `Cannot save ${where}: node ${n.id} has parent ${n.parent} but is in ${by} children`,
      );
    }
  }
  return rank;
}

/** A node row less its tree id (the same for every node of a tree). */
export type NodeValues = Omit<NewNodeRow, "treeId">;

/**
 * Rows for a tree's nodes.
 *
 * @param nodes The nodes.
 * @param where What is being saved, for error messages.
 */
export function toNodeRows(nodes: readonly TreeNodeData[], where: string): NodeValues[] {
  const rank = siblingIndices(nodes, where);
  return nodes.map((n) => {
    const at = `node ${n.id} of ${where}`;
    return {
      nodeIndex: finite(n.id, "id", at),
      parentIndex: finite(n.parent, "parent", at),
      siblingIndex: rank.get(n.id) ?? 0,
      depth: finite(n.depth, "depth", at),
      text: n.text,
      logprob: finite(n.logprob, "logprob", at),
      prior: finite(n.prior, "prior", at),
      reward: nullable(n.reward, "reward", at),
      visits: finite(n.visits, "visits", at),
      value: finite(n.value, "value", at),
      mcLabel: nullable(n.mcLabel, "mcLabel", at),
      terminal: n.terminal,
      correct: n.correct ?? null,
      pruned: n.pruned,
      tokens: finite(n.tokens, "tokens", at),
    };
  });
}

/**
 * Rebuild nodes from their rows (ordered by node index): children lists in their original
 * order, NULL rewards as NaN, NULL optional fields left out.
 */
export function fromNodeRows(rows: readonly NodeRow[]): TreeNodeData[] {
  const byId = new Map<number, TreeNodeData>();
  const out = rows.map((r) => {
    const n: TreeNodeData = {
      id: r.nodeIndex,
      parent: r.parentIndex,
      depth: r.depth,
      text: r.text,
      logprob: r.logprob,
      prior: r.prior,
      reward: r.reward ?? NaN,
      visits: r.visits,
      value: r.value,
      terminal: r.terminal,
      pruned: r.pruned,
      tokens: r.tokens,
      children: [],
    };
    if (r.mcLabel !== null) n.mcLabel = r.mcLabel;
    if (r.correct !== null) n.correct = r.correct;
    byId.set(n.id, n);
    return n;
  });
  for (const r of rows) {
    const parent = byId.get(r.parentIndex);
    if (parent) parent.children[r.siblingIndex] = r.nodeIndex;
  }
  // Only a tree written by something else than this store can have holes; close them.
  for (const n of out) {
    if ((n.children as (number | undefined)[]).includes(undefined)) {
      n.children = n.children.filter((c) => c !== undefined);
    }
  }
  return out;
}

/** A trajectory row less the keys it shares with its problem and tree. */
export type TrajectoryValues = Omit<NewTrajectoryRow, "id" | "runId" | "problemId" | "treeId">;

/** Rows for trajectories. */
export function toTrajectoryRows(
  trajectories: readonly TrajectoryInput[],
  where: string,
): TrajectoryValues[] {
  return trajectories.map((t, i) => {
    const at = `trajectory ${i} of ${where}`;
    return {
      steps: [...t.steps],
      stepRewards: t.stepRewards.map((r) => (Number.isFinite(r) ? r : null)),
      score: finite(t.score, "score", at),
      mcScore: nullable(t.mcScore, "mcScore", at),
      correct: t.correct ?? null,
      pseudoLabel: t.pseudoLabel ?? false,
      chosen: t.chosen ?? false,
      answer: t.answer ?? null,
    };
  });
}

/** A trajectory read back: NULL step rewards become NaN. */
export function fromTrajectoryRow(row: TrajectoryRow): Trajectory {
  return { ...row, stepRewards: row.stepRewards.map((r) => r ?? NaN) };
}

/** Sort object keys recursively, so equal JSON values compare equal as strings. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Flatten a JSON value into `path -> JSON text` of its leaves. */
function leaves(value: unknown, path: string, out: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) leaves(v, `${path}.${k}`, out);
  } else {
    out.set(path, JSON.stringify(value));
  }
  return out;
}

/**
 * What differs between a stored and a wanted config, as readable lines
 * (`config.k is 4 in the store, 8 now`); empty when they are the same JSON.
 */
export function configDiff(stored: unknown, wanted: unknown, name: string): string[] {
  const a = canonical(stored);
  const b = canonical(JSON.parse(JSON.stringify(wanted ?? null)));
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const la = leaves(a, name, new Map());
  const lb = leaves(b, name, new Map());
  const out: string[] = [];
  for (const k of new Set([...la.keys(), ...lb.keys()])) {
    if (la.get(k) !== lb.get(k)) {
      out.push(`${k} is ${la.get(k) ?? "absent"} in the store, ${lb.get(k) ?? "absent"} now`);
    }
  }
  return out;
}
