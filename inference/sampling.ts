/**
 * Seedable randomness and token samplers (greedy, temperature, top-k, top-p).
 *
 * @module
 */
import type { SamplingOptions } from "./types.ts";

/** A small, fast, seedable PRNG (splitmix32 mixed state). Same seed, same sequence. */
export class Random {
  #state: number;

  /** @param seed Any integer; it is mixed so that near seeds give unrelated streams. */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) {
      throw new RangeError(`Cannot seed Random as 'seed' must be finite: current value is ${seed}`);
    }
    this.#state = mix32(Math.trunc(seed) ^ 0x9e3779b9);
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    this.#state = (this.#state + 0x9e3779b9) | 0;
    return mix32(this.#state);
  }

  /** Next float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Next integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** log(sum(exp(x))) over a slice, computed stably. */
export function logSumExp(x: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i] - max);
  return max + Math.log(sum);
}

/** Index of the largest value (the first one on ties). */
export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** The `k` largest entries of `x`, largest first, as `[index, value]` pairs. */
export function topK(x: Float32Array, k: number): { id: number; value: number }[] {
  const n = Math.min(k, x.length);
  if (n <= 0) return [];
  // Keep a sorted (descending) buffer of the best n; insertion is O(n) but rare after warm-up.
  const ids = new Int32Array(n);
  const vals = new Float32Array(n).fill(-Infinity);
  let filled = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (filled === n && v <= vals[n - 1]) continue;
    let j = filled < n ? filled++ : n - 1;
    while (j > 0 && vals[j - 1] < v) {
      vals[j] = vals[j - 1];
      ids[j] = ids[j - 1];
      j--;
    }
    vals[j] = v;
    ids[j] = i;
  }
  return Array.from({ length: filled }, (_, i) => ({ id: ids[i], value: vals[i] }));
}

/** Validated sampling settings. */
export interface Sampler {
  /** 0 = greedy. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
}

/**
 * Validate sampling options and fill defaults.
 *
 * @param options The user's options.
 * @returns Settings ready for {@linkcode sampleToken}.
 */
export function makeSampler(options: SamplingOptions = {}): Sampler {
  const temperature = options.temperature ?? 1;
  const topK = options.topK ?? 0;
  const topP = options.topP ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new RangeError(
      `Cannot sample as 'temperature' must be a finite number >= 0: current value is ${temperature}`,
    );
  }
  if (!Number.isInteger(topK) || topK < 0) {
    throw new RangeError(
      `Cannot sample as 'topK' must be an integer >= 0: current value is ${topK}`,
    );
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new RangeError(`Cannot sample as 'topP' must be in (0, 1]: current value is ${topP}`);
  }
  return { temperature, topK, topP };
}

/** A sampled token and its log-probability under the raw logits. */
export interface SampledToken {
  /** Token id. */
  id: number;
  /** log p(id) under softmax(logits), before temperature and truncation. */
  logprob: number;
}

/**
 * Draw one token from `logits` (one row, vocabulary-sized).
 *
 * Order as in Hugging Face transformers: temperature, then top-k, then top-p.
 *
 * @param logits Raw logits of one position.
 * @param options Sampler settings and the stream of randomness.
 * @returns The token and its raw log-probability.
 */
export function sampleToken(
  logits: Float32Array,
  options: { sampler: Sampler; rng: Random },
): SampledToken {
  const { sampler, rng } = options;
  if (sampler.temperature === 0) return greedyToken(logits);
  if (sampler.topK === 0 && sampler.topP === 1) return drawFull(logits, sampler.temperature, rng);
  const lse = logSumExp(logits);
  const candidates = truncated(logits, sampler);
  const id = drawFrom(candidates, rng);
  return { id, logprob: logits[id] - lse };
}

// The two paths below run once per generated token over the whole vocabulary (150k logits
// for Qwen), so they make as few passes as they can and allocate nothing; they give exactly
// the results of logSumExp + argmax / truncated + drawFrom (same operations, same order).

/** Argmax and log-sum-exp in two passes (max with its index, then the sum). */
function greedyToken(logits: Float32Array): SampledToken {
  let id = 0, max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x > max) max = x;
    if (x > logits[id]) id = i; // as argmax() does, also when there are NaNs
  }
  if (max === -Infinity) return { id: 0, logprob: logits[0] - max };
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return { id, logprob: logits[id] - (max + Math.log(sum)) };
}

let scratch = new Float64Array(0);

/**
 * Temperature sampling over the whole vocabulary: max, tempered weights (kept in a reused
 * buffer) and their total, then the draw. At temperature 1 the total is also the sum of
 * log-sum-exp, which saves a pass.
 */
function drawFull(logits: Float32Array, temperature: number, rng: Random): SampledToken {
  const n = logits.length;
  const invT = 1 / temperature;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  if (scratch.length < n) scratch = new Float64Array(n);
  const w = scratch;
  let total = 0;
  for (let i = 0; i < n; i++) {
    w[i] = Math.exp((logits[i] - max) * invT);
    total += w[i];
  }
  const lse = invT === 1
    ? (max === -Infinity ? -Infinity : max + Math.log(total))
    : logSumExp(logits);
  let r = rng.next() * total;
  for (let i = 0; i < n; i++) {
    r -= w[i];
    if (r < 0) return { id: i, logprob: logits[i] - lse };
  }
  return { id: n - 1, logprob: logits[n - 1] - lse };
}

interface Candidates {
  ids: Int32Array;
  probs: Float64Array;
  total: number;
}

/** Tokens that survive top-k/top-p with their (unnormalized) tempered probabilities. */
function truncated(logits: Float32Array, s: Sampler): Candidates {
  const invT = 1 / s.temperature;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let pool: Int32Array;
  let fullMass: number | undefined; // mass of the distribution top-p truncates, if pool is partial
  if (s.topK > 0 && s.topK < logits.length) {
    pool = Int32Array.from(topK(logits, s.topK), (t) => t.id);
  } else if (s.topP < 1) {
    ({ pool, allMass: fullMass } = nucleusPool(logits, max, invT, s.topP));
  } else {
    pool = Int32Array.from({ length: logits.length }, (_, i) => i);
  }
  let probs = new Float64Array(pool.length);
  let total = 0;
  for (let i = 0; i < pool.length; i++) {
    probs[i] = Math.exp((logits[pool[i]] - max) * invT);
    total += probs[i];
  }
  if (s.topP < 1) {
    // Sort the pool by probability and keep the smallest prefix whose mass reaches topP.
    const order = Array.from(pool.keys()).sort((a, b) => probs[b] - probs[a]);
    const target = s.topP * (fullMass ?? total);
    const keep: number[] = [];
    let mass = 0;
    for (const i of order) {
      keep.push(i);
      mass += probs[i];
      if (mass >= target) break;
    }
    pool = Int32Array.from(keep, (i) => pool[i]);
    probs = Float64Array.from(keep, (i) => probs[i]);
    total = mass;
  }
  return { ids: pool, probs, total };
}

/**
 * Tokens whose tempered probability is at least 1e-7 of the top one, when their mass already
 * exceeds topP (then the nucleus lies inside them); otherwise every token. Exact either way,
 * and it avoids sorting a 150k vocabulary for every token.
 */
function nucleusPool(
  logits: Float32Array,
  max: number,
  invT: number,
  topP: number,
): { pool: Int32Array; allMass: number } {
  const cut = Math.log(1e-7) / invT + max;
  const kept: number[] = [];
  let keptMass = 0;
  let allMass = 0;
  for (let i = 0; i < logits.length; i++) {
    const p = Math.exp((logits[i] - max) * invT);
    allMass += p;
    if (logits[i] >= cut) {
      kept.push(i);
      keptMass += p;
    }
  }
  if (keptMass >= topP * allMass) return { pool: Int32Array.from(kept), allMass };
  return { pool: Int32Array.from({ length: logits.length }, (_, i) => i), allMass };
}

function drawFrom(c: Candidates, rng: Random): number {
  let r = rng.next() * c.total;
  for (let i = 0; i < c.ids.length; i++) {
    r -= c.probs[i];
    if (r < 0) return c.ids[i];
  }
  return c.ids[c.ids.length - 1];
}
