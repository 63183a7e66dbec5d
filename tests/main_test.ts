import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { openStore } from "../store/mod.ts";
import { copyFixture, sharedDataPath, testdataPath } from "./_helpers.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const POLICY = testdataPath("models/decoder-fp32");
const REWARD = testdataPath("models/reward-paper-2");

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("bad flags exit 2 with a one-line error", async () => {
  const r = await cli(["generate", "--model", POLICY, "--bogus"]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /^error: .*--bogus/);
  const t = await cli(["generate", "--model", POLICY, "--prompt", "x", "--temperature", "hot"]);
  assert.equal(t.code, 2);
  assert.match(t.stderr, /--temperature must be a number >= 0: got 'hot'/);
  assert.equal((await cli(["frobnicate"])).code, 2);
  const c = await cli([
    "agent",
    "--problems",
    "synthetic:1",
    "--policy",
    POLICY,
    "--choose",
    "best",
  ]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /--choose.*step, mean, visits, reward.*best/);
});

Deno.test("every command has --help", async () => {
  for (const c of ["generate", "score-steps", "agent", "grade", "serve"]) {
    const r = await cli([c, "--help"]);
    assert.equal(r.code, 0, c);
    assert.match(r.stdout, new RegExp(`usage: deno task ${c}`));
  }
});

Deno.test("generate --json prints prompt_ids, ids, logprobs and text; greedy is reproducible", async () => {
  const args = ["generate", "--model", POLICY, "--prompt", "Hello there", "--temperature", "0"];
  const r = await cli([...args, "--max-new-tokens", "5", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(j).sort(), ["ids", "logprobs", "prompt_ids", "text"]);
  assert.equal(j.ids.length, j.logprobs.length);
  assert.ok(j.ids.length <= 5 && j.prompt_ids.length > 0);
  assert.ok(j.logprobs.every((x: number) => x <= 0));
  const again = JSON.parse((await cli([...args, "--max-new-tokens", "5", "--json"])).stdout);
  assert.deepEqual(again, j);
});

Deno.test("score-steps --json prints one score per paragraph of the steps file", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "Step one.\n\nStep two,\nstill two.\n\n\nStep three.\n");
    const r = await cli([
      "score-steps",
      "--reward",
      REWARD,
      "--question",
      "What?",
      "--steps-file",
      file,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { scores } = JSON.parse(r.stdout);
    assert.equal(scores.length, 3);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("agent --json prints the run summary; a killed run resumes without redoing work", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const problems = `${dir}/p.jsonl`;
    const lines = (await Deno.readTextFile(sharedDataPath("gsm8k/test.jsonl"))).split("\n");
    await Deno.writeTextFile(problems, lines.slice(0, 6).join("\n") + "\n");
    const args = [
      "agent",
      "--problems",
      problems,
      "--policy",
      POLICY,
      "--reward",
      REWARD,
      "--db",
      `${dir}/runs.db`,
      "--run-id",
      "k",
      "--simulations",
      "2",
      "--k",
      "2",
      "--max-depth",
      "2",
      "--threads",
      "1",
    ];
    // Kill a first run as soon as it has committed something.
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args, "--limit", "6"],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    while (!/[1-5]\/6 problems/.test(log)) {
      const { value, done } = await reader.read();
      if (done) break;
      log += value;
    }
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    const r = await cli([...args, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(
      Object.keys(j).sort(),
      ["accuracy", "correct", "problems", "run_id", "seconds", "strategy", "tokens_generated"],
    );
    assert.equal(j.problems, 6);
    assert.equal(j.run_id, "k");
    assert.match(r.stderr, /[0-5]\/[1-5] problems/, "the resumed run had fewer than 6 to do");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent --temperature and --max-step-tokens are run settings: checked, stored, kept on resume", async () => {
  const bad = await cli([
    "agent",
    "--problems",
    "synthetic:1",
    "--policy",
    POLICY,
    "--temperature=-1",
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--temperature must be a number >= 0: got '-1'/);
  const dir = await Deno.makeTempDir();
  try {
    const args = (t: string) => [
      ...["agent", "--problems", "synthetic:2", "--strategy", "step-greedy", "--n", "2"],
      ...["--policy", POLICY, "--reward", REWARD, "--db", `${dir}/runs.db`, "--run-id", "t"],
      ...["--temperature", t, "--max-step-tokens", "8", "--threads", "1", "--json"],
    ];
    const r = await cli(args("0.5"));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).problems, 2);
    const store = await openStore(`${dir}/runs.db`);
    try {
      const run = await store.getRun("t");
      assert.equal(run?.config.temperature, 0.5);
      assert.equal(run?.config.maxStepTokens, 8);
    } finally {
      await store.close();
    }
    const again = await cli(args("0.9"));
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /temperature is 0.5 in the store, 0.9 now/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent: a resume with other weights under the same model folder is refused", async () => {
  await using policy = await copyFixture("models/decoder-external");
  const dir = await Deno.makeTempDir();
  try {
    const args = [
      ...["agent", "--problems", "synthetic:2", "--strategy", "greedy", "--policy", policy.dir],
      ...["--db", `${dir}/runs.db`, "--run-id", "w", "--max-step-tokens", "4", "--max-depth", "2"],
      ...["--threads", "1", "--json"],
    ];
    const first = await cli(args);
    assert.equal(first.code, 0, first.stderr);
    const store = await openStore(`${dir}/runs.db`);
    try {
      const weights = (await store.getRun("w"))?.config.weights as { policy?: string };
      assert.match(weights?.policy ?? "", /^[0-9a-f]{16}$/);
    } finally {
      await store.close();
    }
    // The policy retrained in place: same folder, same name, one weight changed.
    const data = `${policy.dir}/model.onnx.data`;
    const bytes = await Deno.readFile(data);
    bytes[bytes.length >> 1] ^= 1;
    await Deno.writeFile(data, bytes);
    const r = await cli(args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /Cannot resume run 'w': .*config\.weights\.policy is "[0-9a-f]{16}" in the store, "[0-9a-f]{16}" now/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("grade scores predictions by problem id", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines = (await Deno.readTextFile(sharedDataPath("gsm8k/test.jsonl"))).split("\n");
    await Deno.writeTextFile(`${dir}/p.jsonl`, lines.slice(0, 3).join("\n") + "\n");
    const golds = lines.slice(0, 3).map((l) => JSON.parse(l).answer as string);
    const preds = [
      { id: 0, prediction: golds[0] },
      { id: "1", prediction: "The answer is 123456789" },
      { id: 2, prediction: golds[2] },
    ];
    await Deno.writeTextFile(`${dir}/pred.jsonl`, preds.map((p) => JSON.stringify(p)).join("\n"));
    const r = await cli([
      "grade",
      "--problems",
      `${dir}/p.jsonl`,
      "--predictions",
      `${dir}/pred.jsonl`,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      total: 3,
      correct: 2,
      ungraded: 0,
      missing: 0,
      accuracy: 2 / 3,
    });
    // A byte-order mark is not JSON; a problem without a prediction is reported.
    await Deno.writeTextFile(
      `${dir}/pred.jsonl`,
      "\uFEFF" + preds.slice(0, 2).map((p) => JSON.stringify(p)).join("\r\n"),
    );
    const bom = await cli([
      ...["grade", "--problems", `${dir}/p.jsonl`, "--predictions", `${dir}/pred.jsonl`],
      "--json",
    ]);
    assert.equal(bom.code, 0, bom.stderr);
    assert.equal(JSON.parse(bom.stdout).missing, 1);
    assert.match(bom.stderr, /warning: 1 of 3 problems have no prediction .*\(first: '2'\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("grade reads bare answers, refuses a repeated prediction, leaves gold-less problems ungraded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const grade = (problems: string, preds: unknown[], json = true) =>
      Deno.writeTextFile(`${dir}/pred.jsonl`, preds.map((p) => JSON.stringify(p)).join("\n"))
        .then(() =>
          cli([
            "grade",
            "--problems",
            problems,
            "--predictions",
            `${dir}/pred.jsonl`,
            ...(json ? ["--json"] : []),
          ])
        );
    // PRM800K golds 29 and 440: bare predictions are answers
    const prm = sharedDataPath("prm800k/phase1_test.jsonl");
    const bare = await grade(prm, [{ id: 0, prediction: "29" }, { id: 1, prediction: " 440\n" }]);
    assert.equal(bare.code, 0, bare.stderr);
    assert.deepEqual(JSON.parse(bare.stdout), {
      total: 2,
      correct: 2,
      ungraded: 0,
      missing: 104,
      accuracy: 1,
    });
    const math = `${dir}/math.jsonl`;
    await Deno.writeTextFile(
      math,
      JSON.stringify({ problem: "2+3?", answer: "5", unique_id: "u" }),
    );
    const m = await grade(math, [{ id: "u", prediction: "5" }]);
    assert.deepEqual(JSON.parse(m.stdout), {
      total: 1,
      correct: 1,
      ungraded: 0,
      missing: 0,
      accuracy: 1,
    });
    // A bare matrix is an answer (environment names are not words).
    await Deno.writeTextFile(
      math,
      JSON.stringify({
        problem: "v?",
        answer: "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        unique_id: "u",
      }),
    );
    const mx = await grade(math, [{
      id: "u",
      prediction: "$\\begin{pmatrix}1\\\\2\\end{pmatrix}$",
    }]);
    assert.equal(JSON.parse(mx.stdout).correct, 1, mx.stdout);
    const dup = await grade(prm, [
      { id: 0, prediction: "29" },
      { id: 1, prediction: "440" },
      { id: "0", prediction: "29" },
    ]);
    assert.equal(dup.code, 1);
    assert.match(
      dup.stderr,
      /pred\.jsonl:3: a second prediction for problem '0' \(the first is on line 1\)/,
    );
    // ProcessBench has no gold answers: nothing is wrong, nothing is graded
    const pb = sharedDataPath("processbench/gsm8k.json");
    const preds = [0, 1, 2].map((i) => ({ id: `gsm8k-${i}`, prediction: "\\boxed{30}" }));
    const u = await grade(pb, preds);
    assert.equal(u.code, 0, u.stderr);
    assert.deepEqual(JSON.parse(u.stdout), {
      total: 3,
      correct: 0,
      ungraded: 3,
      missing: 397,
      accuracy: null,
    });
    const t = await grade(pb, preds, false);
    assert.match(
      t.stdout,
      /^0\/0 correct \(-\); 3 ungraded \(their problems have no gold answer\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent --problems errors name the flag and path, cap warnings and stop before work", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const agent = (problems: string, ...more: string[]) =>
      cli([
        "agent",
        "--problems",
        problems,
        ...more,
        "--policy",
        POLICY,
        "--strategy",
        "greedy",
        "--db",
        `${dir}/a.db`,
      ]);
    const d = await agent(dir);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /^error: Cannot read --problems .*: it is a directory, not a file\n$/);
    const missing = await agent(`${dir}/nope.jsonl`);
    assert.match(missing.stderr, /^error: Cannot read --problems .*nope\.jsonl: no such file\n$/);
    // a repeated id stops the run before any problem is solved or stored
    await Deno.writeTextFile(
      `${dir}/dup.jsonl`,
      [1, 2, 3].map((i) =>
        JSON.stringify({ problem: `${i}+1?`, answer: `${i + 1}`, unique_id: "a" })
      ).join("\n"),
    );
    const dup = await agent(`${dir}/dup.jsonl`);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /dup\.jsonl:2: problem id 'a' repeats the id of the record on line 1/);
    assert.ok(!(await Deno.stat(`${dir}/a.db`).then(() => true, () => false)), "no store opened");
    // a whole file of the wrong format: 5 warnings, a count, a hint at --format
    const wrong = await agent(sharedDataPath("processbench/gsm8k.json"), "--format", "gsm8k");
    assert.equal(wrong.code, 1);
    const lines = wrong.stderr.trim().split("\n");
    assert.equal(lines.length, 7, wrong.stderr);
    assert.match(lines[0], /^warning: .*gsm8k\.json:2: missing field 'question'/);
    assert.equal(lines[5], "warning: ... and 395 more skipped records (400 in all)");
    assert.match(lines[6], /all 400 records were skipped: .*try --format processbench/);
    // a pretty-printed record cut short is read line by line: a hint at the document
    const whole = await Deno.readTextFile(
      sharedDataPath("prm800k/examples/phase1_test_example.json"),
    );
    await Deno.writeTextFile(`${dir}/cut.json`, whole.split("\n").slice(0, 30).join("\n"));
    const cut = await agent(`${dir}/cut.json`);
    assert.equal(cut.code, 1);
    assert.match(cut.stderr, /warning: \.\.\. and \d+ more skipped records/);
    assert.match(cut.stderr, /one JSON document over several lines .*cut\.json:\d+: invalid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent stops before any work when the database cannot be opened", async () => {
  const r = await cli([
    "agent",
    "--problems",
    "synthetic:3",
    "--policy",
    POLICY,
    "--strategy",
    "greedy",
    "--db",
    "/proc/nope/x.db",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Cannot open run store at \/proc\/nope\/x\.db/);
  assert.doesNotMatch(r.stderr, /problems\/s/);
});

Deno.test("Ctrl-C stops the agent cleanly: exit 130, finished problems committed, run 'stopped'", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const args = [
      "run",
      "-A",
      MAIN,
      "agent",
      "--problems",
      "synthetic:40",
      "--policy",
      POLICY,
      "--reward",
      REWARD,
      "--db",
      `${dir}/runs.db`,
      "--run-id",
      "int",
      "--simulations",
      "3",
      "--k",
      "2",
      "--threads",
      "1",
      "--json",
    ];
    const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
      .spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    while (!/[1-9]\d*\/40 problems/.test(log)) {
      const { value, done } = await reader.read();
      if (done) break;
      log += value;
    }
    child.kill("SIGINT");
    const rest = reader.read().then(async function drain(r): Promise<void> {
      if (!r.done) return drain(await reader.read());
    });
    const [status, out] = await Promise.all([child.status, new Response(child.stdout).text()]);
    await rest;
    assert.equal(status.code, 130, "a stopped run exits 130 (128 + SIGINT)");
    const j = JSON.parse(out);
    assert.ok(j.problems >= 1 && j.problems < 40, `${j.problems} problems`);
    const { openStore } = await import("../store/mod.ts");
    const store = await openStore(`${dir}/runs.db`);
    try {
      assert.equal((await store.getRun("int"))?.status, "stopped");
      assert.equal((await store.finishedProblemIds("int")).size, j.problems);
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("eval --out journals every problem: a second run resumes, another configuration is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const args = [
      "eval",
      "--problems",
      "synthetic:3:2-2",
      "--seed",
      "5",
      "--policy",
      POLICY,
      "--prm",
      REWARD,
      "--ns",
      "1,2",
      "--strategies",
      "greedy,best-of-n",
      "--max-depth",
      "2",
      "--threads",
      "1",
      "--out",
      dir,
    ];
    const first = await cli([...args, "--json"]);
    assert.equal(first.code, 0, first.stderr);
    const { points } = JSON.parse(first.stdout);
    assert.deepEqual(
      points.map((p: { strategy: string; n: number }) => `${p.strategy}@${p.n}`),
      ["greedy@1", "best-of-n@1", "best-of-n@2"],
    );
    const journal = (await Deno.readTextFile(`${dir}/journal.jsonl`)).trim().split("\n");
    assert.equal(journal.length, 3);
    assert.match(
      await Deno.readTextFile(`${dir}/eval.md`),
      /Accuracy \[95% Wilson interval\] over 3 problems/,
    );
    assert.match(await Deno.readTextFile(`${dir}/eval.svg`), /^<svg /);
    const again = await cli([...args, "--json"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming: 3 problems already evaluated/);
    assert.deepEqual(JSON.parse(again.stdout).points, points);
    const other = await cli([...args.map((a) => (a === "1,2" ? "1,4" : a))]);
    assert.equal(other.code, 2);
    assert.match(
      other.stderr,
      /another configuration.*ns is \[1,2\] in the journal, \[1,4\] now.*--fresh/,
    );
    // Defaults given explicitly, and a number written another way, are the same settings.
    const same = await cli([...args, "--aggregation", "min", "--temperature", "1.0", "--json"]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stderr, /resuming: 3 problems/);
    // Two shards side by side into one journal, then one run for the whole table.
    const shared = `${dir}/shards`;
    const withOut = args.map((a) => (a === dir ? shared : a));
    const s0 = await cli([...withOut, "--shard", "0/2", "--json"]);
    assert.equal(s0.code, 0, s0.stderr);
    const s1 = await cli([...withOut, "--shard", "1/2", "--json"]);
    assert.equal(s1.code, 0, s1.stderr);
    assert.equal(JSON.parse(s0.stdout).points[0].total, 2, "shard 0 of 2 takes problems 0 and 2");
    const whole = await cli([...withOut, "--json"]);
    assert.match(whole.stderr, /resuming: 3 problems/);
    assert.deepEqual(JSON.parse(whole.stdout).points, points);
    const report = await cli([...withOut, "--report-only", "--json"]);
    assert.equal(report.code, 0, report.stderr);
    assert.deepEqual(JSON.parse(report.stdout).points, points, "the journal alone gives the table");
    // Other weights under the same path: refused too (the journal records a digest of them).
    const rm = `${dir}/rm`;
    await Deno.mkdir(rm);
    for await (const e of Deno.readDir(REWARD)) {
      if (e.isFile) await Deno.copyFile(`${REWARD}/${e.name}`, `${rm}/${e.name}`);
    }
    const mine = [...args.map((a) => (a === REWARD ? rm : a === dir ? `${dir}/w` : a)), "--json"];
    const before = await cli(mine);
    assert.equal(before.code, 0, before.stderr);
    await Deno.writeFile(`${rm}/model.onnx`, new Uint8Array([0]), { append: true });
    const changed = await cli(mine);
    assert.equal(changed.code, 2, changed.stderr);
    assert.match(changed.stderr, /another configuration.*weights is .* in the journal, .* now/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("eval: an edited problem file is not resumed; a failed command leaves no journal; plans that measure nothing are usage errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/p.jsonl`;
    const line = (q: string, a: number) =>
      JSON.stringify({ question: q, answer: `It is ${a}.\n#### ${a}` });
    await Deno.writeTextFile(
      file,
      [line("What is 2 + 3?", 5), line("What is 1 + 1?", 2)].join("\n"),
    );
    const out = `${dir}/e`;
    const args = ["eval", "--problems", file, "--policy", POLICY, "--strategies", "greedy"];
    const run = (...more: string[]) =>
      cli([...args, "--max-depth", "2", "--threads", "1", "--out", out, "--json", ...more]);
    // A model that fails to load (no reward.json): nothing is written, so the corrected command
    // runs.
    const noHead = `${dir}/no-head`;
    await Deno.mkdir(noHead);
    for await (const e of Deno.readDir(REWARD)) {
      if (e.isFile && e.name !== "reward.json") {
        await Deno.copyFile(`${REWARD}/${e.name}`, `${noHead}/${e.name}`);
      }
    }
    const bad = await run("--prm", noHead, "--strategies", "greedy,step-greedy");
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /no head\/format \(.*reward\.json does not exist\); write them there/);
    await assert.rejects(Deno.stat(`${out}/config.json`), Deno.errors.NotFound);
    const first = await run();
    assert.equal(first.code, 0, first.stderr);
    await Deno.writeTextFile(
      file,
      [line("What is 2 + 3?", 6), line("What is 1 + 1?", 2)].join("\n"),
    );
    const edited = await run();
    assert.equal(edited.code, 2, edited.stderr);
    assert.match(
      edited.stderr,
      /problemsSha256 is "[0-9a-f]{64}" in the journal, "[0-9a-f]{64}" now/,
    );
    const both = await run("--report-only", "--fresh");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--report-only and --fresh exclude each other/);
    assert.equal((await Deno.readTextFile(`${out}/journal.jsonl`)).trim().split("\n").length, 2);
    const cases: [string[], RegExp][] = [
      [["--ns", ""], /--ns must list integers >= 1: got ''/],
      [["--strategies", ""], /--strategies must list greedy, best-of-n, step-greedy: got ''/],
      [
        ["--strategies", "step-greedy", "--orm", REWARD],
        /--strategies step-greedy with --orm measures nothing: step-greedy needs --prm or --hrm/,
      ],
      [["--strategies", "best-of-n", "--paper", "--prm", REWARD], /measures nothing/],
    ];
    for (const [more, message] of cases) {
      const r = await cli([...args.slice(0, 5), ...more, "--out", `${dir}/x`]);
      assert.equal(r.code, 2, `${more.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    // --paper alone is the paper's table: greedy, the ORM in best-of-n, the PRM in step-greedy.
    const paper = await cli([
      ...args.slice(0, 5),
      ...["--paper", "--orm", REWARD, "--prm", REWARD, "--ns", "1", "--max-depth", "2"],
      ...["--threads", "1", "--json"],
    ]);
    assert.equal(paper.code, 0, paper.stderr);
    assert.deepEqual(
      JSON.parse(paper.stdout).points.map((p: { strategy: string; scorer: string }) =>
        `${p.strategy}/${p.scorer}`
      ),
      ["greedy/-", "best-of-n/ORM", "step-greedy/PRM"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("flag values: negative numbers after a space, enums, budgets and synthetic specs", async () => {
  const gen = ["generate", "--model", POLICY, "--prompt", "Hello", "--max-new-tokens", "3"];
  const neg = await cli([...gen, "--seed", "-1", "--json"]);
  assert.equal(neg.code, 0, neg.stderr);
  const negEq = await cli([...gen, "--seed=-1", "--json"]);
  assert.deepEqual(JSON.parse(neg.stdout).ids, JSON.parse(negEq.stdout).ids);
  for (
    const [more, message] of [
      [
        ["--strategy", "greedy", "--temperature", "0.5"],
        /--temperature is not read by --strategy greedy/,
      ],
      [["--run-id", ""], /--run-id must not be empty/],
      [["--strict"], /--strict is for a problems file, not for --problems synthetic:2/],
    ] as [string[], RegExp][]
  ) {
    const r = await cli(["agent", "--problems", "synthetic:2", "--policy", POLICY, ...more]);
    assert.equal(r.code, 2, `${more.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const temp = await cli([...gen, "--temperature", "-1"]);
  assert.equal(temp.code, 2);
  assert.match(temp.stderr, /--temperature must be a number >= 0: got '-1'/);
  const cases: [string[], RegExp][] = [
    [
      [
        "score-steps",
        "--reward",
        REWARD,
        "--head",
        "bogus",
        "--question",
        "q",
        "--steps-file",
        MAIN,
      ],
      /--head must be one of token-classification, lm-tokens, sequence-classification: got 'bogus'/,
    ],
    [["agent", "--problems", "synthetic:0", "--policy", POLICY], /synthetic:N needs N >= 1/],
    [
      ["agent", "--problems", "synthetic:3:5-2", "--policy", POLICY],
      /--problems synthetic:3:5-2: .*minSteps/,
    ],
    [
      ["agent", "--problems", "synthetic:3", "--format", "gsm8k", "--policy", POLICY],
      /--format is for a problems file/,
    ],
    [[
      "agent",
      "--problems",
      "synthetic:3",
      "--policy",
      POLICY,
      "--strategy",
      "greedy",
      "--seconds",
      "0",
    ], /--seconds must be > 0/],
    [
      ["agent", "--limit", "2", "--strategy", "greedy"],
      /the default run .* takes only --limit, --threads, --json, --help: got --strategy/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});

Deno.test("score-steps names a missing reward directory and an empty steps file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = await cli([
      "score-steps",
      "--reward",
      `${dir}/nope`,
      "--question",
      "q",
      "--steps-file",
      MAIN,
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope is not there \(no such directory\)/);
    await Deno.writeTextFile(`${dir}/empty.txt`, "\n\n  \n");
    const empty = await cli([
      "score-steps",
      "--reward",
      REWARD,
      "--question",
      "q",
      "--steps-file",
      `${dir}/empty.txt`,
    ]);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /holds no steps/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent --strategy annotate makes a run that export turns into hnc data; flags a strategy does not read exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const db = `${dir}/trees.db`;
    const bundled = fileURLToPath(new URL("../models/policy", import.meta.url));
    const a = await cli([
      ...["agent", "--strategy", "annotate", "--problems", "synthetic:3", "--seed", "41"],
      ...["--policy", bundled, "--k", "4", "--temperature", "0.7", "--max-step-tokens", "48"],
      ...["--db", db, "--run-id", "ann", "--threads", "1", "--json"],
    ]);
    assert.equal(a.code, 0, a.stderr);
    const report = JSON.parse(a.stdout);
    assert.equal(report.strategy, "annotate");
    assert.equal(report.problems, 3);
    const e = await cli([
      ...["export", "--run", "ann", "--db", db, "--kind", "hnc", "--format", "paper"],
      ...["--out", `${dir}/hnc`],
    ]);
    assert.equal(e.code, 0, e.stderr);
    const manifest = JSON.parse(await Deno.readTextFile(`${dir}/hnc/manifest.json`));
    assert.equal(manifest.options.trees, "annotation");
    const lines = (await Deno.readTextFile(`${dir}/hnc/data.jsonl`)).trim().split("\n");
    assert.equal(lines.length, manifest.files[0].records);
    const records = lines.map((l) => JSON.parse(l));
    assert.ok(records.some((r) => r.label === 1) && records.some((r) => r.label === 0));
    assert.ok(records.every((r) => r.input.startsWith("Question:\n")));
    for (
      const [flags, message] of [
        [
          ["--strategy", "annotate", "--c-puct", "2"],
          /--c-puct is not read by --strategy annotate \(only by mcts\)/,
        ],
        [["--strategy", "mcts", "--n", "4"], /--n is not read by --strategy mcts/],
        [
          ["--strategy", "greedy", "--full-depth", "1"],
          /--full-depth is not read by --strategy greedy \(only by annotate\)/,
        ],
      ] as const
    ) {
      const r = await cli(["agent", "--problems", "synthetic:1", "--policy", POLICY, ...flags]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every command's --help names every flag it takes", async () => {
  const { COMMANDS } = await import("../main.ts");
  for (const [name, command] of Object.entries(COMMANDS)) {
    for (const flag of Object.keys(command.options)) {
      if (flag === "help" || flag === "json" && command.usage.includes("--json")) continue;
      assert.ok(
        command.usage.includes(`--${flag}`),
        `${name} --help does not name --${flag}: ${command.usage.slice(0, 80)}...`,
      );
    }
  }
});
