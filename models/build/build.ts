// deno-lint-ignore-file no-console -- a build script reports its stages
/**
 * Rebuild the embedded default models end to end, printing how long each stage took:
 *
 * 1. data      synthetic solutions with mistakes and corrections (make_data.ts)
 * 2. policy    the tiny policy (pretrain_policy.py; resumes from its checkpoint)
 * 3. trees     annotation trees of the policy on training problems, with Monte-Carlo labels
 * 4. exports   ORM, PRM and HRM (HNC-augmented) training data from those trees
 * 5. rewards   the reward backbone: the policy taught to read the paper's reward prompt
 *              (backbone_data.py + train_sft); ORM, PRM and HRM on it (train_reward
 *              --likelihood-features --heads-only): a head on the backbone's last hidden
 *              state and on its own log-probabilities of the scored step, trained on the
 *              trees' labels. --plain-rewards: the first recipe instead (every weight of the
 *              policy fine-tuned, no features); experiments: --reward-extra-layers N (a
 *              deeper copy), --reward-dense (labelled at every token of the current step)
 * 6. self-train one round of KL-regularized SFT of the policy on its own trajectories with
 *              a Monte-Carlo score >= 0.95 (the same trees), at beta = 0 and beta = 0.1, and
 *              greedy accuracy of the policy before and after on held-out problems
 *              (written to OUT/selftrain.json; the beta = 0.1 policy to OUT/policy-selftrained)
 *
 * Every stage is skipped when its output is complete, and the long ones resume from their
 * checkpoints, so an interrupted build continues where it stopped: run it again.
 *
 * Usage: deno run -A models/build/build.ts [--work .build] [--out models] [--policy-steps 1200]
 *   [--policy-schedule 3600] [--policy-minutes M] [--tree-problems N] [--tree-k 4] [--tree-full-depth 2]
 *   [--tree-temperature 0.7] [--tree-simulations N] [--reward-steps N]
 *   [--plain-rewards] [--backbone-steps N] [--backbone-steps2 N] [--reward-extra-layers N] [--reward-dense]
 *   [--hrm-data hnc|hrm] [--sft-steps N] [--greedy-problems N] [--threads N] [--device cpu|cuda[:N]]
 *
 * Paths are relative to the working directory. Flags are checked before any stage runs (a bad
 * one: one line, exit 2). The reward models train under WORK and replace OUT's only when
 * finished, so an interrupted build never leaves OUT without them.
 *
 * --device cuda trains the policy, the reward backbone, the reward models and the self-trained
 * policies on a GPU where one is lent; nothing in the product needs one.
 *
 * @module
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import {
  BUNDLED_MAX_STEP_TOKENS,
  BUNDLED_SEED,
  generateProblems,
  gradeSolution,
  greedyAccuracy,
  PolicySteps,
} from "../../agent/mod.ts";
import { OnnxPolicy, Progress } from "../../inference/mod.ts";
import { annotate } from "../../mcts/mod.ts";
import { openStore } from "../../store/mod.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const OPTIONS = {
  work: { type: "string", default: ".build" },
  out: { type: "string", default: "models" },
  "policy-steps": { type: "string", default: "1200" },
  "policy-schedule": { type: "string", default: "3600" },
  "policy-minutes": { type: "string", default: "0" },
  "tree-problems": { type: "string", default: "500" },
  "tree-k": { type: "string", default: "4" },
  "tree-full-depth": { type: "string", default: "2" },
  "tree-temperature": { type: "string", default: "0.7" },
  "tree-simulations": { type: "string", default: "150" },
  "reward-steps": { type: "string", default: "600" },
  // The first recipe of the reward models (every weight of the policy fine-tuned on the
  // labels, no backbone, no likelihood features): models/README.md says why it was replaced.
  "plain-rewards": { type: "boolean", default: false },
  "backbone-steps": { type: "string", default: "2000" },
  "backbone-steps2": { type: "string", default: "3000" },
  // Experiments on the reward models (off by default; models/README.md has what each measured).
  "reward-extra-layers": { type: "string", default: "0" },
  "reward-dense": { type: "boolean", default: false },
  "hrm-data": { type: "string", default: "hnc" },
  "sft-steps": { type: "string", default: "300" },
  "greedy-problems": { type: "string", default: "500" },
  threads: { type: "string", default: "2" },
  device: { type: "string", default: "cpu" },
} as const;
const USAGE = "deno run -A models/build/build.ts [flags] (see the header of models/build/build.ts)";
if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  const text = await Deno.readTextFile(fileURLToPath(import.meta.url));
  const header = text.slice(text.indexOf("/**"), text.indexOf("@module"));
  console.log(header.replace(/^\/\*\*\n| \* ?|\*\/$/gm, "").trimEnd());
  Deno.exit(0);
}
/** A bad flag: one line on stderr, exit 2, before any stage runs. */
function usageError(message: string): never {
  console.error(`build: ${message}; usage: ${USAGE}`);
  Deno.exit(2);
}
const parsed = (() => {
  try {
    return parseArgs({ options: OPTIONS });
  } catch (e) {
    return usageError((e as Error).message);
  }
})();
const a = parsed.values;
// Every numeric flag is checked now, not when the stage that reads it comes hours later.
for (
  const [flag, min, integer] of [
    ["policy-steps", 1, true],
    ["policy-schedule", 1, true],
    ["policy-minutes", 0, false],
    ["tree-problems", 1, true],
    ["tree-k", 1, true],
    ["tree-full-depth", 0, true],
    ["tree-temperature", 0, false],
    ["tree-simulations", 1, true],
    ["reward-steps", 1, true],
    ["backbone-steps", 1, true],
    ["backbone-steps2", 1, true],
    ["reward-extra-layers", 0, true],
    ["sft-steps", 1, true],
    ["greedy-problems", 1, true],
    ["threads", 1, true],
  ] as [keyof typeof a, number, boolean][]
) {
  const raw = String(a[flag]), x = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(x) || x < min || (integer && !Number.isInteger(x))) {
    usageError(`--${flag} must be ${integer ? "an integer" : "a number"} >= ${min}: got '${raw}'`);
  }
}
if (!/^(cpu|cuda(:\d+)?)$/.test(a.device!)) {
  usageError(`--device must be cpu, cuda or cuda:N: got '${a.device}'`);
}
if (a["hrm-data"] !== "hnc" && a["hrm-data"] !== "hrm") {
  usageError(`--hrm-data must be hnc or hrm: got '${a["hrm-data"]}'`);
}

const work = resolve(a.work!), out = resolve(a.out!);
// The HRM's data: "hnc" (default, the paper's recipe: PRM samples, merged-step samples, and the same
// from HNC-compressed trees) or "hrm" (without HNC; models/README.md has what each measured).
const hrmData = a["hrm-data"]!;
await Deno.mkdir(work, { recursive: true });
const timings: [string, number, string][] = [];

async function stage(name: string, done: () => Promise<boolean>, run: () => Promise<void>) {
  const t0 = performance.now();
  if (await done()) {
    timings.push([name, 0, "done earlier (skipped)"]);
    console.error(`[build] ${name}: already done`);
    return;
  }
  console.error(`[build] ${name}: running`);
  await run();
  timings.push([name, (performance.now() - t0) / 1000, "ran"]);
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

async function sh(cmd: string[], env: Record<string, string> = {}): Promise<void> {
  const { code } = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    env: {
      MALLOC_MMAP_THRESHOLD_: "1000000000",
      MALLOC_TRIM_THRESHOLD_: "1000000000",
      MALLOC_TOP_PAD_: "1000000000",
      PYTHONPATH: `${ROOT}self_train/trainer`,
      ...env,
    },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`[build] '${cmd.join(" ")}' exited with ${code}`);
}

await stage(
  "data",
  () => exists(`${work}/policy_data.jsonl`),
  () =>
    sh([
      Deno.execPath(),
      "run",
      "-A",
      "models/build/make_data.ts",
      "--out",
      `${work}/policy_data.jsonl`,
      "--eval-out",
      `${work}/policy_eval.jsonl`,
    ]),
);

await stage("policy", async () => {
  if (!await exists(`${out}/policy/training.json`)) return false;
  const t = JSON.parse(await Deno.readTextFile(`${out}/policy/training.json`));
  return t.steps >= Number(a["policy-steps"]);
}, () =>
  sh([
    "/usr/bin/python3",
    "models/build/pretrain_policy.py",
    "--data",
    `${work}/policy_data.jsonl`,
    "--work",
    `${work}/policy`,
    "--out",
    `${out}/policy`,
    "--steps",
    a["policy-schedule"]!,
    "--stop-at",
    a["policy-steps"]!,
    "--eval-data",
    `${work}/policy_eval.jsonl`,
    "--minutes",
    a["policy-minutes"]!,
    "--threads",
    a.threads!,
    "--device",
    a.device!,
  ]));

const TREE_RUN = "annotation-trees";
await stage("trees", async () => {
  if (!await exists(`${work}/trees.db`)) return false;
  const store = await openStore(`${work}/trees.db`);
  try {
    return (await store.finishedProblemIds(TREE_RUN)).size >= Number(a["tree-problems"]);
  } finally {
    await store.close();
  }
}, async () => {
  const policy = await OnnxPolicy.load(`${out}/policy`, { threads: Number(a.threads) });
  const store = await openStore(`${work}/trees.db`);
  try {
    const steps = new PolicySteps(policy, { maxStepTokens: BUNDLED_MAX_STEP_TOKENS });
    await store.getOrCreateRun({
      id: TREE_RUN,
      strategy: "annotate",
      config: {
        k: Number(a["tree-k"]),
        fullDepth: Number(a["tree-full-depth"]),
        temperature: Number(a["tree-temperature"]),
      },
      seed: 2000,
      policyId: policy.id,
      problemsSource: "synthetic:2000",
    });
    const done = await store.finishedProblemIds(TREE_RUN);
    const problems = generateProblems(Number(a["tree-problems"]), { seed: 2000 })
      .filter((p) => !done.has(p.id));
    const bar = new Progress("trees", { total: problems.length, unit: "trees" });
    for (const p of problems) {
      const t0 = performance.now();
      const nodes = await annotate(p.question, {
        policy: steps,
        grade: (s) => gradeSolution(s.join("\n\n"), p.gold!, { kind: "number" }).correct,
        k: Number(a["tree-k"]),
        maxDepth: p.ops.length + 3,
        fullDepth: Number(a["tree-full-depth"]),
        temperature: Number(a["tree-temperature"]),
        budget: { simulations: Number(a["tree-simulations"]) },
        seed: p.index,
      });
      await store.saveProblemResult(TREE_RUN, {
        problemId: p.id,
        index: p.index,
        question: p.question,
        gold: p.gold,
        source: "synthetic",
        tokens: nodes.reduce((s, n) => s + n.tokens, 0),
        seconds: (performance.now() - t0) / 1000,
        tree: { kind: "annotation", seed: p.index, nodes },
      });
      bar.tick(1, { "root MC": (nodes[0].mcLabel ?? 0).toFixed(2) });
    }
    bar.finish();
  } finally {
    await store.close();
    await policy.close();
  }
});

/** Export training data of `kind` from the annotation trees into WORK/data-KIND. */
function exportStage(kind: string, flags: string[]): Promise<void> {
  return stage(`export ${kind}`, () => exists(`${work}/data-${kind}/manifest.json`), () =>
    sh([
      Deno.execPath(),
      "run",
      "-A",
      "main.ts",
      "export",
      ...["--run", TREE_RUN, "--db", `${work}/trees.db`, "--kind", kind],
      ...["--out", `${work}/data-${kind}`, ...flags],
    ]));
}

for (const kind of ["orm", "prm", hrmData]) {
  await exportStage(kind, ["--format", "paper", "--seed", "1"]);
}

// The reward models' backbone: the policy, taught to read the paper's reward prompt (SFT on
// training solutions with a span of steps as the completion, inside that prompt). Without it the
// policy's arithmetic stays off in the reward prompt and the reward heads start blind
// (models/build/backbone_data.py says what was measured). The third version (2026-12-04) learns
// from good steps only (every mistake of its data corrected in the next step, wrong steps never a
// completion) and trains longer, in two passes: the reward heads read its likelihood, so its
// arithmetic is the reward models' (models/README.md, "A stronger backbone"). Not with
// --plain-rewards.
const plain = a["plain-rewards"]!;
const BACKBONE = `${work}/backbone3`;
if (!plain) {
  await stage("backbone data", () => exists(`${work}/backbone_src.jsonl`), () =>
    sh([
      Deno.execPath(),
      "run",
      "-A",
      "models/build/make_data.ts",
      ...["--out", `${work}/backbone_src.jsonl`, "--n", "60000", "--correction-rate", "1"],
    ]));
  const phases = [
    {
      dir: `${BACKBONE}a`,
      init: `${out}/policy`,
      rows: "40000",
      seed: "0",
      steps: a["backbone-steps"]!,
      lr: "1e-3",
    },
    {
      dir: BACKBONE,
      init: `${BACKBONE}a`,
      rows: "60000",
      seed: "1",
      steps: a["backbone-steps2"]!,
      lr: "5e-4",
    },
  ];
  for (const [i, ph] of phases.entries()) {
    await stage(`reward backbone ${i + 1}`, () => exists(`${ph.dir}/model.onnx`), async () => {
      const data = `${ph.dir}_data.jsonl`;
      if (!await exists(data)) {
        await sh([
          "/usr/bin/python3",
          "models/build/backbone_data.py",
          ...["--data", `${work}/backbone_src.jsonl`, "--tokenizer", `${out}/policy`],
          ...["--out", data, "--rows", ph.rows, "--seed", ph.seed, "--good-steps-only"],
        ]);
      }
      await sh([
        "/usr/bin/python3",
        "-m",
        "arborist_trainer.train_sft",
        ...["--data", data, "--init", ph.init],
        ...["--out", ph.dir, "--beta", "0", "--steps", ph.steps],
        ...["--batch", "16", "--lr", ph.lr, "--warmup", "20", "--schedule", "cosine"],
        ...["--log-every", "50", "--resume", "--threads", a.threads!, "--device", a.device!],
      ]);
    });
  }
}

const REWARDS: [string, string, string[]][] = [
  ["orm", "orm", ["--labels", "2", "--loss", "ce"]],
  ["prm", "prm", ["--labels", "1", "--loss", "mse"]],
  ["hrm", hrmData, ["--labels", "1", "--loss", "mse"]],
];
// The three trainings run side by side, one thread each: these small models use one core
// better than two (measured: three side by side at about 2.0k tokens/s each, 6k in all, against
// 3.7k for one run on two threads). A larger --reward-steps continues them from their checkpoints
// (WORK/reward-NAME.json records the steps and the recipe an exported model has; another recipe
// starts that model over).
const recipe = {
  plain,
  // 2: the backbone is taught whole solutions and step pairs as the current step too;
  // 3: and good steps only, for longer (two passes)
  backbone: plain ? 0 : 3,
  extraLayers: Number(a["reward-extra-layers"]),
  dense: a["reward-dense"]!,
};
const recipeFlags = [
  ...(plain ? [] : ["--likelihood-features", "--heads-only"]),
  ...(recipe.extraLayers ? ["--extra-layers", a["reward-extra-layers"]!] : []),
  ...(recipe.dense ? ["--dense"] : []),
];
const rewardRecord = async (name: string) =>
  JSON.parse(await Deno.readTextFile(`${work}/reward-${name}.json`).catch(() => "{}")) as {
    steps?: number;
    recipe?: typeof recipe;
  };
// The recipe of one model: the HRM's names its data when that is not the default.
const recipeOf = (name: string) =>
  name === "hrm" && hrmData !== "hnc" ? { ...recipe, hrmData } : recipe;
// Records written before recipes were recorded are the plain recipe.
const sameRecipe = (name: string, r: { recipe?: object }) =>
  JSON.stringify(r.recipe ?? { plain: true, backbone: 0, extraLayers: 0, dense: false }) ===
    JSON.stringify(recipeOf(name));
await Promise.all(
  REWARDS.map(([name, data, loss]) =>
    stage(
      `reward ${name}`,
      async () => {
        const r = await rewardRecord(name);
        return await exists(`${out}/${name}/model.onnx`) && sameRecipe(name, r) &&
          (r.steps ?? 0) >= Number(a["reward-steps"]);
      },
      async () => {
        // Trained under WORK (its checkpoint too) and copied to OUT only when finished: an
        // interrupted or failed build leaves OUT's models as they were. A checkpoint of another
        // recipe is not continued.
        const dir = `${work}/reward-${name}`;
        if (!sameRecipe(name, await rewardRecord(name))) {
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
        await sh([
          "/usr/bin/python3",
          "-m",
          "arborist_trainer.train_reward",
          "--data",
          `${work}/data-${data}/data.jsonl`,
          "--format",
          "paper",
          "--init",
          plain ? `${out}/policy` : BACKBONE,
          ...recipeFlags,
          "--head",
          "sequence-classification",
          ...loss,
          "--out",
          dir,
          "--steps",
          a["reward-steps"]!,
          "--batch",
          "16",
          "--lr",
          "1e-3",
          "--warmup",
          "30",
          "--schedule",
          "cosine",
          "--log-every",
          "50",
          "--resume",
          "--threads",
          "1",
          "--device",
          a.device!,
        ]);
        await copyModel(dir, `${out}/${name}`);
        await Deno.writeTextFile(
          `${work}/reward-${name}.json`,
          JSON.stringify({ steps: Number(a["reward-steps"]), recipe: recipeOf(name) }) + "\n",
        );
      },
    )
  ),
);

// 6. One self-training round from the same trees (trajectories with MC >= 0.95).
await exportStage("sft", ["--policy", `${out}/policy`]);
const BETAS = ["0", "0.1"];
await Promise.all(BETAS.map((beta) =>
  stage(
    `self-train beta=${beta}`,
    // Not needed when OUT already holds the self-training's result (the stage below reads these).
    async () =>
      await exists(`${work}/selftrain-${beta}/model.onnx`) ||
      await exists(`${out}/selftrain.json`),
    () =>
      sh([
        "/usr/bin/python3",
        "-m",
        "arborist_trainer.train_sft",
        "--data",
        `${work}/data-sft/data.jsonl`,
        "--init",
        `${out}/policy`,
        "--out",
        `${work}/selftrain-${beta}`,
        "--beta",
        beta,
        "--steps",
        a["sft-steps"]!,
        "--batch",
        "16",
        "--lr",
        "3e-4",
        "--schedule",
        "cosine",
        "--warmup",
        "20",
        "--resume",
        "--threads",
        "1",
        "--device",
        a.device!,
      ]),
  )
));
await stage("greedy before/after", () => exists(`${out}/selftrain.json`), async () => {
  const problems = generateProblems(Number(a["greedy-problems"]), { seed: BUNDLED_SEED });
  const result: Record<string, unknown> = {
    problems: `synthetic:${problems.length} seed ${BUNDLED_SEED} (held out)`,
    data: JSON.parse(await Deno.readTextFile(`${work}/data-sft/manifest.json`)).counts ?? null,
    steps: Number(a["sft-steps"]),
  };
  const dirs: [string, string][] = [
    ["policy", `${out}/policy`],
    ...BETAS.map((b): [string, string] => [`beta=${b}`, `${work}/selftrain-${b}`]),
  ];
  for (const [name, dir] of dirs) {
    const policy = await OnnxPolicy.load(dir, { threads: Number(a.threads) });
    try {
      const pt = await greedyAccuracy(problems, policy);
      result[name] = {
        correct: pt.correct,
        total: pt.total,
        accuracy: pt.accuracy,
        low: pt.low,
        high: pt.high,
      };
      console.error(`[build] greedy ${name}: ${pt.correct}/${pt.total}`);
    } finally {
      await policy.close();
    }
  }
  await copyModel(`${work}/selftrain-0.1`, `${out}/policy-selftrained`);
  await Deno.writeTextFile(`${out}/selftrain.json`, JSON.stringify(result, null, 2) + "\n");
});

async function copyModel(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile && !e.name.endsWith(".pt") && !e.name.endsWith(".tmp")) {
      await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
    }
  }
}

console.log("| stage | seconds | |\n|---|---|---|");
for (const [name, secs, what] of timings) console.log(`| ${name} | ${secs.toFixed(1)} | ${what} |`);
