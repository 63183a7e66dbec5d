import assert from "node:assert/strict";
import { Random } from "../../inference/mod.ts";
import { labelMonteCarlo, type TreeNode } from "../../mcts/mod.ts";
import {
  groupQuota,
  hnc,
  type RewardSample,
  sampleNodesPerDepth,
  treeSamples,
  union,
} from "../../self_train/mod.ts";
import { buildTree, hncTree, scriptedAnnotation, type Spec } from "./_fixtures.ts";

/** A coin that returns the given flips in order (then false), counting its calls. */
function stubCoin(flips: boolean[]): { coin: () => boolean; calls: () => number } {
  let i = 0;
  return { coin: () => flips[i++] ?? false, calls: () => i };
}

/** The parts of a tree HNC changes. */
function shape(nodes: TreeNode[]) {
  return nodes.map((n) => ({
    id: n.id,
    parent: n.parent,
    depth: n.depth,
    text: n.text,
    children: n.children,
    mc: n.mcLabel,
  }));
}

Deno.test("groupQuota() is max(smallest, 10% rounded up), with float slack", () => {
  assert.equal(groupQuota(30, 1), 3); // 0.1 * 30 = 3.0000000000000004 must not round up to 4
  assert.equal(groupQuota(35, 1), 4);
  assert.equal(groupQuota(35, 1, { round: "floor" }), 3);
  assert.equal(groupQuota(15, 1), 2);
  assert.equal(groupQuota(10, 2), 2);
  assert.equal(groupQuota(5, 5), 5);
  assert.equal(groupQuota(30, 10), 10);
});

/** Depth 1: 41 nodes (35 × 0, 1 × 0.5, 5 × 1); depth 2: 7 × 0.5; depth 3: 3 × 1; depth 4: 10 × 0.25 and 30 × 0.75. */
function samplingTree(): TreeNode[] {
  const specs: Spec[] = [[0, -1, ""]];
  const add = (parent: number, mc: number) => {
    specs.push([specs.length, parent, `n${specs.length}`, { mcLabel: mc }]);
    return specs.length - 1;
  };
  const d1 = [
    ...Array.from({ length: 35 }, () => add(0, 0)),
    add(0, 0.5),
    ...Array.from({ length: 5 }, () => add(0, 1)),
  ];
  const d2 = Array.from({ length: 7 }, () => add(d1[35], 0.5));
  const d3 = Array.from({ length: 3 }, () => add(d2[0], 1));
  for (let i = 0; i < 40; i++) add(d3[0], i < 10 ? 0.25 : 0.75);
  return buildTree(specs);
}

Deno.test("sampleNodesPerDepth() takes PAPER.md's per-depth counts exactly", () => {
  const tree = samplingTree();
  const count = (picked: TreeNode[]) => {
    const c: Record<string, number> = {};
    for (const n of picked) c[`${n.depth}:${n.mcLabel}`] = (c[`${n.depth}:${n.mcLabel}`] ?? 0) + 1;
    return c;
  };
  const picked = sampleNodesPerDepth(tree, { seed: 3 });
  // depth 1: three scores, smallest group 1: max(1, ceil(3.5)) = 4 of the 35 zeros,
  // max(1, ceil(0.1)) = 1 of the 0.5, max(1, ceil(0.5)) = 1 of the five 1s.
  // depth 2: one score: up to 5 of 7. depth 3: one score, 3 nodes: all 3.
  // depth 4: smallest group 10: 10 of the 0.25s, max(10, 3) = 10 of the 0.75s.
  assert.deepEqual(count(picked), {
    "1:0": 4,
    "1:0.5": 1,
    "1:1": 1,
    "2:0.5": 5,
    "3:1": 3,
    "4:0.25": 10,
    "4:0.75": 10,
  });
  assert.equal(count(sampleNodesPerDepth(tree, { seed: 3, round: "floor" }))["1:0"], 3);
  assert.equal(new Set(picked.map((n) => n.id)).size, picked.length); // no node twice
  // seeded: same seed, same nodes; another seed, other nodes of the 35 zeros
  const ids = (p: TreeNode[]) => p.map((n) => n.id);
  assert.deepEqual(ids(sampleNodesPerDepth(tree, { seed: 3 })), ids(picked));
  assert.notDeepEqual(ids(sampleNodesPerDepth(tree, { seed: 4 })), ids(picked));
  assert.ok(picked.every((n) => n.id !== 0));
});

Deno.test("sampleNodesPerDepth() refuses a node without a Monte-Carlo label", () => {
  const tree = buildTree([[0, -1, ""], [1, 0, "x"]]);
  assert.throws(() => sampleNodesPerDepth(tree), /node 1 \(depth 1\): it has no Monte-Carlo label/);
});

Deno.test("treeSamples() gives no sample of a node whose branches were all cut ungraded", () => {
  const tree = buildTree([
    [0, -1, ""],
    [1, 0, "s1"],
    [2, 1, "s2a", { correct: true }],
    [3, 1, "s2b"], // a leaf an annotation budget cut: no grade
    [4, 0, "t1"], // likewise
  ]);
  const got = treeSamples(tree, { question: "Q", problemId: "p", seed: 1 });
  assert.deepEqual(got.map((g) => [g.current, g.label]), [["s1", 1], ["s2a", 1]]);
});

Deno.test("treeSamples() gives PRM samples and merged samples with the node's own score", () => {
  const tree = buildTree([
    [0, -1, ""],
    [1, 0, "s1"],
    [2, 1, "s2a", { correct: true }],
    [3, 1, "s2b"],
    [4, 3, "s3", { correct: false }],
  ]);
  const before = structuredClone(tree);
  const got = treeSamples(tree, { question: "Q", merged: true, problemId: "p", seed: 1 });
  assert.deepEqual(tree, before); // the input is not changed
  const s = (
    previous: string[],
    previousLabels: number[],
    current: string,
    label: number,
    kind: RewardSample["kind"],
    node: number,
  ): RewardSample => ({
    question: "Q",
    source: "tree",
    problemId: "p",
    previous,
    previousLabels,
    current,
    label,
    kind,
    meta: { node, depth: previous.length + (kind === "prm" ? 1 : 2) },
  });
  // MC: 4 = 0, 3 = 0, 2 = 1, 1 = 1/2. Every depth has groups of one node: all are sampled.
  assert.deepEqual(got, [
    s([], [], "s1", 0.5, "prm", 1),
    s(["s1"], [0.5], "s2a", 1, "prm", 2),
    s([], [], "s1\n\ns2a", 1, "hrm-merged", 2),
    s(["s1"], [0.5], "s2b", 0, "prm", 3),
    s([], [], "s1\n\ns2b", 0, "hrm-merged", 3),
    s(["s1", "s2b"], [0.5, 0], "s3", 0, "prm", 4),
    s(["s1"], [0.5], "s2b\n\ns3", 0, "hrm-merged", 4),
  ]);
  const prmOnly = treeSamples(tree, { question: "Q", seed: 1 });
  assert.deepEqual(prmOnly.map((x) => x.kind), ["prm", "prm", "prm", "prm"]);
});

Deno.test("hnc() with a coin that always says yes moves the first eligible child of each node", () => {
  const tree = hncTree();
  const before = structuredClone(tree);
  const c = stubCoin([true, true, true, true, true]);
  const { nodes, moved } = hnc(tree, { coin: c.coin });
  assert.deepEqual(tree, before); // a new tree; the input is untouched
  assert.deepEqual(moved, [3, 7]);
  assert.equal(c.calls(), 2); // node 1 (moves 3), node 5 (moves 7); nobody else qualifies
  const expected = structuredClone(shape(before));
  labelMonteCarlo(before);
  // 3 "a1" merged with its parent "a", now under the root at depth 1
  Object.assign(expected[3], { parent: 0, depth: 1, text: "a\n\na1", mc: 1 });
  // 7 "a31" merged with "a3", now under "a" at depth 2
  Object.assign(expected[7], { parent: 1, depth: 2, text: "a3\n\na31", mc: 1 });
  expected[0].children = [1, 2, 10, 11, 3];
  expected[1].children = [4, 5, 6, 7];
  expected[5].children = [8, 12, 13];
  // labels: 5 lost its only right leaf; 1 = (4 ✗, 8 12 13 ✗, 6 ✓, 7 ✓) = 2/6; root still 4/10
  const mc: Record<number, number> = {
    0: 0.4,
    1: 2 / 6,
    2: 0,
    4: 0,
    5: 0,
    6: 1,
    8: 0,
    9: 0,
    10: 1,
    11: 0,
    12: 0,
    13: 0,
  };
  for (const [id, v] of Object.entries(mc)) expected[Number(id)].mc = v;
  assert.deepEqual(shape(nodes), expected);
  assert.ok(Number.isNaN(nodes[3].reward) && Number.isNaN(nodes[7].reward));
  assert.equal(nodes[3].logprob, -2);
  assert.equal(nodes[3].tokens, 4);
});

Deno.test("hnc() moves a child with its whole subtree; a moved node's children never move", () => {
  const c = stubCoin([false, false, true, true, true, true]);
  const { nodes, moved } = hnc(hncTree(), { coin: c.coin });
  assert.deepEqual(moved, [5]);
  // node 1 flipped for 3 (no), 4 (no), 5 (yes). Node 5 has 4 children but was moved: no flip.
  assert.equal(c.calls(), 3);
  const got = shape(nodes);
  assert.deepEqual(got[0].children, [1, 2, 10, 11, 5]);
  assert.deepEqual(got[1].children, [3, 4, 6]);
  assert.deepEqual(got[5], {
    id: 5,
    parent: 0,
    depth: 1,
    text: "a\n\na3",
    children: [7, 8, 12, 13],
    mc: 0.25, // the moved node keeps its score
  });
  for (const id of [7, 8, 12, 13]) {
    assert.equal(got[id].parent, 5);
    assert.equal(got[id].depth, 2);
  }
  assert.equal(got[1].mc, 2 / 3); // the old parent's score changes: 3 ✓, 4 ✗, 6 ✓
  assert.equal(got[0].mc, 0.4);
  assert.deepEqual(got[7].text, "a31");
});

Deno.test("hnc() never moves a child of a node with fewer than 4 children, or of depth 1", () => {
  const c = stubCoin(Array(50).fill(true));
  const tree = buildTree([
    [0, -1, ""],
    [1, 0, "a"],
    [2, 0, "b"],
    [3, 0, "c"],
    [4, 0, "d"],
    [5, 1, "a1"],
    [6, 1, "a2"],
    [7, 1, "a3"],
  ]);
  const r = hnc(tree, { coin: c.coin });
  assert.deepEqual(r.moved, []);
  assert.equal(c.calls(), 0);
});

Deno.test("hnc() with a seed is reproducible and equals a coin drawn from Random(seed)", () => {
  const tree = hncTree();
  for (const seed of [0, 1, 2, 3, 4, 5]) {
    const a = hnc(tree, { seed });
    assert.deepEqual(shape(hnc(tree, { seed }).nodes), shape(a.nodes));
    const rng = new Random(seed);
    const b = hnc(tree, { coin: () => rng.next() < 0.5 });
    assert.deepEqual(b.moved, a.moved);
    assert.deepEqual(shape(b.nodes), shape(a.nodes));
  }
  // some seed moves something, some seed moves nothing at node 1's first flips: not constant
  const movedSets = [0, 1, 2, 3, 4, 5, 6, 7].map((seed) => hnc(tree, { seed }).moved.join(","));
  assert.ok(new Set(movedSets).size > 1, movedSets.join(" | "));
});

Deno.test("HRM data of a tree and its HNC tree: the union drops repeats", async () => {
  const tree = await scriptedAnnotation();
  assert.equal(tree.length, 85);
  const a = treeSamples(tree, { question: "q", merged: true, seed: 1 });
  const compressed = hnc(tree, { seed: 2 });
  assert.ok(compressed.moved.length > 0);
  const b = treeSamples(compressed.nodes, { question: "q", merged: true, seed: 3 });
  const u = union(a, b);
  const key = (s: RewardSample) => JSON.stringify([s.previous, s.current, s.label]);
  assert.equal(new Set(u.map(key)).size, u.length);
  // the scripted tree repeats texts ("a", "b", "a", "b"), so even `a` alone has repeats
  const onlyA = union(a, []);
  assert.ok(onlyA.length < a.length);
  assert.deepEqual(u.slice(0, onlyA.length), onlyA);
  const inA = new Set(onlyA.map(key));
  assert.deepEqual(
    u.slice(onlyA.length).map(key),
    [...new Set(b.map(key))].filter((k) => !inA.has(k)),
  );
  assert.ok(u.length > onlyA.length); // the HNC tree adds samples
});
