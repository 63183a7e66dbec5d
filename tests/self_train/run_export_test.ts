import assert from "node:assert/strict";
import { openStore } from "../../store/mod.ts";
import type { TreeNode } from "../../mcts/mod.ts";
import {
  exportCommand,
  hnc,
  mixSeed,
  type RewardSample,
  runRewardSamples,
  treeSamples,
  union,
} from "../../self_train/mod.ts";
import { sharedDataPath } from "../_helpers.ts";
import { populate } from "./_store.ts";
import { scriptedAnnotation } from "./_fixtures.ts";

const PHASE1 = sharedDataPath("prm800k/phase1_test.jsonl");

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  return await Array.fromAsync(it);
}

Deno.test("runRewardSamples() reads a stored annotation tree: prm, hrm, hnc", async () => {
  await using store = await openStore(":memory:");
  const { treeId } = await populate(store);
  const nodes = (await store.getTree(treeId))!.nodes as TreeNode[];
  const question = "What is 3 + 4?";
  const seedOf = (purpose: string) => mixSeed(7, "p1", treeId, purpose);
  const common = { question, source: "run:r1", problemId: "p1" };

  const kinds: string[] = [];
  const prm = await collect(
    runRewardSamples(store, "r1", { kind: "prm", seed: 7, onTreeKind: (k) => kinds.push(k) }),
  );
  assert.deepEqual(kinds, ["annotation"]);
  assert.deepEqual(prm, treeSamples(nodes, { ...common, seed: seedOf("sample") }));
  assert.ok(prm.length > 0 && prm.every((s) => s.kind === "prm"));
  assert.deepEqual(await collect(runRewardSamples(store, "r1", { kind: "prm", seed: 7 })), prm);

  const hrm = await collect(runRewardSamples(store, "r1", { kind: "hrm", seed: 7 }));
  assert.deepEqual(hrm.filter((s) => s.kind === "prm"), prm); // same nodes sampled
  assert.ok(hrm.some((s) => s.kind === "hrm-merged"));

  const hncSamples = await collect(runRewardSamples(store, "r1", { kind: "hnc", seed: 7 }));
  const compressed = hnc(nodes, { seed: seedOf("hnc") }).nodes;
  const expected = union(
    treeSamples(nodes, { ...common, merged: true, seed: seedOf("sample") }),
    treeSamples(compressed, { ...common, merged: true, seed: seedOf("hnc-sample") }),
  );
  assert.deepEqual(hncSamples, expected);
  const key = (s: RewardSample) => JSON.stringify([s.previous, s.current, s.label]);
  const inHrm = new Set(hrm.map(key));
  assert.ok(hncSamples.some((s) => !inHrm.has(key(s))), "the HNC tree adds samples");
});

Deno.test("runRewardSamples() orm: graded trajectories, each solution once", async () => {
  await using store = await openStore(":memory:");
  await populate(store);
  const told: string[] = [];
  const orm = await collect(
    runRewardSamples(store, "r1", { kind: "orm", onTreeKind: (k) => told.push(k) }),
  );
  assert.deepEqual(told, [], "orm of a run with trajectories reads no trees");
  assert.deepEqual(orm.map((s) => [s.problemId, [...s.previous, s.current].join("|"), s.label]), [
    ["p1", "a|a2|ANSWER 7", 1],
    ["p1", "a|a1|ANSWER 5", 0],
    ["p1", "b|b1|ANSWER 7", 1],
    ["p1", "b|b2|ANSWER 7", 1],
  ]); // p2 has no gold answer: its trajectories are ungraded
  assert.ok(orm.every((s) => s.kind === "orm" && s.previousLabels === undefined));
});

Deno.test("runRewardSamples() says what is missing when a run has unlabelled search trees only", async () => {
  await using store = await openStore(":memory:");
  await populate(store);
  await assert.rejects(
    collect(runRewardSamples(store, "r2", { kind: "hrm" })),
    /run 'r2': the run has no annotation trees, and its search trees carry no Monte-Carlo labels \(search tree \d+ of problem 'q1': 2 of 2 nodes lack 'mcLabel'\)\. prm, hrm and hnc samples need Monte-Carlo labels, which annotation trees carry: make them with `deno task agent --strategy annotate.* export them with --kind orm or --kind sft$/,
  );
  // A run with no trees at all (a step-greedy run of `deno task agent`) says the same.
  await store.createRun({
    id: "r3",
    strategy: "step-greedy",
    config: {},
    seed: 0,
    policyId: "scripted",
    problemsSource: "hand",
  });
  await store.saveProblemResult("r3", {
    problemId: "s1",
    index: 0,
    question: "Q",
    gold: "1",
    tokens: 0,
    seconds: 0,
    trajectories: [{ steps: ["ANSWER 1"], stepRewards: [0.9], score: 0.9, correct: true }],
  });
  await assert.rejects(
    collect(runRewardSamples(store, "r3", { kind: "prm" })),
    /run 'r3': it has no annotation trees and no search trees\. .*`deno task agent --strategy annotate --problems .*--kind orm or --kind sft$/,
  );
  await assert.rejects(collect(runRewardSamples(store, "nope", { kind: "prm" })), /no such run/);
});

async function withDb(fn: (db: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arborist-cli-" });
  try {
    const db = `${dir}/runs.db`;
    const store = await openStore(db);
    try {
      await populate(store);
    } finally {
      await store.close();
    }
    await fn(db, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const quiet = () => {
  const out: string[] = [], err: string[] = [];
  return {
    io: { print: (l: string) => out.push(l), warn: (l: string) => err.push(l), progress: false },
    out,
    err,
  };
};

Deno.test("exportCommand() --run writes HNC data in openrlhf with soft labels", async () => {
  await withDb(async (db, dir) => {
    const q = quiet();
    await exportCommand({
      run: "r1",
      kind: "hnc",
      format: "openrlhf",
      out: `${dir}/x`,
      db,
      seed: "3",
      json: true,
    }, q.io);
    const m = JSON.parse(q.out[0]);
    assert.equal(m.kind, "hnc");
    assert.equal(m.format, "openrlhf");
    assert.equal(m.source, "run:r1");
    assert.equal(m.seed, 3);
    assert.deepEqual(m.model_ids, { policy: "scripted", reward: "scripted-reward" });
    assert.equal(m.options.labels, "soft");
    assert.equal(m.options.trees, "annotation");
    assert.deepEqual(q.err, ["reading the run's annotation trees"]);
    const lines = (await Deno.readTextFile(`${dir}/x/data.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(lines.length, m.files[0].records);
    for (const l of lines) {
      assert.equal(l.input.split(" ки").length - 1, l.label.length);
      assert.ok(l.label.every((x: unknown) => typeof x === "number"));
    }
  });
});

Deno.test("exportCommand() --prm800k writes the paper format and prints a summary", async () => {
  await withDb(async (_db, dir) => {
    const q = quiet();
    await exportCommand({ prm800k: PHASE1, kind: "prm", format: "paper", out: `${dir}/p` }, q.io);
    const m = JSON.parse(await Deno.readTextFile(`${dir}/p/manifest.json`));
    assert.equal(m.files[0].records + m.duplicates, 3171);
    assert.equal(m.source, PHASE1);
    assert.match(
      q.out[0],
      new RegExp(`^wrote ${m.files[0].records} prm records \\(paper\\) to ${dir}/p/data.jsonl$`),
    );
  });
});

Deno.test("exportCommand() --prm800k warns of a malformed line and records it in the manifest", async () => {
  await withDb(async (_db, dir) => {
    const lines = (await Deno.readTextFile(PHASE1)).split("\n").slice(0, 4);
    const file = `${dir}/small.jsonl`;
    await Deno.writeTextFile(file, [lines[0], "{oops", lines[2], lines[3]].join("\n"));
    const q = quiet();
    await exportCommand({ prm800k: file, kind: "hrm", format: "trl", out: `${dir}/s` }, q.io);
    assert.equal(q.err.length, 1);
    assert.match(q.err[0], new RegExp(`^warning: ${file}:2: not JSON`));
    const m = JSON.parse(await Deno.readTextFile(`${dir}/s/manifest.json`));
    assert.deepEqual(m.options, { malformed_lines_skipped: 1, labels: "hard" });
    await assert.rejects(
      exportCommand(
        { prm800k: file, kind: "hrm", format: "trl", out: `${dir}/t/u`, strict: true },
        q.io,
      ),
      new RegExp(`${file}:2: not JSON`),
    );
    // The failed export leaves no folder behind (nor the parent it created).
    await assert.rejects(Deno.stat(`${dir}/t`), Deno.errors.NotFound);
  });
});

Deno.test("exportCommand() --prm800k of a file that is not PRM800K: a few warnings, then an error, nothing written", async () => {
  await withDb(async (_db, dir) => {
    const file = `${dir}/gsm8k.jsonl`;
    const gsm = (i: number) => JSON.stringify({ question: `What is ${i} + 1?`, answer: "#### 2" });
    await Deno.writeTextFile(file, Array.from({ length: 9 }, (_, i) => gsm(i)).join("\n") + "\n");
    const q = quiet();
    await assert.rejects(
      exportCommand({ prm800k: file, kind: "prm", format: "trl", out: `${dir}/x` }, q.io),
      (e: Error) => {
        assert.ok(!(e instanceof RangeError), "not a flag error: exit 1");
        assert.match(
          e.message,
          new RegExp(
            `^Cannot export --prm800k ${file}: none of its 9 lines is a PRM800K record \\(the first: ${file}:1: not a PRM800K record: field 'question' .*\\); the file does not look like PRM800K`,
          ),
        );
        return true;
      },
    );
    assert.equal(q.err.length, 6);
    q.err.slice(0, 5).forEach((l, i) =>
      assert.match(l, new RegExp(`^warning: ${file}:${i + 1}: not a PRM800K record`))
    );
    assert.equal(q.err[5], "warning: 4 more malformed lines skipped (9 in all)");
    await assert.rejects(Deno.stat(`${dir}/x`), Deno.errors.NotFound);

    await Deno.writeTextFile(`${dir}/blank.jsonl`, "\n\n");
    await assert.rejects(
      exportCommand(
        { prm800k: `${dir}/blank.jsonl`, kind: "prm", format: "trl", out: `${dir}/x` },
        q.io,
      ),
      /it holds no record \(the file is empty\)/,
    );
    await assert.rejects(Deno.stat(`${dir}/x`), Deno.errors.NotFound);
  });
});

Deno.test("exportCommand() --prm800k records --seed in the manifest (null when not given)", async () => {
  await withDb(async (_db, dir) => {
    const file = `${dir}/small.jsonl`;
    await Deno.writeTextFile(
      file,
      (await Deno.readTextFile(PHASE1)).split("\n").slice(0, 3).join("\n"),
    );
    const q = quiet();
    await exportCommand(
      { prm800k: file, kind: "prm", format: "trl", out: `${dir}/a`, seed: "7" },
      q.io,
    );
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/a/manifest.json`)).seed, 7);
    await exportCommand({ prm800k: file, kind: "prm", format: "trl", out: `${dir}/b` }, q.io);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/b/manifest.json`)).seed, null);
  });
});

Deno.test("exportCommand() checks its input before creating anything: no folder, no database", async () => {
  await withDb(async (db, dir) => {
    const q = quiet();
    await assert.rejects(
      exportCommand(
        { prm800k: `${dir}/nosuch.jsonl`, kind: "prm", format: "trl", out: `${dir}/x` },
        q.io,
      ),
      new RegExp(`^Error: Cannot export --prm800k ${dir}/nosuch.jsonl: no such file$`),
    );
    await assert.rejects(Deno.stat(`${dir}/x`), Deno.errors.NotFound);
    for (const missing of [`${dir}/nosuch.db`, `file:${dir}/nosuch.db`]) {
      await assert.rejects(
        exportCommand(
          { run: "r1", db: missing, kind: "orm", format: "trl", out: `${dir}/x` },
          q.io,
        ),
        new RegExp(`Cannot export run 'r1' from --db ${dir}/nosuch.db: no such database file`),
      );
      await assert.rejects(Deno.stat(`${dir}/nosuch.db`), Deno.errors.NotFound);
      await assert.rejects(Deno.stat(`${dir}/x`), Deno.errors.NotFound);
    }
    // An existing database without the run: an error, and still no folder.
    await assert.rejects(
      exportCommand({ run: "nope", db, kind: "orm", format: "trl", out: `${dir}/x` }, q.io),
      /no such run/,
    );
    await assert.rejects(Deno.stat(`${dir}/x`), Deno.errors.NotFound);
    // A run export that fails (search trees without labels) removes the folder it made.
    await assert.rejects(
      exportCommand({ run: "r2", db, kind: "prm", format: "trl", out: `${dir}/x` }, q.io),
      /carry no Monte-Carlo labels/,
    );
    await assert.rejects(Deno.stat(`${dir}/x`), Deno.errors.NotFound);
  });
});

Deno.test("exportCommand() usage errors are one-line RangeErrors naming the flag", async () => {
  await withDb(async (db, dir) => {
    const q = quiet();
    const cases: [Record<string, unknown>, string][] = [
      [
        { run: "r1", kind: "x", format: "trl", out: dir },
        "--kind must be one of prm, hrm, hnc, orm, sft: got 'x'",
      ],
      [
        { run: "r1", format: "trl", out: dir },
        "--kind is required: one of prm, hrm, hnc, orm, sft",
      ],
      [{ run: "r1", kind: "prm", format: "trl" }, "--out is required"],
      [
        { kind: "orm", format: "trl", out: dir },
        "--run ID or --prm800k FILE is required: give exactly one of them",
      ],
      [
        { run: "r1", prm800k: PHASE1, kind: "prm", format: "trl", out: dir },
        "--run and --prm800k exclude each other: give exactly one of --run ID and --prm800k FILE",
      ],
      [
        { run: "r1", kind: "sft", format: "trl", out: dir, db },
        "--kind sft writes format sft: got --format 'trl'",
      ],
      [
        { run: "r1", kind: "prm", format: "sft", out: dir, db },
        "--format sft goes with --kind sft only: got --kind 'prm'",
      ],
      [
        { run: "r1", kind: "prm", out: dir, db },
        "--format is required: one of trl, openrlhf, paper",
      ],
      [
        { run: "r1", kind: "prm", format: "csv", out: dir, db },
        "--format must be one of trl, openrlhf, paper, sft: got 'csv'",
      ],
      [
        { prm800k: PHASE1, kind: "hnc", format: "trl", out: dir },
        "--kind must be one of prm, hrm with --prm800k: got 'hnc'",
      ],
      [
        { run: "r1", kind: "prm", format: "trl", out: dir, db, seed: "1.5" },
        "--seed must be an integer: got '1.5'",
      ],
      [
        { run: "r1", kind: "sft", out: dir, db },
        "--policy is required with --kind sft (the reference policy that scores the records)",
      ],
      [
        { run: "r1", kind: "prm", format: "trl", out: dir, db, labels: "fuzzy" },
        "--labels must be one of hard, soft: got 'fuzzy'",
      ],
      [{ run: "r1", kind: 3, format: "trl", out: dir }, "--kind must be a string or a switch"],
      [
        { run: "r1", kind: "hnc", format: "paper", out: dir, db, "min-mc": "0.9" },
        "--min-mc is read only with --kind sft: this export is --run with --kind hnc --format paper",
      ],
      [
        { run: "r1", kind: "prm", format: "paper", out: dir, db, labels: "soft" },
        "--labels is read only with --format trl or openrlhf",
      ],
      [
        { run: "r1", kind: "prm", format: "trl", out: dir, db, placeholder: "<s>" },
        "--placeholder is read only with --format openrlhf",
      ],
      [
        { run: "r1", kind: "orm", format: "trl", out: dir, db, strict: true },
        "--strict is read only with --prm800k",
      ],
      [
        { prm800k: PHASE1, kind: "prm", format: "trl", out: dir, db },
        "--db is read only with --run: this export is --prm800k",
      ],
    ];
    for (const [values, message] of cases) {
      await assert.rejects(exportCommand(values, q.io), (e: Error) => {
        assert.ok(e instanceof RangeError, `${message}: got ${e}`);
        assert.ok(e.message.startsWith(message), `expected '${message}', got '${e.message}'`);
        // main.ts exits 2 (a flag error) only for a RangeError that starts with "--".
        assert.ok(e.message.startsWith("--"), `not a flag error for main.ts: '${e.message}'`);
        assert.ok(!e.message.includes("\n"));
        return true;
      });
    }
  });
});

Deno.test("runRewardSamples() orm of a run of annotation trees only: its graded leaves", async () => {
  const store = await openStore(":memory:");
  try {
    await store.createRun({
      id: "a",
      strategy: "annotate",
      config: {},
      seed: 0,
      policyId: "scripted",
      problemsSource: "hand",
    });
    const nodes = await scriptedAnnotation();
    await store.saveProblemResult("a", {
      problemId: "p",
      index: 0,
      question: "What is 3 + 4?",
      gold: "7",
      tokens: 0,
      seconds: 0,
      tree: { kind: "annotation", seed: 1, nodes },
    });
    const samples = [], told: string[] = [];
    const onTreeKind = (k: string) => told.push(k);
    for await (const s of runRewardSamples(store, "a", { kind: "orm", onTreeKind })) {
      samples.push(s);
    }
    assert.deepEqual(told, ["annotation"], "the manifest can say where the samples came from");
    const graded = nodes.filter((n) =>
      n.terminal && n.children.length === 0 && n.correct !== undefined
    );
    assert.ok(samples.length > 0 && samples.length <= graded.length);
    assert.deepEqual(
      new Set(samples.map((s) => s.label)),
      new Set(graded.map((n) => (n.correct ? 1 : 0))),
    );
  } finally {
    await store.close();
  }
});
