/**
 * Memory read bandwidth, measured in this process two ways: a tight JS loop summing a
 * Float64Array (one thread), and onnxruntime's ReduceSum over the same bytes as float32 on 1
 * and 2 intra-op threads (the kernels the model's MatMuls live beside).
 *
 * The ReduceSum graph is encoded by hand (`_onnx.ts`), so no onnx tooling is needed.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { bytes, floatValueInfo, num, str } from "./_onnx.ts";

/** A buffer to read, touched once so that page faults are not timed. */
export class ReadBuffer {
  /** The bytes. */
  readonly buffer: ArrayBuffer;
  /** Rows of the float32 view ReduceSum reduces (one per row). */
  readonly rows = 1024;

  /** @param bytes Size (a multiple of 1024 * 8). */
  constructor(bytes: number) {
    this.buffer = new ArrayBuffer(bytes);
    const f = new Float64Array(this.buffer);
    for (let i = 0; i < f.length; i += 512) f[i] = i % 7; // touch every 4 KiB page
  }

  /** Bytes held. */
  get bytes(): number {
    return this.buffer.byteLength;
  }
}

/**
 * Sum the buffer as float64 in a JS loop with four accumulators (one thread).
 *
 * @returns Bytes per second.
 */
export function jsReadBandwidth(buf: ReadBuffer): number {
  const a = new Float64Array(buf.buffer);
  const t0 = performance.now();
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (let i = 0; i < a.length; i += 4) {
    s0 += a[i];
    s1 += a[i + 1];
    s2 += a[i + 2];
    s3 += a[i + 3];
  }
  const dt = (performance.now() - t0) / 1000;
  if (Number.isNaN(s0 + s1 + s2 + s3)) throw new Error("unreachable: the sum is NaN");
  return buf.bytes / dt;
}

// --- a minimal ONNX model: Y = ReduceSum(X, axes=[1], keepdims=0), X float32 [rows, cols] ---

/** The serialized ModelProto (opset 11, where ReduceSum takes axes as an attribute). */
export function reduceSumModel(): Uint8Array {
  const axes = [...str(1, "axes"), ...num(8, 1), ...num(20, 7)]; // ints [1], type INTS
  const keepdims = [...str(1, "keepdims"), ...num(3, 0), ...num(20, 2)]; // i 0, type INT
  const node = [
    ...str(1, "X"),
    ...str(2, "Y"),
    ...str(4, "ReduceSum"),
    ...bytes(5, axes),
    ...bytes(5, keepdims),
  ];
  const graph = [
    ...bytes(1, node),
    ...str(2, "read_bandwidth"),
    ...bytes(11, floatValueInfo("X", ["rows", "cols"])),
    ...bytes(12, floatValueInfo("Y", ["rows"])),
  ];
  const model = [...num(1, 7), ...bytes(7, graph), ...bytes(8, [...str(1, ""), ...num(2, 11)])];
  return Uint8Array.from(model);
}

/** A ReduceSum session on `threads` intra-op threads. */
export async function openReduceSum(threads: number): Promise<ort.InferenceSession> {
  return await ort.InferenceSession.create(reduceSumModel(), {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
}

/**
 * Time one ReduceSum over the buffer.
 *
 * @returns Bytes per second.
 */
export async function ortReadBandwidth(
  session: ort.InferenceSession,
  buf: ReadBuffer,
): Promise<number> {
  const x = new Float32Array(buf.buffer);
  const cols = x.length / buf.rows;
  const feeds = { X: new ort.Tensor("float32", x, [buf.rows, cols]) };
  const t0 = performance.now();
  await session.run(feeds);
  return buf.bytes / ((performance.now() - t0) / 1000);
}
