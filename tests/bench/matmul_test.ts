import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { matmulModel, pseudoRandomWeights } from "../../bench/_matmul.ts";

// The benchmark's hand-encoded MatMul graph: onnxruntime loads it and every output is the
// product of the input with the weights the encoder says it wrote.
Deno.test("bench matmul model: loads and computes X W for every product", async () => {
  const g = { hidden: 8, kv: 4, mlp: 12, layers: 2 };
  const { model, weightBytes } = matmulModel(g);
  assert.equal(weightBytes, 2 * (8 * 8 * 2 + 8 * 4 * 2 + 8 * 12 * 2 + 12 * 8) * 4);
  const session = await ort.InferenceSession.create(model, { executionProviders: ["cpu"] });
  try {
    const m = 3;
    const x = Float32Array.from({ length: m * g.hidden }, (_, i) => (i % 5) - 2);
    const h = Float32Array.from({ length: m * g.mlp }, (_, i) => (i % 7) - 3);
    const out = await session.run({
      X: new ort.Tensor("float32", x, [m, g.hidden]),
      H: new ort.Tensor("float32", h, [m, g.mlp]),
    });
    assert.equal(Object.keys(out).length, 14);
    const shapes: [string, Float32Array, number, number][] = [
      ["q", x, 8, 8],
      ["k", x, 8, 4],
      ["v", x, 8, 4],
      ["o", x, 8, 8],
      ["gate", x, 8, 12],
      ["up", x, 8, 12],
      ["down", h, 12, 8],
    ];
    let seed = 1;
    for (let l = 0; l < g.layers; l++) {
      for (const [name, input, k, n] of shapes) {
        const w = pseudoRandomWeights(k, n, seed++);
        const y = out[`Y${l}_${name}`];
        assert.deepEqual(y.dims, [m, n], `Y${l}_${name} dims`);
        const data = y.data as Float32Array;
        for (let r = 0; r < m; r++) {
          for (let c = 0; c < n; c++) {
            let want = 0;
            for (let j = 0; j < k; j++) want += input[r * k + j] * w[j * n + c];
            assert.ok(
              Math.abs(data[r * n + c] - want) < 1e-5,
              `Y${l}_${name}[${r},${c}]: ${data[r * n + c]} vs ${want}`,
            );
          }
        }
      }
    }
  } finally {
    await session.release();
  }
});
