/**
 * The default run of `deno task agent` with no flags: the bundled synthetic problems solved
 * by the bundled tiny models under five configurations (greedy, best-of-N with the ORM,
 * step-greedy with the PRM, step-greedy with the HRM, MCTS with the HRM), one table at the
 * end.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type PolicyModel, Progress } from "../inference/mod.ts";
import type { RewardModel } from "../reward/mod.ts";
import { openPolicy, openReward } from "./backends.ts";
import { gradeSolution } from "./grading.ts";
import { solve, type SolveOptions } from "./loop.ts";
import { generateProblems } from "./synthetic.ts";

/** Where the bundled models live: `<repo>/models/{policy,orm,prm,hrm}`. */
export const BUNDLED_MODELS = fileURLToPath(new URL("../models/", import.meta.url));

/** Seed of the bundled (held-out) problem set; training data uses other seeds. */
export const BUNDLED_SEED = 1000;

/**
 * PUCT's exploration constant in the default run's MCTS. Tuned on problems of seed 1001 (never
 * on the reported set): models/README.md has the measurements.
 */
export const BUNDLED_C_PUCT = 1.5;

/**
 * Children per expansion in the default run's MCTS. Tuned on 150 problems of seed 1001
 * (greedy 93): k = 4, 8, 16, 24 gave 111, 115, 120, 118 right; models/README.md has the rest.
 */
export const BUNDLED_MCTS_K = 16;

/**
 * Longest step (tokens) the bundled policy writes in the annotation trees and the bundled
 * evaluation: a path led astray otherwise grows 160-token steps far past the policy's 512-token
 * context (measured: one problem's step-greedy at N = 64 took 284 s, 258 of them generating such
 * steps).
 */
export const BUNDLED_MAX_STEP_TOKENS = 48;

/** One row of the default run's table. */
export interface DefaultRow {
  /** The configuration. */
  name: string;
  /** Problems. */
  problems: number;
  /** Correct. */
  correct: number;
  /** Accuracy. */
  accuracy: number;
  /** Tokens generated. */
  tokens: number;
  /** Wall seconds. */
  seconds: number;
}

/** Options of {@linkcode defaultRun}. */
export interface DefaultRunOptions {
  /** Problems (default 100). */
  count?: number;
  /** Models directory (default {@linkcode BUNDLED_MODELS}). */
  modelsDir?: string;
  /** N of best-of-N and step-greedy (default 4). */
  n?: number;
  /** MCTS children per expansion (default {@linkcode BUNDLED_MCTS_K}). */
  mctsK?: number;
  /** MCTS simulations (default 12). */
  simulations?: number;
  /** MCTS exploration constant of PUCT (default {@linkcode BUNDLED_C_PUCT}). */
  cPuct?: number;
  /** Seed of the synthetic problems (default {@linkcode BUNDLED_SEED}, the held-out set). */
  problemSeed?: number;
  /** Sampling temperature of every sampled configuration (default 0.7, as the bundled trees). */
  temperature?: number;
  /** Longest step in tokens (default {@linkcode BUNDLED_MAX_STEP_TOKENS}, as the trees and eval). */
  maxStepTokens?: number;
  /** Threads. */
  threads?: number;
  /** Cancellation. */
  signal?: AbortSignal;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * Check that the bundled models are there.
 *
 * @returns The missing model names (empty when all are present).
 */
export async function missingBundledModels(dir = BUNDLED_MODELS): Promise<string[]> {
  const missing: string[] = [];
  for (const m of ["policy", "orm", "prm", "hrm"]) {
    if (!await exists(`${dir}/${m}/model.onnx`)) missing.push(m);
  }
  return missing;
}

/**
 * Run the five configurations on the bundled problems.
 *
 * @param options Size of the run.
 * @returns The table rows.
 * @throws Error naming the missing models when the bundle is incomplete.
 */
export async function defaultRun(options: DefaultRunOptions = {}): Promise<DefaultRow[]> {
  const dir = options.modelsDir ?? BUNDLED_MODELS;
  const missing = await missingBundledModels(dir);
  if (missing.length) {
    throw new Error(
      `The bundled default models are not built yet (missing ${
        missing.map((m) => `${dir}${m}/model.onnx`).join(", ")
      }): build them with 'deno run -A models/build/build.ts', or pass --problems and --policy/--reward`,
    );
  }
  const threads = options.threads;
  const policy: PolicyModel = await openPolicy(`${dir}/policy`, { threads });
  const rewards: Record<string, RewardModel> = {};
  try {
    for (const m of ["orm", "prm", "hrm"]) {
      rewards[m] = await openReward(`${dir}/${m}`, { threads });
    }
    const problems = generateProblems(options.count ?? 100, {
      seed: options.problemSeed ?? BUNDLED_SEED,
    });
    const n = options.n ?? 4, mctsK = options.mctsK ?? BUNDLED_MCTS_K;
    const configs: {
      name: string;
      o: Omit<SolveOptions, "signal"> & { reward?: string; orm?: boolean };
    }[] = [
      { name: "greedy", o: { strategy: "greedy" } },
      { name: `best-of-${n} (ORM)`, o: { strategy: "best-of-n", n, orm: true } },
      { name: `step-greedy N=${n} (PRM)`, o: { strategy: "step-greedy", n, reward: "prm" } },
      { name: `step-greedy N=${n} (HRM)`, o: { strategy: "step-greedy", n, reward: "hrm" } },
      {
        name: `MCTS k=${mctsK} (HRM)`,
        o: {
          strategy: "mcts",
          k: mctsK,
          budget: { simulations: options.simulations ?? 12 },
          cPuct: options.cPuct ?? BUNDLED_C_PUCT,
          reward: "hrm",
        },
      },
    ];
    const rows: DefaultRow[] = [];
    const bar = new Progress("agent", { total: configs.length * problems.length, unit: "solves" });
    for (const c of configs) {
      const t0 = performance.now();
      let correct = 0, tokens = 0;
      for (const p of problems) {
        const s = await solve(p.question, {
          ...c.o,
          temperature: options.temperature ?? 0.7,
          steps: { maxStepTokens: options.maxStepTokens ?? BUNDLED_MAX_STEP_TOKENS },
          seed: p.index,
          signal: options.signal,
          models: {
            policy,
            reward: c.o.reward ? rewards[c.o.reward] : undefined,
            orm: c.o.orm ? rewards.orm : undefined,
          },
        });
        tokens += s.tokens;
        if (gradeSolution(s.steps.join("\n\n"), p.gold!, { kind: "number" }).correct) correct++;
        bar.tick(1, { config: c.name });
      }
      rows.push({
        name: c.name,
        problems: problems.length,
        correct,
        accuracy: correct / problems.length,
        tokens,
        seconds: (performance.now() - t0) / 1000,
      });
    }
    bar.finish();
    return rows;
  } finally {
    await Promise.allSettled([policy.close(), ...Object.values(rewards).map((r) => r.close())]);
  }
}

/** The rows as a markdown table. */
export function defaultRunTable(rows: readonly DefaultRow[]): string {
  return [
    "| configuration | correct | accuracy | tokens | seconds |",
    "|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.name} | ${r.correct}/${r.problems} | ${
        (100 * r.accuracy).toFixed(1)
      }% | ${r.tokens} | ${r.seconds.toFixed(1)} |`
    ),
  ].join("\n");
}
