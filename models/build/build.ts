// deno-lint-ignore-file no-console -- a build script reports its stages
/**
 * Rebuild the embedded default models end to end, printing how long each stage took:
 *
 * 1. data      synthetic solutions with mistakes and corrections (make_data.ts)
 * 2. policy    the tiny policy (pretrain_policy.py; resumes from its checkpoint)
 * 3. trees     annotation trees of the policy on training problems, with Monte-Carlo labels
 * 4. exports   ORM, PRM and HRM (HNC-augmented) training data from those trees
 * 5. rewards   ORM, PRM and HRM trained from the policy's weights (train_reward)
 *
 * Every stage is skipped when its output is complete, and the long ones resume from their
 * checkpoints, so an interrupted build continues where it stopped: run it again.
 *
 * Usage: deno run -A models/build/build.ts [--work .build] [--out models] [--policy-steps N]
 *   [--policy-minutes M] [--tree-problems N] [--reward-steps N] [--threads N] [--device cpu|cuda]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { generateProblems, gradeSolution, PolicySteps } from "../../agent/mod.ts";
import { OnnxPolicy, Progress } from "../../inference/mod.ts";
import { annotate } from "../../mcts/mod.ts";
import { openStore } from "../../store/mod.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const { values: a } = parseArgs({
  options: {
    work: { type: "string", default: ".build" },
    out: { type: "string", default: "models" },
    "policy-steps": { type: "string", default: "6000" },
    "policy-minutes": { type: "string", default: "0" },
    "tree-problems": { type: "string", default: "300" },
    "tree-k": { type: "string", default: "3" },
    "reward-steps": { type: "string", default: "1500" },
    threads: { type: "string", default: "2" },
    device: { type: "string", default: "cpu" },
  },
});
const work = `${ROOT}${a.work}`, out = `${ROOT}${a.out}`;
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
    a["policy-steps"]!,
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
    const steps = new PolicySteps(policy, { maxStepTokens: 48 });
    await store.getOrCreateRun({
      id: TREE_RUN,
      strategy: "annotate",
      config: { k: Number(a["tree-k"]) },
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
        maxDepth: p.ops.length + 2,
        temperature: 1,
        budget: { simulations: 150 },
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

for (const kind of ["orm", "prm", "hnc"]) {
  await stage(`export ${kind}`, () => exists(`${work}/data-${kind}/manifest.json`), () =>
    sh([
      Deno.execPath(),
      "run",
      "-A",
      "main.ts",
      "export",
      "--run",
      TREE_RUN,
      "--db",
      `${work}/trees.db`,
      "--kind",
      kind,
      "--format",
      "paper",
      "--out",
      `${work}/data-${kind}`,
      "--seed",
      "1",
    ]));
}

const REWARDS: [string, string, string[]][] = [
  ["orm", "orm", ["--labels", "2", "--loss", "ce"]],
  ["prm", "prm", ["--labels", "1", "--loss", "mse"]],
  ["hrm", "hnc", ["--labels", "1", "--loss", "mse"]],
];
for (const [name, data, loss] of REWARDS) {
  await stage(`reward ${name}`, () => exists(`${out}/${name}/model.onnx`), () =>
    sh([
      "/usr/bin/python3",
      "-m",
      "arborist_trainer.train_reward",
      "--data",
      `${work}/data-${data}/data.jsonl`,
      "--format",
      "paper",
      "--init",
      `${out}/policy`,
      "--head",
      "sequence-classification",
      ...loss,
      "--out",
      `${out}/${name}`,
      "--steps",
      a["reward-steps"]!,
      "--batch",
      "16",
      "--lr",
      "5e-4",
      "--resume",
      "--threads",
      a.threads!,
    ]));
}

console.log("| stage | seconds | |\n|---|---|---|");
for (const [name, secs, what] of timings) console.log(`| ${name} | ${secs.toFixed(1)} | ${what} |`);
