/**
 * What batching costs in the matrix products alone: the weight products of three decoder layers
 * of the bench geometry ({@linkcode BENCH_MATMULS}; 179 MB of fp32 weights, more than the
 * last-level cache) run on M rows, M = 1 and M = K. A batch-K decode step is mostly
 * these products, so their ratio is about the least a batch-K step can cost in batch-1 steps on
 * this CPU with onnxruntime's kernels, and with it the most that sibling expansion can gain.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { alternate, median, progress } from "./_stats.ts";
import { bytes, floatValueInfo, key, num, str, varint } from "./_onnx.ts";

/** Sizes of the products: hidden width, key/value width, MLP width, layers. */
export interface MatmulGeometry {
  hidden: number;
  kv: number;
  mlp: number;
  layers: number;
}

/** The bench model's (Qwen2.5-0.5B): 3 of its 24 layers, 179 MB, more than the last-level cache. */
export const BENCH_MATMULS: MatmulGeometry = { hidden: 896, kv: 128, mlp: 4864, layers: 3 };

/** Products of one layer: [name, input, in features, out features]. */
function layer(g: MatmulGeometry): [string, "X" | "H", number, number][] {
  return [
    ["q", "X", g.hidden, g.hidden],
    ["k", "X", g.hidden, g.kv],
    ["v", "X", g.hidden, g.kv],
    ["o", "X", g.hidden, g.hidden],
    ["gate", "X", g.hidden, g.mlp],
    ["up", "X", g.hidden, g.mlp],
    ["down", "H", g.mlp, g.hidden],
  ];
}

type Chunks = Uint8Array[];
const size = (c: Chunks) => c.reduce((s, x) => s + x.length, 0);
const raw = (b: number[]): Chunks => [Uint8Array.from(b)];
/** A length-delimited field whose body is already in chunks (the weights are too big to spread). */
const field = (f: number, body: Chunks): Chunks => [
  Uint8Array.from([...key(f, 2), ...varint(size(body))]),
  ...body,
];

/** Small pseudo-random values (an LCG from `seed`), row-major [rows, cols]. */
export function pseudoRandomWeights(rows: number, cols: number, seed: number): Float32Array {
  const w = new Float32Array(rows * cols);
  let s = seed >>> 0;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = (s / 2 ** 32 - 0.5) * 0.04;
  }
  return w;
}

/** A float32 initializer [rows, cols]. */
function initializer(name: string, w: Float32Array, rows: number, cols: number): Chunks {
  return [
    ...raw([...num(1, rows), ...num(1, cols), ...num(2, 1), ...str(8, name)]),
    ...field(9, [new Uint8Array(w.buffer, w.byteOffset, w.byteLength)]),
  ];
}

/**
 * The serialized ModelProto (opset 17): inputs X [M, hidden] and H [M, mlp], one MatMul per
 * weight (`W{layer}_{name}`, values of {@linkcode pseudoRandomWeights} with seeds 1, 2, ... in
 * order), every product an output (`Y{layer}_{name}`).
 *
 * @param g Sizes (default {@linkcode BENCH_MATMULS}).
 * @returns The model's bytes and its weight bytes.
 */
export function matmulModel(g: MatmulGeometry = BENCH_MATMULS): {
  model: Uint8Array;
  weightBytes: number;
} {
  const graph: Chunks = [];
  let weightBytes = 0, seed = 1;
  for (let l = 0; l < g.layers; l++) {
    for (const [name, input, k, n] of layer(g)) {
      const w = `W${l}_${name}`, y = `Y${l}_${name}`;
      graph.push(
        ...raw(bytes(1, [...str(1, input), ...str(1, w), ...str(2, y), ...str(4, "MatMul")])),
      );
      graph.push(...field(5, initializer(w, pseudoRandomWeights(k, n, seed++), k, n)));
      graph.push(...raw(bytes(12, floatValueInfo(y, ["M", n]))));
      weightBytes += k * n * 4;
    }
  }
  graph.push(...raw(str(2, "matmul_rows")));
  graph.push(...raw(bytes(11, floatValueInfo("X", ["M", g.hidden]))));
  graph.push(...raw(bytes(11, floatValueInfo("H", ["M", g.mlp]))));
  const model = [
    ...raw(num(1, 8)),
    ...field(7, graph),
    ...raw(bytes(8, [...str(1, ""), ...num(2, 17)])),
  ];
  const out = new Uint8Array(size(model));
  let at = 0;
  for (const c of model) {
    out.set(c, at);
    at += c.length;
  }
  return { model: out, weightBytes };
}

/** What {@linkcode benchMatmulRows} measured. */
export interface MatmulRowsResult {
  /** Rows of the batched variant. */
  k: number;
  /** Bytes of the weights read per run. */
  weightBytes: number;
  /** Median ms of one run on 1 row, and on k rows. */
  oneMs: number;
  batchMs: number;
  /** Raw ms per run, by variant. */
  raw: Record<string, number[]>;
}

/**
 * Time the products on 1 row and on `k` rows, alternated (each sample: the mean of `runs` runs
 * after one warm-up run).
 *
 * @param options Rows, rounds, runs per sample, intra-op threads.
 * @returns Medians.
 */
export async function benchMatmulRows(
  options: { k?: number; reps?: number; runs?: number; threads?: number } = {},
): Promise<MatmulRowsResult> {
  const { k = 6, reps = 5, runs = 16, threads = 2 } = options;
  progress(`matmul rows: building the products of ${BENCH_MATMULS.layers} layers`);
  const { model, weightBytes } = matmulModel();
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  try {
    const { hidden, mlp } = BENCH_MATMULS;
    const feeds = (m: number) => ({
      X: new ort.Tensor("float32", new Float32Array(m * hidden).fill(0.1), [m, hidden]),
      H: new ort.Tensor("float32", new Float32Array(m * mlp).fill(0.1), [m, mlp]),
    });
    const time = async (m: number) => {
      const f = feeds(m);
      await session.run(f);
      const t0 = performance.now();
      for (let i = 0; i < runs; i++) await session.run(f);
      return (performance.now() - t0) / runs;
    };
    const rawMs = await alternate(reps, {
      "1 row (ms)": () => time(1),
      [`${k} rows (ms)`]: () => time(k),
    }, "matmul rows");
    return {
      k,
      weightBytes,
      oneMs: median(rawMs["1 row (ms)"]),
      batchMs: median(rawMs[`${k} rows (ms)`]),
      raw: rawMs,
    };
  } finally {
    await session.release();
  }
}
