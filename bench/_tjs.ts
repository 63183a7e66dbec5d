/**
 * transformers.js (`@huggingface/transformers`) on the bench model: its own `generate()`, with
 * a streamer that timestamps every new token so that the prefill is not timed.
 *
 * @module
 */
import { dirname } from "node:path";
import {
  AutoModelForCausalLM,
  BaseStreamer,
  env,
  type PreTrainedModel,
  Tensor,
  type TextStreamer,
} from "@huggingface/transformers";

/** Records when each batch of tokens arrives. */
class Stamps extends BaseStreamer {
  readonly times: number[] = [];
  override put(_value: bigint[][]): void {
    this.times.push(performance.now());
  }
  override end(): void {}
}

/** transformers.js's version string. */
export const TJS_VERSION: string = env.version;

/** A transformers.js causal LM. */
export class TjsDecoder {
  readonly #m: PreTrainedModel;

  private constructor(m: PreTrainedModel) {
    this.#m = m;
  }

  /**
   * Load `dir` offline (`env.localModelPath` = its parent, weights `onnx/model.onnx` with
   * `model.onnx_data` next to it, which onnxruntime finds by itself).
   */
  static async open(dir: string, threads: number): Promise<TjsDecoder> {
    env.allowRemoteModels = false;
    env.localModelPath = dirname(dir) + "/";
    const id = dir.replace(/\/+$/, "").split("/").pop()!;
    const m = await AutoModelForCausalLM.from_pretrained(id, {
      dtype: "fp32",
      device: "cpu",
      session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
    });
    return new TjsDecoder(m);
  }

  /**
   * Greedy `generate()` of `newTokens` tokens after `prompt`.
   *
   * @returns The new tokens, the decode steps timed (forward passes after the first token),
   * the seconds from the first new token to the last, and the seconds of the prefill.
   */
  async greedy(
    prompt: readonly number[],
    newTokens: number,
  ): Promise<{ ids: number[]; steps: number; decodeSeconds: number; prefillSeconds: number }> {
    const n = prompt.length;
    const stamps = new Stamps();
    const t0 = performance.now();
    const out = await this.#m.generate({
      input_ids: new Tensor("int64", BigInt64Array.from(prompt, BigInt), [1, n]),
      attention_mask: new Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]),
      max_new_tokens: newTokens,
      do_sample: false,
      // its .d.ts asks for a TextStreamer; generate() only calls put() and end()
      streamer: stamps as unknown as TextStreamer,
    }) as Tensor;
    const ids = Array.from(out.data as BigInt64Array, Number).slice(n);
    const t = stamps.times; // t[0]: the prompt echoed; t[i]: new token i
    return {
      ids,
      steps: t.length - 2,
      decodeSeconds: (t[t.length - 1] - t[1]) / 1000,
      prefillSeconds: (t[1] - t0) / 1000,
    };
  }

  /** Release the sessions. */
  async close(): Promise<void> {
    await this.#m.dispose();
  }
}
