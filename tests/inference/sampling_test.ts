import assert from "node:assert/strict";
import { argmax, logSumExp, makeSampler, Random, sampleToken, topK } from "../../inference/mod.ts";

Deno.test("Random gives the same stream for the same seed and another for another seed", () => {
  const a = new Random(42), b = new Random(42), c = new Random(43);
  const xs = Array.from({ length: 100 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.next()));
  assert.notDeepEqual(xs, Array.from({ length: 100 }, () => c.next()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

Deno.test("Random is roughly uniform", () => {
  const r = new Random(7);
  const bins = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) bins[Math.floor(r.next() * 10)]++;
  for (const b of bins) assert.ok(Math.abs(b - 10_000) < 500, `bin count ${b}`);
});

Deno.test("logSumExp is stable for large logits", () => {
  const x = Float32Array.of(1000, 1000);
  assert.ok(Math.abs(logSumExp(x) - (1000 + Math.log(2))) < 1e-9);
});

Deno.test("topK returns the k largest, largest first", () => {
  const x = Float32Array.of(0.1, 5, -2, 3, 9, 3.5);
  assert.deepEqual(topK(x, 3).map((t) => t.id), [4, 1, 5]);
  assert.deepEqual(topK(x, 10).length, 6);
  assert.equal(argmax(x), 4);
});

Deno.test("greedy sampling takes the argmax and reports its raw log-probability", () => {
  const logits = Float32Array.of(1, 3, 2);
  const t = sampleToken(logits, { sampler: makeSampler({ temperature: 0 }), rng: new Random(0) });
  assert.equal(t.id, 1);
  assert.ok(Math.abs(t.logprob - (3 - logSumExp(logits))) < 1e-6);
});

Deno.test("temperature sampling follows the softmax distribution", () => {
  const logits = Float32Array.of(Math.log(0.2), Math.log(0.5), Math.log(0.3));
  const rng = new Random(1);
  const sampler = makeSampler({ temperature: 1 });
  const counts = [0, 0, 0];
  for (let i = 0; i < 20_000; i++) counts[sampleToken(logits, { sampler, rng }).id]++;
  assert.ok(Math.abs(counts[0] / 20_000 - 0.2) < 0.02, `${counts}`);
  assert.ok(Math.abs(counts[1] / 20_000 - 0.5) < 0.02, `${counts}`);
});

Deno.test("logprob is reported before temperature", () => {
  const logits = Float32Array.of(0, 1, 2);
  const t = sampleToken(logits, { sampler: makeSampler({ temperature: 5 }), rng: new Random(3) });
  assert.ok(Math.abs(t.logprob - (logits[t.id] - logSumExp(logits))) < 1e-6);
});

Deno.test("top-k never samples outside the k most likely", () => {
  const logits = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
  const allowed = new Set(topK(logits, 3).map((t) => t.id));
  const sampler = makeSampler({ temperature: 2, topK: 3 });
  const rng = new Random(9);
  for (let i = 0; i < 2000; i++) assert.ok(allowed.has(sampleToken(logits, { sampler, rng }).id));
});

Deno.test("top-p keeps the smallest set reaching the mass, also when the pool shortcut applies", () => {
  // probabilities 0.5, 0.3, 0.15, 0.05 (+ 10k negligible tokens): top-p 0.8 keeps ids 0 and 1.
  const logits = new Float32Array(10_004).fill(-60);
  [0.5, 0.3, 0.15, 0.05].forEach((p, i) => logits[i] = Math.log(p));
  const sampler = makeSampler({ temperature: 1, topP: 0.8 });
  const rng = new Random(5);
  const seen = new Set<number>();
  for (let i = 0; i < 3000; i++) seen.add(sampleToken(logits, { sampler, rng }).id);
  assert.deepEqual([...seen].sort(), [0, 1]);
  // A flat distribution: the nucleus must span ~80% of the tokens.
  const flat = new Float32Array(100);
  const seenFlat = new Set<number>();
  for (let i = 0; i < 5000; i++) seenFlat.add(sampleToken(flat, { sampler, rng }).id);
  assert.ok(seenFlat.size >= 78 && seenFlat.size <= 81, `size ${seenFlat.size}`);
});

Deno.test("makeSampler rejects bad settings with the field and the value", () => {
  assert.throws(() => makeSampler({ temperature: -1 }), /'temperature'.*-1/);
  assert.throws(() => makeSampler({ topP: 0 }), /'topP'.*0/);
  assert.throws(() => makeSampler({ topK: 1.5 }), /'topK'.*1.5/);
});
