/**
 * A few protobuf fields of ONNX, encoded by hand, so that the benchmarks can build the small
 * graphs they time (ReduceSum, MatMul) without onnx tooling.
 *
 * @module
 */

/** Protobuf base-128 varint. */
export function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Field key (number and wire type). */
export const key = (field: number, wire: number): number[] => varint(field * 8 + wire);
/** A varint field. */
export const num = (field: number, v: number): number[] => [...key(field, 0), ...varint(v)];
/** A length-delimited field. */
export const bytes = (field: number, b: number[]): number[] => [
  ...key(field, 2),
  ...varint(b.length),
  ...b,
];
/** A string field. */
export const str = (field: number, s: string): number[] =>
  bytes(field, [...new TextEncoder().encode(s)]);

/** A ValueInfoProto of a float32 tensor (dims: numbers or symbolic names). */
export function floatValueInfo(name: string, dims: (number | string)[]): number[] {
  const dim = (d: number | string) => bytes(1, typeof d === "number" ? num(1, d) : str(2, d));
  const shape = dims.flatMap(dim);
  const tensorType = [...num(1, 1), ...bytes(2, shape)]; // elem_type FLOAT, shape
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];
}
