/**
 * The reference decode loop: onnxruntime-node and nothing of ours. Feeds input_ids,
 * attention_mask, position_ids, num_logits_to_keep and the past cache; greedy argmax in a
 * plain loop; presents fed back as past.
 *
 * @module
 */
import * as ort from "onnxruntime-node";

/** A bare session over a decoder exported with past (the bench model's input layout). */
export class BareDecoder {
  readonly #s: ort.InferenceSession;
  readonly #layers: number;
  readonly #kvHeads: number;
  readonly #headDim: number;

  private constructor(s: ort.InferenceSession, layers: number, kvHeads: number, headDim: number) {
    this.#s = s;
    this.#layers = layers;
    this.#kvHeads = kvHeads;
    this.#headDim = headDim;
  }

  /** Open `onnxPath` with the options the project uses (CPU, all optimizations). */
  static async open(
    onnxPath: string,
    geometry: { layers: number; kvHeads: number; headDim: number; threads: number },
  ): Promise<BareDecoder> {
    const s = await ort.InferenceSession.create(onnxPath, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      intraOpNumThreads: geometry.threads,
      interOpNumThreads: 1,
    });
    return new BareDecoder(s, geometry.layers, geometry.kvHeads, geometry.headDim);
  }

  /**
   * One forward pass of `ids` (batch 1) after `past` (`null`: empty).
   *
   * @returns The session's outputs (logits of the last position, presents).
   */
  run(
    ids: readonly number[],
    pastLength: number,
    past: Record<string, ort.Tensor> | null,
  ): Promise<Record<string, ort.Tensor>> {
    const n = ids.length, total = pastLength + n;
    const f: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new ort.Tensor(
        "int64",
        BigInt64Array.from({ length: n }, (_, i) => BigInt(pastLength + i)),
        [1, n],
      ),
      num_logits_to_keep: new ort.Tensor("int64", BigInt64Array.of(1n), []),
    };
    const empty = new Float32Array(0), dims = [1, this.#kvHeads, 0, this.#headDim];
    for (let l = 0; l < this.#layers; l++) {
      for (const kind of ["key", "value"]) {
        f[`past_key_values.${l}.${kind}`] = past
          ? past[`present.${l}.${kind}`]
          : new ort.Tensor("float32", empty, dims);
      }
    }
    return this.#s.run(f);
  }

  /**
   * Greedy decode: from a prefill's outputs, `steps` forward passes, each feeding the argmax
   * of the previous logits.
   *
   * @returns The tokens (steps + 1: the prefill's argmax first) and the seconds of the loop.
   */
  async greedy(
    prefill: Record<string, ort.Tensor>,
    promptLength: number,
    steps: number,
  ): Promise<{ ids: number[]; seconds: number }> {
    const t0 = performance.now();
    let out = prefill;
    const ids = [argmax(out.logits.data as Float32Array)];
    for (let i = 0; i < steps; i++) {
      out = await this.run([ids[ids.length - 1]], promptLength + i, out);
      ids.push(argmax(out.logits.data as Float32Array));
    }
    return { ids, seconds: (performance.now() - t0) / 1000 };
  }

  /** Release the session. */
  async close(): Promise<void> {
    await this.#s.release();
  }
}

/** Index of the largest value: a plain loop. */
function argmax(x: Float32Array): number {
  let best = 0, v = x[0];
  for (let i = 1; i < x.length; i++) {
    if (x[i] > v) {
      v = x[i];
      best = i;
    }
  }
  return best;
}
