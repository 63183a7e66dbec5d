/**
 * Graphs without a KV cache (what optimum writes for token and sequence classification):
 * whole sequences in, one output out, rows right-padded into a batch.
 *
 * @module
 */
import { createSession, ort, type OrtSession } from "./_ort.ts";
import { halfsToFloats } from "./_half.ts";
import { type LoadOptions, OnnxCausalLM } from "./causal_lm.ts";
import { type ModelFiles, resolveModelDir } from "./model_dir.ts";

/** Output of {@linkcode OnnxSequenceModel.run}. */
export interface SequenceOutput {
  /** The first output (`logits`), float32, row-major. */
  data: Float32Array;
  /** Its shape: [batch, labels] or [batch, seq, labels]. */
  dims: number[];
}

/** A model run on whole, padded sequences. */
export class OnnxSequenceModel {
  /** The directory's files. */
  readonly files: ModelFiles;
  readonly #session: OrtSession;
  readonly #hasMask: boolean;
  readonly #hasPositions: boolean;
  readonly #output: string;
  #positionsRun = 0;

  /** Wrap an opened session without KV inputs. */
  constructor(files: ModelFiles, session: OrtSession) {
    const inputs = session.inputNames;
    if (!inputs.includes("input_ids")) {
      throw new Error(
        `Cannot load ${files.onnxPath}: expected an input 'input_ids', got ${inputs.join(", ")}`,
      );
    }
    this.files = files;
    this.#session = session;
    this.#hasMask = inputs.includes("attention_mask");
    this.#hasPositions = inputs.includes("position_ids");
    this.#output = session.outputNames.includes("logits") ? "logits" : session.outputNames[0];
  }

  /**
   * Run rows of token ids, right-padded with `padId` (attention mask 0 on padding).
   *
   * @param rows Token ids per row.
   * @param options The pad id (needed when rows differ in length).
   */
  async run(rows: readonly (readonly number[])[], options: { padId?: number } = {}): Promise<
    SequenceOutput
  > {
    const batch = rows.length;
    const seq = Math.max(...rows.map((r) => r.length));
    if (batch === 0 || seq === 0) {
      throw new RangeError("Cannot run a sequence model on an empty batch");
    }
    if (rows.some((r) => r.length !== seq) && options.padId === undefined) {
      throw new RangeError(
        `Cannot batch rows of different lengths through ${this.files.onnxPath}: the model has no pad token id`,
      );
    }
    this.#positionsRun += batch * seq;
    const ids = new BigInt64Array(batch * seq).fill(BigInt(options.padId ?? 0));
    const mask = new BigInt64Array(batch * seq);
    const pos = new BigInt64Array(batch * seq);
    rows.forEach((r, b) =>
      r.forEach((t, i) => {
        ids[b * seq + i] = BigInt(t);
        mask[b * seq + i] = 1n;
        pos[b * seq + i] = BigInt(i);
      })
    );
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", ids, [batch, seq]),
    };
    if (this.#hasMask) feeds.attention_mask = new ort.Tensor("int64", mask, [batch, seq]);
    if (this.#hasPositions) feeds.position_ids = new ort.Tensor("int64", pos, [batch, seq]);
    const out = (await this.#session.run(feeds))[this.#output];
    const raw = out.data as Float32Array | Uint16Array;
    return {
      data: raw instanceof Uint16Array ? halfsToFloats(raw) : raw,
      dims: out.dims as number[],
    };
  }

  /** Token positions run since load (padding included). */
  get positionsRun(): number {
    return this.#positionsRun;
  }

  /** Release the session. */
  async close(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * Open a model directory as whatever its graph is: a KV-cached decoder or a whole-sequence
 * model.
 *
 * @param dir The model directory.
 * @param options dtype and threads.
 */
export async function loadOnnxModel(
  dir: string,
  options: LoadOptions = {},
): Promise<OnnxCausalLM | OnnxSequenceModel> {
  const files = await resolveModelDir(dir, { dtype: options.dtype });
  const session = await createSession(files.onnxPath, { threads: options.threads });
  if (session.inputNames.some((n) => n.startsWith("past_key_values."))) {
    return await OnnxCausalLM.fromSession(files, session);
  }
  try {
    return new OnnxSequenceModel(files, session);
  } catch (e) {
    await session.release();
    throw e;
  }
}
