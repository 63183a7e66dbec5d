/**
 * The Python trainers (self_train/trainer): tiny models trained for a few steps on the fixtures
 * in tests/testdata/trainer/, their exports loaded by the engine, resume, and the Python unit
 * tests (loss masking, KL, tokenizer, ONNX weights).
 *
 * Needs Debian's PyTorch at /usr/bin/python3 (`apt-get install -y python3-torch python3-onnx`);
 * without it every test fails with that message rather than skipping.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { OnnxPolicy } from "../../inference/mod.ts";
import { OnnxReward } from "../../reward/mod.ts";
import { testdataPath } from "../_helpers.ts";

const PYTHON = "/usr/bin/python3";
const TRAINER_DIR = fileURLToPath(new URL("../../self_train/trainer", import.meta.url));
const NEEDS_TORCH = "needs Debian python3-torch: apt-get install -y python3-torch python3-onnx";

const Q = "Tom has 3 apples and buys 4 more. How many apples does Tom have?";
const STEPS = [
  "Tom starts with 3 apples.",
  "Tom buys 4 more, so 3 + 4 = 7.",
  "Tom buys 4 more, so 3 + 4 = 9.",
];

interface Summary {
  first_loss: number;
  last_loss: number;
  losses: number[];
  step: number;
  finished: boolean;
  weights_sha256: string;
  checkpoint: string;
  out?: string;
  first_kl?: number;
  last_kl?: number;
  last_ce?: number;
  last_loss_avg?: number;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function python(args: string[]): Promise<Run> {
  let out;
  try {
    out = await new Deno.Command(PYTHON, {
      args,
      cwd: TRAINER_DIR,
      env: { PYTHONPATH: TRAINER_DIR },
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new Error(`${PYTHON} cannot run (${(e as Error).message}): the trainer ${NEEDS_TORCH}`);
  }
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

let torchChecked: Promise<void> | undefined;

/** Fail (never skip) when Debian's PyTorch and onnx are missing. */
function requireTorch(): Promise<void> {
  torchChecked ??= python(["-c", "import torch, onnx"]).then((r) => {
    if (r.code !== 0) {
      throw new Error(`The trainer ${NEEDS_TORCH}\n${r.stderr.trim().split("\n").pop()}`);
    }
  });
  return torchChecked;
}

/** Run a trainer module; returns the JSON summary of its last stdout line. */
async function trainer(module: string, args: string[]): Promise<Summary> {
  await requireTorch();
  const r = await python(["-m", `arborist_trainer.${module}`, "--threads", "1", ...args]);
  if (r.code !== 0) {
    throw new Error(
      `arborist_trainer.${module} exited with ${r.code}:\n${r.stderr.slice(-3000)}`,
    );
  }
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Summary;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Mean of the first and of the last `n` losses (single steps are noisy). */
function lossEnds(s: Summary, n = 4): [number, number] {
  return [mean(s.losses.slice(0, n)), mean(s.losses.slice(-n))];
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arborist-trainer-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function engineScores(dir: string): Promise<number[]> {
  const r = await OnnxReward.load(dir, { threads: 1 });
  try {
    return await r.scoreSteps(Q, STEPS);
  } finally {
    await r.close();
  }
}

function assertScores(s: number[]): void {
  assert.equal(s.length, STEPS.length);
  assert.ok(s.every((x) => Number.isFinite(x) && x >= 0 && x <= 1), `${s}`);
}

const REWARD_RUNS = [
  {
    name: "paper, 1 label, MSE on Monte-Carlo scores",
    data: "reward_paper_mc.jsonl",
    init: "reward-paper-1",
    args: ["--labels", "1", "--loss", "mse"],
    reward: { head: "sequence-classification", format: "paper" },
  },
  {
    name: "paper, 2 labels, CE on 0/1 labels",
    data: "reward_paper_binary.jsonl",
    init: "reward-paper-2",
    args: ["--labels", "2", "--loss", "ce"],
    reward: { head: "sequence-classification", format: "paper" },
  },
  {
    name: "paper, 1 label, BCE on 0/1 labels, from a decoder's weights (new score head)",
    data: "reward_paper_binary.jsonl",
    init: "decoder-fp32",
    args: ["--labels", "1", "--loss", "bce"],
    reward: { head: "sequence-classification", format: "paper" },
  },
];

for (const run of REWARD_RUNS) {
  Deno.test(`train_reward (${run.name}): the loss falls and the engine scores the export in [0, 1]`, async () => {
    await withTempDir(async (out) => {
      const s = await trainer("train_reward", [
        "--data",
        testdataPath(`trainer/${run.data}`),
        "--format",
        "paper",
        "--init",
        testdataPath(`models/${run.init}`),
        ...run.args,
        "--out",
        out,
        "--steps",
        "24",
        "--batch",
        "8",
        "--lr",
        "3e-3",
      ]);
      assert.equal(s.losses.length, 24);
      const [first, last] = lossEnds(s);
      assert.ok(last < 0.7 * first, `loss ${first} -> ${last}`);
      const reward = JSON.parse(await Deno.readTextFile(`${out}/reward.json`));
      assert.deepEqual({ head: reward.head, format: reward.format }, run.reward);
      assertScores(await engineScores(out));
    });
  });
}

Deno.test("train_reward --likelihood-features: the feature head learns, and the engine's scores equal PyTorch's", async () => {
  await withTempDir(async (out) => {
    await trainer("train_reward", [
      ...["--data", testdataPath("trainer/reward_paper_binary.jsonl"), "--format", "paper"],
      ...["--init", testdataPath("models/decoder-fp32"), "--labels", "1", "--loss", "bce"],
      ...["--likelihood-features", "--out", out, "--steps", "12", "--batch", "8", "--lr", "3e-3"],
    ]);
    const config = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
    assert.ok(config.arborist_likelihood_marker.length > 0, "the marker is kept in config.json");
    const engine = await engineScores(out);
    assertScores(engine);
    // PyTorch rebuilds the class from config.json and reads the exported weights back by name.
    const r = await python([
      "-c",
      `import json, sys, torch
from arborist_trainer.weights import init_model
from arborist_trainer.data import paper_prompt
from arborist_trainer.tokenizer import load_tokenizer
out, q, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tok = load_tokenizer(out + "/tokenizer.json")
m, _, fresh = init_model("sequence-classification", 1, init=out, config=None, seed=0)
assert fresh == [], fresh
m.eval()
got = []
with torch.no_grad():
    for i, s in enumerate(steps):
        ids = torch.tensor([tok.encode(paper_prompt(q, steps[:i], s))])
        got.append(float(torch.sigmoid(m(ids, torch.ones_like(ids)))[0, 0]))
print(json.dumps({"scores": got, "feature_weight": m.feature_score.weight.abs().sum().item(), "cls": type(m).__name__}))`,
      out,
      Q,
      JSON.stringify(STEPS),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const py = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.equal(py.cls, "Qwen2ForLikelihoodClassification");
    assert.ok(py.feature_weight > 0, "the feature head moved from zero");
    engine.forEach((x, i) =>
      assert.ok(Math.abs(x - py.scores[i]) < 1e-4, `step ${i}: ${x} vs ${py.scores[i]}`)
    );
  });
});

Deno.test("train_reward --likelihood-features with a marker the data lacks: a clear error naming it", async () => {
  await withTempDir(async (out) => {
    await assert.rejects(
      trainer("train_reward", [
        ...["--data", testdataPath("trainer/reward_paper_binary.jsonl"), "--format", "paper"],
        ...[
          "--init",
          testdataPath("models/decoder-fp32"),
          "--likelihood-features",
          "zebra crossing:",
        ],
        ...["--out", out, "--steps", "1"],
      ]),
      /--likelihood-features 'zebra crossing:'.*do not occur in example 1/,
    );
  });
});

Deno.test("the trainers reject an unknown --device with one line that names it and what to use", async () => {
  await withTempDir(async (out) => {
    await assert.rejects(
      trainer("train_reward", [
        ...["--data", testdataPath("trainer/reward_paper_binary.jsonl"), "--format", "paper"],
        ...["--init", testdataPath("models/decoder-fp32"), "--out", out, "--steps", "1"],
        ...["--device", "tpu"],
      ]),
      /Cannot train on device 'tpu': use cpu or cuda/,
    );
  });
});

Deno.test("the trainers answer bad data with one line naming FILE:LINE, no traceback", async () => {
  await requireTorch();
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/bad.jsonl`,
      '{"prompt_ids": [1], "completion_ids": [2]}\n[1, 2]\n',
    );
    const r = await python([
      ...["-m", "arborist_trainer.train_sft", "--threads", "1", "--data", `${dir}/bad.jsonl`],
      ...["--init", testdataPath("models/decoder-fp32"), "--beta", "0", "--out", `${dir}/out`],
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /Traceback/);
    assert.match(
      r.stderr,
      /^arborist_trainer\.train_sft: error: Cannot read \S*bad\.jsonl:2: expected a JSON object, got array$/m,
    );
  });
});

Deno.test("train_reward with a 1-label BCE head exports a sigmoid: scores strictly inside (0, 1)", async () => {
  await withTempDir(async (out) => {
    await trainer("train_reward", [
      "--data",
      testdataPath("trainer/reward_paper_binary.jsonl"),
      "--init",
      testdataPath("models/reward-paper-1"),
      "--loss",
      "bce",
      "--out",
      out,
      "--steps",
      "2",
      "--batch",
      "4",
    ]);
    const s = await engineScores(out);
    assert.ok(s.every((x) => x > 0 && x < 1), `${s}`);
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${out}/reward.json`)).trained.output,
      "sigmoid",
    );
  });
});

for (
  const [head, init, format, data] of [
    ["token-classification", "reward-qwen-prm", "qwen-prm", "trl"],
    ["lm-tokens", "reward-math-shepherd", "math-shepherd", "openrlhf"],
  ]
) {
  Deno.test(`train_reward ${head} on ${data} data: the loss falls and the engine loads it as ${format}`, async () => {
    await withTempDir(async (out) => {
      const s = await trainer("train_reward", [
        "--data",
        testdataPath(`trainer/reward_${data}.jsonl`),
        "--format",
        data,
        "--head",
        head,
        "--init",
        testdataPath(`models/${init}`),
        "--out",
        out,
        "--steps",
        "20",
        "--batch",
        "4",
        "--lr",
        "2e-3",
      ]);
      const [first, last] = lossEnds(s);
      assert.ok(last < 0.7 * first, `loss ${first} -> ${last}`);
      const reward = JSON.parse(await Deno.readTextFile(`${out}/reward.json`));
      assert.equal(reward.format, format);
      assertScores(await engineScores(out));
    });
  });
}

function sftArgs(out: string, beta: string, steps: number, extra: string[] = []): string[] {
  return [
    "--data",
    testdataPath("trainer/sft.jsonl"),
    "--init",
    testdataPath("models/decoder-fp32"),
    "--beta",
    beta,
    ...extra,
    "--out",
    out,
    "--steps",
    String(steps),
    "--batch",
    "4",
    "--lr",
    "3e-3",
  ];
}

for (const beta of ["0.1", "0"]) {
  Deno.test(`train_sft with beta ${beta}: the loss falls and the exported decoder generates`, async () => {
    await withTempDir(async (out) => {
      const s = await trainer("train_sft", sftArgs(out, beta, 24));
      const [first, last] = lossEnds(s);
      assert.ok(last < 0.5 * first, `loss ${first} -> ${last}`);
      // The KL is reported at beta 0 too; the policy starts as the reference, so its KL is the
      // reference's top-5 truncation's (> 0), and it grows as the policy moves.
      assert.ok(s.first_kl! > 0 && s.last_kl! > s.first_kl!, `kl ${s.first_kl} -> ${s.last_kl}`);
      if (beta === "0") assert.equal(s.last_loss_avg, s.last_ce, "at beta 0 the loss is the CE");
      else assert.ok(s.last_loss_avg! > s.last_ce!, "at beta > 0 the KL adds to the CE");
      const policy = await OnnxPolicy.load(out, { threads: 1 });
      try {
        const prompt = `<|im_start|>user\n${Q}<|im_end|>\n<|im_start|>assistant\n`;
        const [g] = await policy.generate(prompt, {
          n: 1,
          maxNewTokens: 24,
          temperature: 0,
          seed: 1,
        });
        assert.ok(g.ids.length > 0);
        // It learned the fixture's completions, which all open with a name and "starts with".
        assert.match(g.text, /starts with/);
      } finally {
        await policy.close();
      }
    });
  });
}

Deno.test("train_sft: a large beta (5, plain KL) keeps the policy nearer the reference than beta 0", async () => {
  await withTempDir(async (dir) => {
    const free = await trainer("train_sft", sftArgs(`${dir}/free`, "0", 16));
    const held = await trainer(
      "train_sft",
      sftArgs(`${dir}/held`, "5", 16, ["--kl-form", "plain"]),
    );
    assert.ok(held.last_kl! < 0.5 * free.last_kl!, `kl ${held.last_kl} vs ${free.last_kl}`);
    assert.ok(held.last_ce! > free.last_ce!);
  });
});

for (const module of ["train_reward", "train_sft"]) {
  Deno.test(`${module}: 4 steps, stop, resume to 8 gives the weights of 8 straight steps`, async () => {
    await withTempDir(async (dir) => {
      const common = module === "train_sft"
        ? [
          "--data",
          testdataPath("trainer/sft.jsonl"),
          "--init",
          testdataPath("models/decoder-fp32"),
        ]
        : [
          "--data",
          testdataPath("trainer/reward_paper_binary.jsonl"),
          "--init",
          testdataPath("models/reward-paper-2"),
          "--loss",
          "ce",
        ];
      const opts = [...common, "--steps", "8", "--batch", "3", "--lr", "2e-3", "--save-every", "3"];
      const straight = await trainer(module, [...opts, "--out", `${dir}/straight`]);
      const part = await trainer(module, [...opts, "--out", `${dir}/split`, "--stop-after", "4"]);
      assert.equal(part.step, 4);
      assert.equal(part.finished, false);
      assert.equal(part.out, undefined, "no export before the last step");
      const resumed = await trainer(module, [...opts, "--out", `${dir}/split`, "--resume"]);
      assert.equal(resumed.step, 8);
      assert.deepEqual(resumed.losses, straight.losses);
      if (resumed.weights_sha256 !== straight.weights_sha256) {
        const r = await python([
          "-m",
          "arborist_trainer.ckpt_diff",
          straight.checkpoint,
          resumed.checkpoint,
        ]);
        const diff = JSON.parse(r.stdout);
        assert.ok(diff.max_abs_diff <= 1e-6, `max |diff| ${diff.max_abs_diff}`);
      }
    });
  });
}

Deno.test("the trainer's Python unit tests pass (loss masking, KL, tokenizer, ONNX weights)", async () => {
  await requireTorch();
  const r = await python(["-m", "unittest", "discover", "-s", "tests", "-t", "."]);
  assert.equal(r.code, 0, r.stderr.slice(-4000));
});
