import assert from "node:assert/strict";
import { count } from "drizzle-orm";
import { fileURLToPath } from "node:url";
import {
  LibsqlRunStore,
  type NewRun,
  openStore,
  parseShard,
  schema,
  shardOf,
  type StoreDb,
  type TreeNodeData,
} from "../../store/mod.ts";
import type { TreeNode } from "../../mcts/mod.ts";
import { makeResult, makeTree } from "./_trees.ts";

/** A fresh database URL and a way to remove it. */
type Fixture = { url: string; cleanup(): Promise<void> };

const memory = (): Promise<Fixture> =>
  Promise.resolve({ url: ":memory:", cleanup: async () => {} });

async function tempFile(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "arborist-store-" });
  return {
    url: `${dir}/sub/dir/arborist.db`,
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A clock that ticks one second per call, so runs sort by creation. */
function ticking(): () => Date {
  let t = Date.UTC(2025, 0, 1);
  return () => new Date(t += 1000);
}

const RUN: NewRun = {
  id: "r1",
  strategy: "mcts",
  config: { k: 4, cPuct: 1.5, nested: { a: 1 } },
  seed: 3,
  policyId: "tiny-policy",
  rewardId: "tiny-prm",
  problemsSource: "synthetic",
};

/** Open a store on a fresh database, with a run `r1`. */
async function withStore(
  make: () => Promise<Fixture>,
  body: (store: LibsqlRunStore) => Promise<void>,
): Promise<void> {
  const fx = await make();
  const store = await openStore(fx.url, { now: ticking() });
  try {
    await store.createRun(RUN);
    await body(store);
  } finally {
    await store.close();
    await fx.cleanup();
  }
}

/** Rows in a table, for checking that nothing was left behind. */
async function rows(store: LibsqlRunStore, table: "nodes" | "trees" | "trajectories" | "problems") {
  return (await store.db.select({ n: count() }).from(schema[table]))[0].n;
}

/** The contract every libsql location must keep. */
function contract(name: string, make: () => Promise<Fixture>): void {
  const t = (what: string, body: (store: LibsqlRunStore) => Promise<void>) =>
    Deno.test(`${name}: ${what}`, () => withStore(make, body));

  t("createRun() stores a run that getRun() and listRuns() return", async (store) => {
    await store.createRun({ ...RUN, id: "r2", rewardId: null, shards: 4 });
    await store.createRun({ ...RUN, id: "r3" });
    const r2 = await store.getRun("r2");
    assert.equal(r2?.strategy, "mcts");
    assert.deepEqual(r2?.config, RUN.config);
    assert.equal(r2?.rewardId, null);
    assert.equal(r2?.shards, 4);
    assert.equal(r2?.status, "running");
    assert.ok(r2?.createdAt instanceof Date);
    assert.equal(await store.getRun("nope"), undefined);
    assert.deepEqual((await store.listRuns()).map((r) => r.id), ["r3", "r2", "r1"]);
    assert.deepEqual((await store.listRuns({ limit: 1, offset: 1 })).map((r) => r.id), ["r2"]);
  });

  t("createRun() refuses an id that exists", async (store) => {
    await assert.rejects(store.createRun(RUN), /Cannot create run 'r1': a run with this id exists/);
  });

  t("createRun() validates its input", async (store) => {
    await assert.rejects(
      store.createRun({ ...RUN, id: "r9", seed: 1.5 }),
      (e: Error) => e instanceof TypeError && /Cannot create run 'r9'.*seed/s.test(e.message),
    );
  });

  t("getOrCreateRun() returns the stored run when the settings match", async (store) => {
    const again = await store.getOrCreateRun({
      ...RUN,
      config: { nested: { a: 1 }, cPuct: 1.5, k: 4 },
    });
    assert.equal(again.id, "r1");
    const fresh = await store.getOrCreateRun({ ...RUN, id: "r2" });
    assert.equal(fresh.id, "r2");
  });

  t("getOrCreateRun() with another config says what differs", async (store) => {
    await assert.rejects(
      store.getOrCreateRun({ ...RUN, strategy: "beam", config: { ...RUN.config, k: 8 } }),
      (e: Error) => {
        assert.match(e.message, /^Cannot resume run 'r1': it was started with other settings/);
        assert.match(e.message, /strategy is "mcts" in the store, "beam" now/);
        assert.match(e.message, /config\.k is 4 in the store, 8 now/);
        assert.doesNotMatch(e.message, /cPuct/);
        return true;
      },
    );
  });

  t("getOrCreateRun() refuses another policy, reward model or problem source", async (store) => {
    const cases: [Partial<NewRun>, RegExp][] = [
      [
        { policyId: "policy-selftrained" },
        /policy is "tiny-policy" in the store, "policy-selftrained" now/,
      ],
      [{ rewardId: "tiny-hrm" }, /reward model is "tiny-prm" in the store, "tiny-hrm" now/],
      [{ rewardId: null }, /reward model is "tiny-prm" in the store, none now/],
      [
        { problemsSource: "synthetic:5" },
        /problems is "synthetic" in the store, "synthetic:5" now/,
      ],
    ];
    for (const [change, what] of cases) {
      await assert.rejects(store.getOrCreateRun({ ...RUN, ...change }), (e: Error) => {
        assert.match(e.message, /^Cannot resume run 'r1': it was started with other settings/);
        assert.match(e.message, what);
        return true;
      });
    }
  });

  t(
    "getOrCreateRun() takes a problem file given relative or absolute, and a model id with a slash, as the same",
    async (store) => {
      const same = {
        policyId: "policy",
        rewardId: "hrm/",
        problemsSource: "data/p.jsonl",
      };
      await store.createRun({ ...RUN, id: "paths", ...same });
      const again = await store.getOrCreateRun({
        ...RUN,
        id: "paths",
        policyId: "policy/",
        rewardId: "hrm",
        problemsSource: `${Deno.cwd()}/data//p.jsonl`,
      });
      assert.equal(again.policyId, "policy");
      await assert.rejects(
        store.getOrCreateRun({ ...RUN, id: "paths", ...same, rewardId: "prm" }),
        /reward model is "hrm\/" in the store, "prm" now/,
      );
      await assert.rejects(
        store.getOrCreateRun({ ...RUN, id: "paths", ...same, problemsSource: "synthetic:3" }),
        /problems is "data\/p.jsonl" in the store, "synthetic:3" now/,
      );
    },
  );

  t("setRunStatus() changes the status and refuses unknown runs", async (store) => {
    await store.setRunStatus("r1", "done");
    assert.equal((await store.getRun("r1"))?.status, "done");
    await assert.rejects(
      store.setRunStatus("nope", "done"),
      /Cannot set the status of run 'nope': no such run/,
    );
  });

  t(
    "saveProblemResult() stores a 500-node tree that getTree() reads back identical",
    async (store) => {
      const result = makeResult("p1", { size: 500, shuffle: true });
      const { treeId } = await store.saveProblemResult("r1", result);
      assert.ok(treeId !== null);
      const tree = await store.getTree(treeId);
      assert.ok(tree);
      assert.equal(tree.kind, "search");
      assert.equal(tree.seed, 7);
      assert.equal(tree.nodeCount, 500);
      assert.ok(Number.isNaN(tree.nodes[0].reward));
      assert.deepStrictEqual(tree.nodes, result.tree!.nodes);
      const trees = await store.getTrees("r1", "p1");
      assert.deepStrictEqual(trees, [tree]);
      assert.equal(await store.getTree(treeId + 1000), undefined);
    },
  );

  t("saveProblemResult() stores the problem row and trajectories", async (store) => {
    const { treeId } = await store.saveProblemResult("r1", makeResult("p1"));
    const [p] = await store.listProblems("r1");
    assert.equal(p.problemId, "p1");
    assert.equal(p.correct, true);
    assert.equal(p.status, "done");
    assert.equal(p.reward, 0.75);
    const ts = await store.listTrajectories("r1");
    assert.equal(ts.length, 3);
    assert.ok(ts.every((t) => t.treeId === treeId && t.problemId === "p1"));
    assert.deepEqual(ts[0].steps, ["a", "b"]);
    assert.equal(ts[0].chosen, true);
    assert.ok(Number.isNaN(ts[1].stepRewards[1]));
    assert.equal(ts[1].mcScore, 0.25);
    assert.equal(ts[2].pseudoLabel, true);
    assert.equal(ts[2].correct, null);
  });

  t("saveProblemResult() without a tree stores no tree", async (store) => {
    const { tree: _, ...bare } = makeResult("p1");
    assert.deepEqual(await store.saveProblemResult("r1", bare), { treeId: null });
    assert.deepEqual(await store.getTrees("r1", "p1"), []);
    assert.ok((await store.listTrajectories("r1")).every((t) => t.treeId === null));
  });

  t("saveTree() adds an annotation tree to a stored problem", async (store) => {
    await store.saveProblemResult("r1", makeResult("p1"));
    const nodes = makeTree(30, { seed: 9 });
    const id = await store.saveTree("r1", "p1", {
      kind: "annotation",
      seed: 1,
      nodes,
      trajectories: [{ steps: ["z"], stepRewards: [1], score: 1 }],
    });
    const trees = await store.getTrees("r1", "p1");
    assert.deepEqual(trees.map((t) => t.kind), ["search", "annotation"]);
    assert.deepStrictEqual(trees[1].nodes, nodes);
    assert.equal((await store.listTrajectories("r1", { problemId: "p1" })).at(-1)?.treeId, id);
    await assert.rejects(
      store.saveTree("r1", "p404", { kind: "hnc", seed: 1, nodes }),
      /Cannot save a hnc tree of problem 'p404' of run 'r1': the problem is not stored/,
    );
  });

  t("finishedProblemIds() lists the saved problems of the run only", async (store) => {
    await store.createRun({ ...RUN, id: "other" });
    for (const id of ["p1", "p2", "p3"]) await store.saveProblemResult("r1", makeResult(id));
    await store.saveProblemResult("other", makeResult("p9"));
    assert.deepEqual(await store.finishedProblemIds("r1"), new Set(["p1", "p2", "p3"]));
    assert.deepEqual(await store.finishedProblemIds("none"), new Set());
  });

  t("runSummary() totals problems, correct answers, tokens and seconds", async (store) => {
    assert.deepEqual(await store.runSummary("r1"), {
      problems: 0,
      graded: 0,
      correct: 0,
      accuracy: null,
      tokens: 0,
      seconds: 0,
    });
    await store.saveProblemResult("r1", makeResult("p1", { correct: true }));
    await store.saveProblemResult("r1", makeResult("p2", { correct: false }));
    await store.saveProblemResult("r1", makeResult("p3", { correct: true }));
    await store.saveProblemResult("r1", { ...makeResult("p4", { correct: null }), tokens: 10 });
    assert.deepEqual(await store.runSummary("r1"), {
      problems: 4,
      graded: 3,
      correct: 2,
      accuracy: 2 / 3,
      tokens: 370,
      seconds: 6,
    });
  });

  t("listTrajectories() filters by minScore, correct and chosen", async (store) => {
    await store.saveProblemResult("r1", makeResult("p1"));
    await store.saveProblemResult("r1", makeResult("p2"));
    const scores = (ts: { score: number }[]) => ts.map((t) => t.score);
    assert.deepEqual(scores(await store.listTrajectories("r1", { minScore: 0.4 })), [
      0.8,
      0.4,
      0.8,
      0.4,
    ]);
    assert.deepEqual(scores(await store.listTrajectories("r1", { minScore: 0.5 })), [0.8, 0.8]);
    assert.deepEqual(scores(await store.listTrajectories("r1", { correct: false })), [0.4, 0.4]);
    assert.equal((await store.listTrajectories("r1", { chosen: true, problemId: "p2" })).length, 1);
    assert.deepEqual(await store.listTrajectories("other"), []);
  });

  t("iterTrees() streams every tree of a run page by page, by kind", async (store) => {
    for (let i = 0; i < 7; i++) {
      await store.saveProblemResult("r1", makeResult(`p${i}`, { seed: i }));
    }
    await store.saveTree("r1", "p3", { kind: "hnc", seed: 0, nodes: makeTree(5) });
    const seen: string[] = [];
    for await (const t of store.iterTrees("r1", { kind: "search", pageSize: 3 })) {
      assert.deepStrictEqual(t.nodes, makeTree(50, { seed: i(t.problemId) }));
      seen.push(t.problemId);
    }
    assert.deepEqual(seen, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    let all = 0;
    for await (const _ of store.iterTrees("r1")) all++;
    assert.equal(all, 8);
  });

  t("a save that fails midway leaves nothing of the problem behind", async (store) => {
    await store.saveProblemResult("r1", makeResult("p0"));
    const before = await Promise.all(
      (["nodes", "trees", "trajectories", "problems"] as const).map((x) => rows(store, x)),
    );
    const bad = makeResult("p1", { size: 900 });
    // A second node 850: the problem, the tree and two node chunks are written first.
    bad.tree = { ...bad.tree!, nodes: [...bad.tree!.nodes, { ...bad.tree!.nodes[850] }] };
    await assert.rejects(
      store.saveProblemResult("r1", bad),
      /Cannot save problem 'p1' of run 'r1': .*UNIQUE constraint failed: nodes\.tree_id, nodes\.node_index/,
    );
    const after = await Promise.all(
      (["nodes", "trees", "trajectories", "problems"] as const).map((x) => rows(store, x)),
    );
    assert.deepEqual(after, before);
    assert.deepEqual(await store.finishedProblemIds("r1"), new Set(["p0"]));
    assert.deepEqual(await store.getTrees("r1", "p1"), []);
    // And the store still works afterwards.
    await store.saveProblemResult("r1", makeResult("p1"));
    assert.equal((await store.finishedProblemIds("r1")).size, 2);
  });

  t(
    "saveProblemResult() says when the problem is stored already or the run is missing",
    async (store) => {
      await store.saveProblemResult("r1", makeResult("p1"));
      await assert.rejects(
        store.saveProblemResult("r1", makeResult("p1")),
        /^Error: Cannot save problem 'p1' of run 'r1': it is already stored$/,
      );
      await assert.rejects(
        store.saveProblemResult("r404", makeResult("p1")),
        /Cannot save problem 'p1' of run 'r404': there is no run 'r404' \(create it first\)/,
      );
    },
  );

  t("saveProblemResult() names a non-finite node value before writing anything", async (store) => {
    const bad = makeResult("p1");
    bad.tree!.nodes[7].logprob = -Infinity;
    await assert.rejects(
      store.saveProblemResult("r1", bad),
      (e: Error) =>
        e instanceof RangeError &&
        e.message ===
          "Cannot save node 7 of the tree of problem 'p1' of run 'r1': 'logprob' must be a finite number: got -Infinity",
    );
    assert.equal(await rows(store, "problems"), 0);
  });

  t(
    "saveProblemResult() refuses a tree whose parents and children lists disagree",
    async (store) => {
      const bad = makeResult("p1");
      const n = bad.tree!.nodes.find((n) => n.parent > 0)!;
      const listedBy = n.parent;
      n.parent = 0;
      await assert.rejects(
        store.saveProblemResult("r1", bad),
        new RegExp(`node ${n.id} has parent 0 but is in node ${listedBy}'s children`),
      );
      const twice = makeResult("p1");
      twice.tree!.nodes[0].children.push(twice.tree!.nodes[0].children[0]);
      await assert.rejects(store.saveProblemResult("r1", twice), /is listed twice as a child/);
      assert.equal(await rows(store, "problems"), 0);
    },
  );

  t("saves started at once all land (they queue on the one connection)", async (store) => {
    const ids = Array.from({ length: 12 }, (_, k) => `p${k}`);
    const saved = await Promise.all(
      ids.map((id) => store.saveProblemResult("r1", makeResult(id, { size: 120 }))),
    );
    assert.equal(new Set(saved.map((s) => s.treeId)).size, 12);
    assert.deepEqual(await store.finishedProblemIds("r1"), new Set(ids));
    for (const [k, id] of ids.entries()) {
      const [tree] = await store.getTrees("r1", id);
      assert.equal(tree.id, saved[k].treeId);
      assert.equal(tree.nodes.length, 120);
    }
  });
}

function i(problemId: string): number {
  return Number(problemId.slice(1));
}

contract(":memory:", memory);
contract("file", tempFile);

Deno.test("file: openStore() sets WAL and busy_timeout and creates parent folders", async () => {
  const fx = await tempFile();
  const store = await openStore(fx.url);
  try {
    const c = store.db.$client;
    assert.deepEqual((await c.execute("PRAGMA journal_mode")).rows[0][0], "wal");
    assert.deepEqual((await c.execute("PRAGMA busy_timeout")).rows[0][0], 5000);
    assert.ok((await Deno.stat(fx.url)).isFile);
  } finally {
    await store.close();
    await fx.cleanup();
  }
});

Deno.test("file: a reopened store keeps its data, through a file: URL too", async () => {
  const fx = await tempFile();
  try {
    const a = await openStore(fx.url);
    await a.createRun(RUN);
    await a.saveProblemResult("r1", makeResult("p1", { size: 200 }));
    await a.close();
    const b = await openStore(`file:${fx.url}`);
    try {
      assert.deepEqual(await b.finishedProblemIds("r1"), new Set(["p1"]));
      assert.deepStrictEqual((await b.getTrees("r1", "p1"))[0].nodes, makeTree(200));
    } finally {
      await b.close();
    }
  } finally {
    await fx.cleanup();
  }
});

/** The size of a file, 0 when it is missing. */
async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

Deno.test("file: after close() the .db file alone holds everything (the WAL is checkpointed)", async () => {
  const fx = await tempFile();
  const copy = await Deno.makeTempDir({ prefix: "arborist-store-copy-" });
  try {
    const a = await openStore(fx.url);
    await a.createRun(RUN);
    await a.saveProblemResult("r1", makeResult("p1", { size: 200 }));
    await a.close();
    await a.close(); // a second close is harmless
    assert.equal(await sizeOf(`${fx.url}-wal`), 0, "the WAL was left with frames");
    await Deno.copyFile(fx.url, `${copy}/alone.db`);
    const b = await openStore(`${copy}/alone.db`);
    try {
      assert.equal((await b.getRun("r1"))?.policyId, "tiny-policy");
      assert.deepEqual(await b.finishedProblemIds("r1"), new Set(["p1"]));
      assert.deepStrictEqual((await b.getTrees("r1", "p1"))[0].nodes, makeTree(200));
    } finally {
      await b.close();
    }
  } finally {
    await Deno.remove(copy, { recursive: true });
    await fx.cleanup();
  }
});

Deno.test("file: close() while another store reads does not fail or wait; the last close checkpoints", async () => {
  const fx = await tempFile();
  try {
    const [a, b] = [await openStore(fx.url), await openStore(fx.url)];
    await a.createRun(RUN);
    await a.saveProblemResult("r1", makeResult("p1", { size: 50 }));
    // b holds a read snapshot, so a's checkpoint cannot truncate the WAL.
    const tx = await b.db.$client.transaction("read");
    await tx.execute("SELECT count(*) FROM nodes");
    const t0 = performance.now();
    await a.close();
    assert.ok(performance.now() - t0 < 2000, "close() waited for the reader");
    await tx.commit();
    await b.saveProblemResult("r1", makeResult("p2", { size: 50 }));
    await b.close();
    assert.equal(await sizeOf(`${fx.url}-wal`), 0);
    const c = await openStore(fx.url);
    try {
      assert.deepEqual(await c.finishedProblemIds("r1"), new Set(["p1", "p2"]));
    } finally {
      await c.close();
    }
  } finally {
    await fx.cleanup();
  }
});

Deno.test("close() on a server only closes the client: no checkpoint is sent", async () => {
  for (const protocol of ["http", "https", "ws", "wss"]) {
    const sent: string[] = [];
    let closed = false;
    const client = {
      protocol,
      get closed() {
        return closed;
      },
      execute: (sql: string) => {
        sent.push(sql);
        return Promise.resolve({ rows: [] });
      },
      close: () => {
        closed = true;
      },
    };
    const store = new LibsqlRunStore({ $client: client } as unknown as StoreDb);
    await store.close();
    assert.deepEqual(sent, [], protocol);
    assert.ok(closed, protocol);
  }
});

Deno.test("file: two stores opening a fresh database at once both migrate it", async () => {
  const fx = await tempFile();
  try {
    const stores = await Promise.all([openStore(fx.url), openStore(fx.url), openStore(fx.url)]);
    await stores[0].createRun(RUN);
    for (const s of stores) assert.equal((await s.getRun("r1"))?.id, "r1");
    for (const s of stores) await s.close();
  } finally {
    await fx.cleanup();
  }
});

Deno.test("file: workers starting the same run at once all get it", async () => {
  const fx = await tempFile();
  try {
    const stores = await Promise.all([openStore(fx.url), openStore(fx.url), openStore(fx.url)]);
    const got = await Promise.all(stores.map((s) => s.getOrCreateRun(RUN)));
    assert.deepEqual(got.map((r) => r.id), ["r1", "r1", "r1"]);
    assert.equal((await stores[0].listRuns()).length, 1);
    for (const s of stores) await s.close();
  } finally {
    await fx.cleanup();
  }
});

Deno.test("openStore() names the location when the folder cannot be created", async () => {
  await assert.rejects(
    openStore("/proc/nope/x.db"),
    (e: Error) => e.message.startsWith("Cannot open run store at /proc/nope/x.db: "),
  );
});

Deno.test("openStore() names the location when the file is not a database", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arborist-store-" });
  try {
    const path = `${dir}/garbage.db`;
    await Deno.writeTextFile(path, "this is not a database\n".repeat(200));
    await assert.rejects(openStore(path), (e: Error) => {
      assert.match(e.message, new RegExp(`^Cannot open run store at ${path}: .*not a database`));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openStore() names the server, not its token, when it cannot be reached", async () => {
  for (const url of ["http://127.0.0.1:59999/db?authToken=secret", "ws://127.0.0.1:59999"]) {
    await assert.rejects(openStore(url, { authToken: "tok" }), (e: Error) => {
      assert.match(e.message, /^Cannot open run store at (http|ws):\/\/127\.0\.0\.1:59999/);
      assert.doesNotMatch(e.message, /secret|Failed query/);
      return true;
    });
  }
});

Deno.test("openStore() names the location when the URL scheme is unknown", async () => {
  await assert.rejects(
    openStore("ftp://example.com/x.db"),
    /^Error: Cannot open run store at ftp:\/\/example.com\/x.db: .*ftp/,
  );
});

/** Start `_writer.ts` in a child Deno process. */
function writer(args: string[], stdout: "piped" | "null"): Deno.ChildProcess {
  const config = fileURLToPath(new URL("../../deno.json", import.meta.url));
  const script = fileURLToPath(new URL("./_writer.ts", import.meta.url));
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", config, script, ...args],
    stdout,
    stderr: "inherit",
  }).spawn();
}

Deno.test("file: two sharded writer processes fill one run without overlap", async () => {
  const fx = await tempFile();
  try {
    const children = ["0/2", "1/2"].map((s) => writer([fx.url, "sharded", s, "40"], "null"));
    const codes = await Promise.all(children.map(async (c) => (await c.status).code));
    assert.deepEqual(codes, [0, 0]);
    const store = await openStore(fx.url);
    try {
      const done = await store.finishedProblemIds("sharded");
      assert.equal(done.size, 40);
      for (const p of await store.listProblems("sharded")) {
        assert.equal(p.shard, shardOf(p.problemId, 2));
      }
      assert.equal(await rows(store, "nodes"), 40 * 300);
      assert.equal((await store.getRun("sharded"))?.shards, 2);
    } finally {
      await store.close();
    }
  } finally {
    await fx.cleanup();
  }
});

/**
 * Read `committed <id>` lines from a writer; `delayMs` after `n` arrived, kill it. Its output
 * is read to the end (closing the pipe early would kill it with a broken pipe instead).
 */
async function killAfter(child: Deno.ChildProcess, n: number, delayMs: number): Promise<string[]> {
  const printed: string[] = [];
  let buffer = "";
  let killing = false;
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) printed.push(line.replace(/^committed /, ""));
    if (printed.length >= n && !killing) {
      killing = true;
      setTimeout(() => child.kill("SIGKILL"), delayMs);
    }
  }
  if (!killing) {
    const { code } = await child.status;
    throw new Error(`The writer exited with code ${code} after ${printed.length} commits`);
  }
  assert.equal((await child.status).signal, "SIGKILL");
  return printed;
}

/** Every stored problem of `runId` is whole: 300 nodes, identical tree, 3 trajectories. */
async function assertWhole(store: LibsqlRunStore, runId: string, done: Set<string>) {
  for (const id of done) {
    const [tree] = await store.getTrees(runId, id);
    assert.equal(tree.nodeCount, 300);
    assert.deepStrictEqual(tree.nodes, makeTree(300, { seed: i(id) }));
    assert.equal((await store.listTrajectories(runId, { problemId: id })).length, 3);
  }
  assert.equal(await rows(store, "problems"), done.size);
  assert.equal(await rows(store, "trees"), done.size);
  assert.equal(await rows(store, "nodes"), 300 * done.size);
  assert.equal(await rows(store, "trajectories"), 3 * done.size);
}

Deno.test("file: killed writers leave only whole problems, and each resume goes on", async () => {
  const fx = await tempFile();
  try {
    const committed = new Set<string>();
    for (const delayMs of [0, 3, 7]) {
      const printed = await killAfter(writer([fx.url, "resume"], "piped"), 4, delayMs);
      assert.ok(printed.every((id) => !committed.has(id)), "a resumed writer redid a problem");
      printed.forEach((id) => committed.add(id));
      const store = await openStore(fx.url);
      try {
        const done = await store.finishedProblemIds("resume");
        for (const id of committed) assert.ok(done.has(id), `${id} was committed but is missing`);
        // Only the problem being written when killed may have committed unprinted.
        assert.ok(
          done.size <= committed.size + 1,
          `${done.size} stored, ${committed.size} printed`,
        );
        done.forEach((id) => committed.add(id));
        await assertWhole(store, "resume", done);
        assert.equal((await store.getRun("resume"))?.status, "running");
      } finally {
        await store.close();
      }
    }
  } finally {
    await fx.cleanup();
  }
});

Deno.test("shardOf() is FNV-1a modulo n: stable across calls and processes", () => {
  assert.equal(shardOf("", 2 ** 32 - 1), 0x811c9dc5);
  assert.equal(shardOf("a", 2 ** 32 - 1), 0xe40c292c);
  assert.equal(shardOf("foobar", 2 ** 32 - 1), 0xbf9cf968);
  assert.equal(shardOf("gsm8k/17", 4), shardOf("gsm8k/17", 4));
  assert.equal(shardOf("anything", 1), 0);
  assert.throws(() => shardOf("a", 0), /'shards' must be a positive integer: got 0/);
});

Deno.test("shardOf() splits 10k ids into roughly equal shards", () => {
  for (const n of [2, 4, 7]) {
    const sizes = new Array(n).fill(0);
    for (let k = 0; k < 10_000; k++) sizes[shardOf(`problem-${k}`, n)]++;
    const expected = 10_000 / n;
    for (const s of sizes) assert.ok(Math.abs(s - expected) < expected * 0.1, `${sizes}`);
  }
});

Deno.test("parseShard() reads i/n and refuses anything else", () => {
  assert.deepEqual(parseShard("0/1"), { index: 0, count: 1 });
  assert.deepEqual(parseShard("3/4"), { index: 3, count: 4 });
  for (const bad of ["3/2", "4/4", "-1/4", "1/0", "a/b", "1", "1/2/3", ""]) {
    assert.throws(() => parseShard(bad), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.equal(e.message, `--shard must be i/n with 0 <= i < n: got '${bad}'`);
      return true;
    });
  }
});

/** True when A and B have the same keys and each is assignable to the other. */
type Same<A, B> = [A, keyof A] extends [B, keyof B]
  ? ([B, keyof B] extends [A, keyof A] ? true : false)
  : false;

Deno.test("the store's TreeNodeData and mcts' TreeNode are the same shape", () => {
  const same: Same<TreeNode, TreeNodeData> = true;
  const node: TreeNode = makeTree(3)[1];
  assert.ok(same && node.id === 1);
});
