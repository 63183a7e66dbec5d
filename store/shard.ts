/**
 * Sharding a run's problems over several workers that share one database: every worker
 * takes the problems whose `shardOf(id, n)` is its own index.
 *
 * @module
 */

/** One worker's part of a run: shard `index` of `count`. */
export interface Shard {
  /** This worker's shard, `0 <= index < count`. */
  index: number;
  /** How many shards the run is split into. */
  count: number;
}

const encoder = new TextEncoder();

/**
 * The shard a problem belongs to: a 32-bit FNV-1a hash of the id's UTF-8 bytes, modulo
 * `shards`. Stable across processes, machines and versions.
 *
 * @param problemId The problem's id.
 * @param shards How many shards (a positive integer).
 * @returns The shard index, `0 <= i < shards`.
 * @throws {RangeError} When `shards` is not a positive integer.
 * @example
 * ```ts
 * const mine = problems.filter((p) => shardOf(p.id, 4) === 1);
 * ```
 */
export function shardOf(problemId: string, shards: number): number {
  if (!Number.isInteger(shards) || shards < 1) {
    throw new RangeError(
      `Cannot compute a shard as 'shards' must be a positive integer: got ${shards}`,
    );
  }
  let h = 0x811c9dc5;
  for (const byte of encoder.encode(problemId)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

/**
 * Parse a `--shard i/n` argument.
 *
 * @param text The argument, e.g. `"1/4"`.
 * @returns The shard.
 * @throws {RangeError} When it is not `i/n` with integers `0 <= i < n`.
 * @example
 * ```ts
 * parseShard("1/4"); // { index: 1, count: 4 }
 * ```
 */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(count) || count < 1 || index >= count) {
    throw new RangeError(`--shard must be i/n with 0 <= i < n: got '${text}'`);
  }
  return { index, count };
}
