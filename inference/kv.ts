/**
 * KV-cache tensors and the operations tree-shaped generation needs on them: tile a prefix
 * into a batch, cut one row's segment out, keep some rows.
 *
 * Layout of every tensor: [batch, kvHeads, length, headDim], row-major; data is float32 or
 * float16 bit patterns (`Uint16Array`).
 *
 * @module
 */

/** Element type of the cache. */
export type KvDtype = "float32" | "float16";

/** Typed array holding KV data. */
export type KvData = Float32Array | Uint16Array;

/** Shape facts of a decoder's cache, read from the graph. */
export interface KvLayout {
  /** Number of layers. */
  layers: number;
  /** KV heads per layer (fewer than attention heads under grouped-query attention). */
  kvHeads: number;
  /** Size of one head. */
  headDim: number;
  /** Element type. */
  dtype: KvDtype;
}

/** A batch of caches, all rows of equal length. */
export interface KvBatch {
  /** Rows. */
  batch: number;
  /** Positions held. */
  length: number;
  /** Per layer, [batch, kvHeads, length, headDim]. */
  keys: KvData[];
  /** Per layer, same shape as keys. */
  values: KvData[];
}

/** A cache segment of one row: positions [start, start + length) of a sequence. */
export interface KvSegment {
  /** Position of its first element in the full sequence. */
  start: number;
  /** Positions held. */
  length: number;
  /** Per layer, [kvHeads, length, headDim]. */
  keys: KvData[];
  /** Per layer, same shape as keys. */
  values: KvData[];
}

function alloc(layout: KvLayout, n: number): KvData {
  return layout.dtype === "float16" ? new Uint16Array(n) : new Float32Array(n);
}

/** Bytes per element. */
export function kvElementBytes(layout: KvLayout): number {
  return layout.dtype === "float16" ? 2 : 4;
}

/** Bytes a cache of `positions` positions and `batch` rows holds. */
export function kvBytes(layout: KvLayout, positions: number, batch = 1): number {
  return 2 * layout.layers * batch * layout.kvHeads * positions * layout.headDim *
    kvElementBytes(layout);
}

/** An empty batch (length 0), what the first call of a decoder is fed. */
export function emptyKv(layout: KvLayout, batch: number): KvBatch {
  const empty = () => Array.from({ length: layout.layers }, () => alloc(layout, 0));
  return { batch, length: 0, keys: empty(), values: empty() };
}

/**
 * Concatenate the segments of one sequence (in order, contiguous from position 0) and repeat
 * the result `batch` times.
 *
 * @param layout The cache layout.
 * @param segments Segments covering positions 0..length-1 in order.
 * @param batch Rows of the result.
 * @returns A batch whose rows are all the same sequence.
 */
export function assembleKv(
  layout: KvLayout,
  segments: readonly KvSegment[],
  batch: number,
): KvBatch {
  const length = segments.reduce((n, s) => n + s.length, 0);
  const { kvHeads: H, headDim: D } = layout;
  const build = (pick: (s: KvSegment) => KvData[]) =>
    Array.from({ length: layout.layers }, (_, l) => {
      const out = alloc(layout, batch * H * length * D);
      for (let h = 0; h < H; h++) {
        for (const s of segments) {
          const src = pick(s)[l].subarray(h * s.length * D, (h + 1) * s.length * D);
          for (let b = 0; b < batch; b++) out.set(src, ((b * H + h) * length + s.start) * D);
        }
      }
      return out;
    });
  return { batch, length, keys: build((s) => s.keys), values: build((s) => s.values) };
}

/**
 * Copy positions [start, end) of row `row` out of a batch.
 *
 * @param layout The cache layout.
 * @param kv The batch.
 * @param options The row and the position range.
 * @returns A segment owning its data.
 */
export function sliceRow(
  layout: KvLayout,
  kv: KvBatch,
  options: { row: number; start: number; end: number },
): KvSegment {
  const { row, start, end } = options;
  const { kvHeads: H, headDim: D } = layout;
  const len = end - start;
  const cut = (src: KvData) => {
    const out = alloc(layout, H * len * D);
    for (let h = 0; h < H; h++) {
      const from = ((row * H + h) * kv.length + start) * D;
      out.set(src.subarray(from, from + len * D), h * len * D);
    }
    return out;
  };
  return { start, length: len, keys: kv.keys.map(cut), values: kv.values.map(cut) };
}

/**
 * Keep only some rows of a batch (in the given order).
 *
 * @param layout The cache layout.
 * @param kv The batch.
 * @param rows Row indices to keep.
 * @returns A new batch.
 */
export function selectRows(layout: KvLayout, kv: KvBatch, rows: readonly number[]): KvBatch {
  const rowSize = layout.kvHeads * kv.length * layout.headDim;
  const pick = (src: KvData) => {
    const out = alloc(layout, rows.length * rowSize);
    rows.forEach((r, i) => out.set(src.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
    return out;
  };
  return {
    batch: rows.length,
    length: kv.length,
    keys: kv.keys.map(pick),
    values: kv.values.map(pick),
  };
}

/** Bytes held by a segment. */
export function segmentBytes(s: KvSegment): number {
  let n = 0;
  for (const a of s.keys) n += a.byteLength;
  for (const a of s.values) n += a.byteLength;
  return n;
}
