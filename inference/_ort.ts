/**
 * The only module that imports onnxruntime-node. It also fixes float16 tensors for Deno.
 *
 * onnxruntime-common stores float16 data as a `Float16Array` whenever that global exists, and
 * the native binding cannot read a `Float16Array` input (feeding an fp16 `present` back as
 * `past` fails with "not enough space"). onnxruntime-common picks its typed-array map once, on
 * the first `Tensor` it constructs; we construct that first tensor while `Float16Array` is
 * hidden, then put the global back. From then on ort keeps float16 data as `Uint16Array` bit
 * patterns (which the binding reads), and the rest of the program still has `Float16Array`.
 *
 * @module
 */
import * as ort from "onnxruntime-node";

const g = globalThis as { Float16Array?: unknown };
const saved = g.Float16Array;
try {
  delete g.Float16Array;
  new ort.Tensor("float32", new Float32Array(1), [1]);
} finally {
  if (saved !== undefined) g.Float16Array = saved;
}

export { ort };

/** An onnxruntime tensor. */
export type OrtTensor = ort.Tensor;
/** An onnxruntime session. */
export type OrtSession = ort.InferenceSession;

/** Options for {@linkcode createSession}. */
export interface SessionOptions {
  /** Threads for one operator; default: the number of cores. */
  threads?: number;
}

/**
 * Open an ONNX model file on the CPU.
 *
 * @param path The `.onnx` file (external data is found next to it).
 * @param options Thread count.
 * @returns The session.
 */
export async function createSession(
  path: string,
  options: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const threads = options.threads ?? navigator.hardwareConcurrency ?? 2;
  try {
    return await ort.InferenceSession.create(path, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
    });
  } catch (e) {
    throw new Error(`Cannot load ONNX model ${path}: ${(e as Error).message}`);
  }
}
