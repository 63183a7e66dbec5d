/**
 * Benchmarks of the inference engine on the 0.5B-geometry bench model (fp32, 2 threads):
 * - decode tokens/s at batch 1 next to the memory-bandwidth ceiling, a bare onnxruntime loop
 *   and transformers.js;
 * - K children from a shared, cached prefix vs K independent generations;
 * - incremental vs whole-text reward scoring of a growing trajectory.
 *
 * Every comparison alternates its variants (A B A B ...) and reports medians.
 *
 * @module
 */
import {
  type Generation,
  loadTokenizer,
  makeSampler,
  OnnxPolicy,
  Random,
  sampleToken,
  type Tokenizer,
} from "../inference/mod.ts";
import { OnnxReward, type RewardLoadOptions } from "../reward/mod.ts";
import { jsReadBandwidth, openReduceSum, ortReadBandwidth, ReadBuffer } from "./_bandwidth.ts";
import { BareDecoder } from "./_bare.ts";
import { benchMatmulRows, type MatmulRowsResult } from "./_matmul.ts";
import { BENCH_MODEL_ONNX, ensureBenchModel, weightBytes } from "./_model.ts";
import { alternate, median, progress, since } from "./_stats.ts";
import { textOfTokens, trajectory } from "./_text.ts";
import { TjsDecoder } from "./_tjs.ts";

/** Intra-op threads of every session here (faster than the default on these machines). */
export const THREADS = 2;

/** Options of {@linkcode benchDecode}. */
export interface DecodeOptions {
  /** Prompt tokens (default 256). */
  promptTokens?: number;
  /** New tokens per generation (default 64). */
  newTokens?: number;
  /** Rounds (default 7). */
  reps?: number;
  /** Bytes of the bandwidth buffer (default 1 GiB). */
  bandwidthBytes?: number;
}

/** Where the project's decode time goes, per step (one instrumented generation). */
export interface DecodeProfile {
  /** Inside `OnnxCausalLM.forward` (feeds, session.run, outputs). */
  forwardMs: number;
  /** The rest of `generate()` per step (sampling, text decode, cache bookkeeping). */
  outsideMs: number;
  /** `sampleToken` on one 151936-logit row, greedy (log-sum-exp + argmax). */
  sampleGreedyMs: number;
  /** `sampleToken` at temperature 1 (no top-k/top-p). */
  sampleT1Ms: number;
  /** One `tokenizer.decode` of the prompt tail + the new ids (done once per new token). */
  textDecodeMs: number;
}

/** What {@linkcode benchDecode} measured (medians; times per decode step). */
export interface DecodeResult {
  /** Prompt tokens. */
  promptTokens: number;
  /** Decode steps timed per run (forward passes after the prefill). */
  steps: number;
  /** Rounds. */
  reps: number;
  /** Bytes read per token (the weight file). */
  weightBytes: number;
  /** Read bandwidth in bytes/s: JS loop (1 thread), ReduceSum on 1 and 2 threads. */
  bandwidth: { js: number; ort1: number; ort2: number };
  /** weightBytes / bandwidth.ort2, in ms: the 2-thread ceiling. */
  ceilingMs: number;
  /** Bare onnxruntime loop, ms per step. */
  bareMs: number;
  /** The project's `OnnxPolicy.generate()`, ms per step. */
  projectMs: number;
  /** transformers.js `generate()`, ms per step, or why it could not run. */
  tjsMs: number | string;
  /** transformers.js prefill seconds (for reference). */
  tjsPrefillS?: number;
  /** Whether the greedy tokens of the project (and transformers.js) equal the bare loop's. */
  agree: { project: boolean; tjs?: boolean };
  /** All raw measurements, ms per step (bandwidth in GB/s). */
  raw: Record<string, number[]>;
  /** Breakdown of the project path. */
  profile: DecodeProfile;
}

/**
 * Decode speed at batch 1 (greedy, after a cached prompt), next to the bandwidth ceiling, a
 * bare onnxruntime loop and transformers.js, in one process, alternating.
 *
 * @param options Lengths and rounds.
 * @returns Medians and the profile of the project path.
 */
export async function benchDecode(options: DecodeOptions = {}): Promise<DecodeResult> {
  const { promptTokens = 256, newTokens = 64, reps = 7 } = options;
  const dir = await ensureBenchModel();
  const steps = newTokens - 1; // the first new token comes from the prefill's logits
  progress(`decode: loading the project policy, a bare session and transformers.js`);
  const policy = await OnnxPolicy.load(dir, { threads: THREADS });
  const { layers, kvHeads, headDim } = policy.lm.layout;
  const bare = await BareDecoder.open(BENCH_MODEL_ONNX, {
    layers,
    kvHeads,
    headDim,
    threads: THREADS,
  });
  let tjs: TjsDecoder | string;
  try {
    tjs = await TjsDecoder.open(dir, THREADS);
  } catch (e) {
    tjs = `failed to load: ${(e as Error).message.split("\n")[0]}`;
    progress(`decode: transformers.js ${tjs}`);
  }
  const buf = new ReadBuffer(options.bandwidthBytes ?? 2 ** 30);
  const rs1 = await openReduceSum(1), rs2 = await openReduceSum(2);
  try {
    const prompt = textOfTokens(policy.tokenizer, promptTokens, { seed: 42 }).text;
    const ids = policy.tokenizer.encode(prompt);
    const gen = { maxNewTokens: newTokens, temperature: 0 };
    const t0 = performance.now();
    const [first] = await policy.generate(prompt, gen); // fills the cache: later runs decode only
    progress(`decode: project prefill + first run ${since(t0).toFixed(1)} s`);
    const prefill = await bare.run(ids, 0, null);
    const agree: DecodeResult["agree"] = { project: true };
    const ref = (await bare.greedy(prefill, ids.length, steps)).ids;
    agree.project = sameIds(first, ref);
    const tjsPrefillS: number[] = [];
    const bw: Record<string, number[]> = { js: [], ort1: [], ort2: [] };
    const variants: Record<string, () => Promise<number>> = {
      "bandwidth ort 2 threads (GB/s)": async () => {
        bw.js.push(jsReadBandwidth(buf) / 1e9);
        bw.ort1.push(await ortReadBandwidth(rs1, buf) / 1e9);
        bw.ort2.push(await ortReadBandwidth(rs2, buf) / 1e9);
        return bw.ort2.at(-1)!;
      },
      "bare (ms/step)": async () =>
        (await bare.greedy(prefill, ids.length, steps)).seconds * 1e3 / steps,
      "project (ms/step)": async () => {
        const t = performance.now();
        const [g] = await policy.generate(prompt, gen);
        agree.project &&= sameIds(g, ref);
        return (performance.now() - t) / steps;
      },
    };
    if (typeof tjs !== "string") {
      const m = tjs;
      variants["transformers.js (ms/step)"] = async () => {
        const r = await m.greedy(ids, newTokens);
        agree.tjs = (agree.tjs ?? true) && r.ids.join() === ref.join();
        tjsPrefillS.push(r.prefillSeconds);
        return r.decodeSeconds * 1e3 / r.steps;
      };
    }
    const raw = await alternate(reps, variants, "decode");
    raw["bandwidth js (GB/s)"] = bw.js;
    raw["bandwidth ort 1 thread (GB/s)"] = bw.ort1;
    const profile = await profileProject(policy, prompt, gen, steps);
    const bytes = await weightBytes();
    const bandwidth = {
      js: median(bw.js) * 1e9,
      ort1: median(bw.ort1) * 1e9,
      ort2: median(bw.ort2) * 1e9,
    };
    return {
      promptTokens: ids.length,
      steps,
      reps,
      weightBytes: bytes,
      bandwidth,
      ceilingMs: bytes / bandwidth.ort2 * 1e3,
      bareMs: median(raw["bare (ms/step)"]),
      projectMs: median(raw["project (ms/step)"]),
      tjsMs: typeof tjs === "string" ? tjs : median(raw["transformers.js (ms/step)"]),
      tjsPrefillS: tjsPrefillS.length ? median(tjsPrefillS) : undefined,
      agree,
      raw,
      profile,
    };
  } finally {
    await policy.close();
    await bare.close();
    if (typeof tjs !== "string") await tjs.close();
    await rs1.release();
    await rs2.release();
  }
}

function sameIds(g: Generation, ref: readonly number[]): boolean {
  return g.ids.join() === ref.slice(0, g.ids.length).join() && g.ids.length === ref.length;
}

/** One instrumented generation, and the per-token helpers timed alone. */
async function profileProject(
  policy: OnnxPolicy,
  prompt: string,
  gen: { maxNewTokens: number; temperature: number },
  steps: number,
): Promise<DecodeProfile> {
  const lm = policy.lm;
  const forward = lm.forward;
  let inside = 0;
  lm.forward = async (...args: Parameters<typeof forward>) => {
    const t = performance.now();
    try {
      return await forward.apply(lm, args);
    } finally {
      inside += performance.now() - t;
    }
  };
  let total: number;
  try {
    const t = performance.now();
    await policy.generate(prompt, gen);
    total = performance.now() - t;
  } finally {
    lm.forward = forward;
  }
  const V = lm.graph.vocabSize;
  const logits = new Float32Array(V);
  const rng = new Random(1);
  for (let i = 0; i < V; i++) logits[i] = (rng.next() - 0.5) * 8;
  const perCall = (n: number, f: () => void) => {
    f();
    const t = performance.now();
    for (let i = 0; i < n; i++) f();
    return (performance.now() - t) / n;
  };
  const greedy = makeSampler({ temperature: 0 }), t1 = makeSampler({ temperature: 1 });
  const tail = policy.tokenizer.encode(prompt).slice(-4);
  const newIds = Array.from({ length: steps + 1 }, (_, i) => 200 + ((i * 7919) % 40000));
  return {
    forwardMs: inside / steps,
    outsideMs: (total - inside) / steps,
    sampleGreedyMs: perCall(50, () => sampleToken(logits, { sampler: greedy, rng })),
    sampleT1Ms: perCall(50, () => sampleToken(logits, { sampler: t1, rng })),
    textDecodeMs: perCall(1, () => {
      for (let k = 1; k <= newIds.length; k++) decodeLike(policy.tokenizer, tail, newIds, k);
    }) / newIds.length,
  };
}

function decodeLike(tok: Tokenizer, tail: number[], ids: number[], k: number): string {
  return tok.decode([...tail, ...ids.slice(0, k)], { skipSpecialTokens: true });
}

/** Options of {@linkcode benchSiblings}. */
export interface SiblingsOptions {
  /** Prefix tokens (default 512). */
  prefixTokens?: number;
  /** Children (default 6). */
  k?: number;
  /** New tokens per child (default 64). */
  newTokens?: number;
  /** Rounds (default 3). */
  reps?: number;
}

/** What {@linkcode benchSiblings} measured (median seconds). */
export interface SiblingsResult {
  /** Prefix tokens. */
  prefixTokens: number;
  /** Children. */
  k: number;
  /** New tokens per child. */
  newTokens: number;
  /** Rounds. */
  reps: number;
  /** Cold cache: one prefill + batched decode. */
  batchedCold: number;
  /** Cold cache: k times (clear, prefill, decode one). */
  independentCold: number;
  /** Prefix cached: batched decode only. */
  batchedWarm: number;
  /** Prefix cached: k single decodes. */
  independentWarm: number;
  /** Children whose tokens were the same batched and alone (same seeds), of k, last round. */
  sameChildren: number;
  /** Tokens generated per variant, last round. */
  tokens: { batched: number; independent: number };
  /** Raw seconds. */
  raw: Record<string, number[]>;
  /** The weight products alone on 1 and k rows (what batching costs in the kernels). */
  matmul: MatmulRowsResult;
}

/**
 * K children from one prefix: batched from the shared prefix vs K independent generations,
 * with a cold cache and with the prefix already cached.
 *
 * A cold run is `cache.clear()`, then `prefill(prompt)`, then `generate(prompt)`: exactly the
 * work of `generate()` on a cold cache (it calls prefill first), timed in two parts so that
 * the warm figure (prefix cached: the generate part alone) comes from the same run. Then the
 * weight products of a few layers alone, on 1 and k rows ({@linkcode benchMatmulRows}): the
 * least a batch-k step can cost in batch-1 steps here, hence the most siblings can gain.
 *
 * @param options Lengths and rounds.
 * @returns Medians.
 */
export async function benchSiblings(options: SiblingsOptions = {}): Promise<SiblingsResult> {
  const { prefixTokens = 512, k = 6, newTokens = 64, reps = 3 } = options;
  const dir = await ensureBenchModel();
  progress(`siblings: loading the project policy`);
  const policy = await OnnxPolicy.load(dir, { threads: THREADS });
  try {
    const prompt = textOfTokens(policy.tokenizer, prefixTokens, { seed: 7 }).text;
    const seed = 1234;
    const opts = { maxNewTokens: newTokens, temperature: 1 };
    let batched: Generation[] = [], alone: Generation[] = [];
    const warm: Record<string, number[]> = { batched: [], independent: [] };
    const timed = async (n: number, s: number) => {
      policy.cache.clear();
      const t0 = performance.now();
      await policy.prefill(prompt);
      const t1 = performance.now();
      const out = await policy.generate(prompt, { ...opts, n, seed: s });
      const t2 = performance.now();
      return { out, cold: (t2 - t0) / 1000, warm: (t2 - t1) / 1000 };
    };
    const raw = await alternate(reps, {
      "batched cold (s)": async () => {
        const r = await timed(k, seed);
        batched = r.out;
        warm.batched.push(r.warm);
        return r.cold;
      },
      "independent cold (s)": async () => {
        let cold = 0, w = 0;
        alone = [];
        for (let i = 0; i < k; i++) {
          const r = await timed(1, seed + i);
          alone.push(r.out[0]);
          cold += r.cold;
          w += r.warm;
        }
        warm.independent.push(w);
        return cold;
      },
    }, "siblings");
    progress(
      `siblings: warm (generate part) batched ${
        warm.batched.map((x) => x.toFixed(1))
      } s, independent ${warm.independent.map((x) => x.toFixed(1))} s`,
    );
    raw["batched warm (s)"] = warm.batched;
    raw["independent warm (s)"] = warm.independent;
    const matmul = await benchMatmulRows({ k, reps: Math.max(3, reps), threads: THREADS });
    return {
      prefixTokens: policy.tokenizer.encode(prompt).length,
      k,
      newTokens,
      reps,
      batchedCold: median(raw["batched cold (s)"]),
      independentCold: median(raw["independent cold (s)"]),
      batchedWarm: median(warm.batched),
      independentWarm: median(warm.independent),
      sameChildren: batched.filter((g, i) => g.ids.join() === alone[i]?.ids.join()).length,
      tokens: {
        batched: batched.reduce((s, g) => s + g.ids.length, 0),
        independent: alone.reduce((s, g) => s + g.ids.length, 0),
      },
      raw,
      matmul,
    };
  } finally {
    await policy.close();
  }
}

/** Options of {@linkcode benchReward}. */
export interface RewardOptions {
  /** Steps of the trajectory (default 7). */
  steps?: number;
  /** Question tokens (default 60). */
  questionTokens?: number;
  /** Rounds (default 5). */
  reps?: number;
}

/** What {@linkcode benchReward} measured. */
export interface RewardResult {
  /** Steps. */
  steps: number;
  /** Tokens of the question, of the whole scored text (last call), last round. */
  tokens: { question: number; total: number };
  /** Rounds. */
  reps: number;
  /** Median seconds of scoreSteps(1..steps) with incremental scoring. */
  incremental: number;
  /** The same with every text re-run whole. */
  whole: number;
  /** Positions run per round by each. */
  positions: { incremental: number; whole: number };
  /** Largest difference between the two variants' scores (last round). */
  maxScoreDiff: number;
  /** Raw seconds. */
  raw: Record<string, number[]>;
}

/**
 * Step-by-step scoring of a trajectory (scoreSteps with 1, 2, ..., n steps) by the bench model
 * as a math-shepherd reward: incremental (KV prefix tree + memo) vs re-running each text.
 * Each round uses a new question, so that nothing is cached from the round before.
 *
 * @param options Steps, question length, rounds.
 * @returns Medians.
 */
export async function benchReward(options: RewardOptions = {}): Promise<RewardResult> {
  const { steps = 7, questionTokens = 60, reps = 5 } = options;
  const dir = await ensureBenchModel();
  progress(`reward: loading the bench model twice (incremental and whole)`);
  const cfg: RewardLoadOptions = {
    head: "lm-tokens",
    format: "math-shepherd",
    step_tag: " ки",
    label_tokens: ["+", "-"],
    threads: THREADS,
  };
  const inc = await OnnxReward.load(dir, { ...cfg, incremental: true });
  const whole = await OnnxReward.load(dir, { ...cfg, incremental: false });
  const tok = await loadTokenizer(dir);
  try {
    const rounds = Array.from(
      { length: reps },
      (_, r) => trajectory(tok, { round: r, qTokens: questionTokens, steps }),
    );
    const scores: Record<string, number[]> = {};
    const positions = { incremental: 0, whole: 0 };
    const run = (m: OnnxReward, name: "incremental" | "whole") => {
      let round = 0;
      return async () => {
        const { question, steps: s } = rounds[round++];
        const before = m.positionsRun;
        const t0 = performance.now();
        let last: number[] = [];
        for (let n = 1; n <= s.length; n++) last = await m.scoreSteps(question, s.slice(0, n));
        const dt = since(t0);
        positions[name] = m.positionsRun - before;
        scores[name] = last;
        return dt;
      };
    };
    const raw = await alternate(reps, {
      "incremental (s)": run(inc, "incremental"),
      "whole (s)": run(whole, "whole"),
    }, "reward");
    const last = rounds[reps - 1];
    const totalText = `${last.question} ${last.steps.map((s) => s + " ки").join("\n")}`;
    return {
      steps,
      tokens: { question: tok.encode(last.question).length, total: tok.encode(totalText).length },
      reps,
      incremental: median(raw["incremental (s)"]),
      whole: median(raw["whole (s)"]),
      positions,
      maxScoreDiff: Math.max(
        ...scores.incremental.map((s, i) => Math.abs(s - scores.whole[i])),
      ),
      raw,
    };
  } finally {
    await inc.close();
    await whole.close();
  }
}

/** glibc malloc settings that keep freed memory (those of the trainer, `_runtime.py`). */
export const MALLOC_ENV: Record<string, string> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20), // glibc's maximum on 64-bit
  MALLOC_TRIM_THRESHOLD_: String(2 ** 30),
  MALLOC_TOP_PAD_: String(256 * 2 ** 20),
};

/** Options of {@linkcode benchMalloc}. */
export interface MallocOptions {
  /** Prompt tokens (default 256). */
  promptTokens?: number;
  /** New tokens per generation (default 32). */
  newTokens?: number;
  /** Rounds: each runs one process per setting (default 3). */
  reps?: number;
}

/** What {@linkcode benchMalloc} measured: median ms per decode step. */
export interface MallocResult {
  /** Default glibc malloc. */
  plain: { bare: number; project: number };
  /** With {@linkcode MALLOC_ENV}. */
  tuned: { bare: number; project: number };
  /** Rounds. */
  reps: number;
  /** Raw ms per step. */
  raw: Record<string, number[]>;
}

/**
 * Decode speed (bare loop and project) in fresh processes with glibc's default malloc vs
 * {@linkcode MALLOC_ENV}, which glibc reads at startup: hence one process per measurement.
 *
 * @param options Lengths and rounds.
 * @returns Medians.
 */
export async function benchMalloc(options: MallocOptions = {}): Promise<MallocResult> {
  const { promptTokens = 256, newTokens = 32, reps = 3 } = options;
  await ensureBenchModel();
  const root = new URL("..", import.meta.url);
  const child = new URL("./_decode_child.ts", import.meta.url).pathname;
  const inherited = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("MALLOC_")),
  );
  const got: Record<string, { bare: number; project: number }> = {};
  let n = 0;
  const run = (name: string, env: Record<string, string>) => async () => {
    const order = n++ % 4 < 2 ? [] : ["project-first"]; // vary which runs first, too
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", child, String(promptTokens), String(newTokens), ...order],
      cwd: root,
      env: { ...inherited, ...env },
      clearEnv: true,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error(`Cannot run ${child}: exit code ${out.code}`);
    got[name] = JSON.parse(new TextDecoder().decode(out.stdout));
    return got[name].project;
  };
  const bare: Record<string, number[]> = { plain: [], tuned: [] };
  const wrap = (name: "plain" | "tuned", f: () => Promise<number>) => async () => {
    const v = await f();
    bare[name].push(got[name].bare);
    return v;
  };
  const raw = await alternate(reps, {
    "project, default malloc (ms/step)": wrap("plain", run("plain", {})),
    "project, MALLOC_* set (ms/step)": wrap("tuned", run("tuned", MALLOC_ENV)),
  }, "malloc");
  raw["bare, default malloc (ms/step)"] = bare.plain;
  raw["bare, MALLOC_* set (ms/step)"] = bare.tuned;
  progress(
    `malloc: bare default ${bare.plain.map((x) => x.toFixed(1))}, tuned ${
      bare.tuned.map((x) => x.toFixed(1))
    }`,
  );
  return {
    plain: {
      bare: median(bare.plain),
      project: median(raw["project, default malloc (ms/step)"]),
    },
    tuned: { bare: median(bare.tuned), project: median(raw["project, MALLOC_* set (ms/step)"]) },
    reps,
    raw,
  };
}
