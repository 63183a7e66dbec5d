import assert from "node:assert/strict";
import { type Dtype, OnnxCausalLM } from "../../inference/mod.ts";
import { testdataPath } from "../_helpers.ts";

const SEQ = [5, 17, 99, 3, 42, 250, 7, 64, 11, 200, 33, 90];

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function cachedVsFull(dir: string, dtype?: Dtype): Promise<number> {
  const lm = await OnnxCausalLM.load(testdataPath(dir), { dtype, threads: 1 });
  try {
    const full = await lm.forward([SEQ]);
    const head = await lm.forward([SEQ.slice(0, 11)]);
    const step = await lm.forward([SEQ.slice(11)], { past: head.kv });
    assert.equal(step.kv.length, 12);
    return maxDiff(full.logits, step.logits);
  } finally {
    await lm.close();
  }
}

Deno.test("one KV-cached step gives the logits of a full recompute (fp32, GQA)", async () => {
  const d = await cachedVsFull("models/decoder-fp32");
  assert.ok(d < 1e-4, `max abs diff ${d}`);
});

Deno.test("the KV path works with weights in external data", async () => {
  const d = await cachedVsFull("models/decoder-external");
  assert.ok(d < 1e-4, `max abs diff ${d}`);
});

Deno.test("the optimum merged decoder gets use_cache_branch right", async () => {
  const d = await cachedVsFull("models/decoder-merged");
  assert.ok(d < 1e-4, `max abs diff ${d}`);
});

Deno.test("fp16 KV comes back as bit patterns that feed back as past", async () => {
  const d = await cachedVsFull("models/decoder-fp16", "fp16");
  assert.ok(d < 2e-2, `max abs diff ${d}`);
});

Deno.test("fp16 and fp32 graphs of the same weights agree", async () => {
  const a = await OnnxCausalLM.load(testdataPath("models/decoder-fp16"), { dtype: "fp32" });
  const b = await OnnxCausalLM.load(testdataPath("models/decoder-fp16"), { dtype: "fp16" });
  try {
    assert.equal(b.layout.dtype, "float16");
    assert.equal(a.layout.dtype, "float32");
    const d = maxDiff((await a.forward([SEQ])).logits, (await b.forward([SEQ])).logits);
    assert.ok(d < 2e-2, `max abs diff ${d}`);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("4-bit MatMulNBits weights track the fp32 model", async () => {
  const a = await OnnxCausalLM.load(testdataPath("models/decoder-q4"), { dtype: "fp32" });
  const b = await OnnxCausalLM.load(testdataPath("models/decoder-q4"), { dtype: "q4" });
  try {
    const x = (await a.forward([SEQ])).logits, y = (await b.forward([SEQ])).logits;
    assert.ok(y.every(Number.isFinite));
    let sxy = 0, sxx = 0, syy = 0;
    const mx = x.reduce((s, v) => s + v, 0) / x.length,
      my = y.reduce((s, v) => s + v, 0) / y.length;
    for (let i = 0; i < x.length; i++) {
      sxy += (x[i] - mx) * (y[i] - my);
      sxx += (x[i] - mx) ** 2;
      syy += (y[i] - my) ** 2;
    }
    const r = sxy / Math.sqrt(sxx * syy);
    assert.ok(r > 0.9, `correlation ${r}`);
    assert.ok(maxDiff(x, y) > 0, "q4 should not be bit-identical to fp32");
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("num_logits_to_keep returns only the kept positions, equal to the full logits", async () => {
  const lm = await OnnxCausalLM.load(testdataPath("models/decoder-fp32"));
  try {
    assert.ok(lm.graph.hasLogitsToKeep);
    const V = lm.graph.vocabSize;
    const one = await lm.forward([SEQ], { keep: 1 });
    const three = await lm.forward([SEQ], { keep: 3 });
    assert.equal(one.logits.length, V);
    assert.equal(three.logits.length, 3 * V);
    assert.ok(maxDiff(one.logits, three.logits.subarray(2 * V)) < 1e-5);
  } finally {
    await lm.close();
  }
});

Deno.test("the layout is read from the graph: layers, KV heads, head size", async () => {
  const lm = await OnnxCausalLM.load(testdataPath("models/decoder-fp32"));
  try {
    assert.deepEqual(lm.layout, { layers: 2, kvHeads: 2, headDim: 8, dtype: "float32" });
  } finally {
    await lm.close();
  }
});

Deno.test("a batch of rows gives each row's own logits", async () => {
  const lm = await OnnxCausalLM.load(testdataPath("models/decoder-fp32"));
  try {
    const V = lm.graph.vocabSize;
    const a = SEQ.slice(0, 6), b = SEQ.slice(6);
    const both = await lm.forward([a, b]);
    const ra = await lm.forward([a]), rb = await lm.forward([b]);
    assert.ok(maxDiff(both.logits.subarray(0, V), ra.logits) < 1e-5);
    assert.ok(maxDiff(both.logits.subarray(V), rb.logits) < 1e-5);
  } finally {
    await lm.close();
  }
});
