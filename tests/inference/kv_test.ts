import assert from "node:assert/strict";
import {
  assembleKv,
  type KvBatch,
  kvBytes,
  type KvLayout,
  PrefixCache,
  selectRows,
  sliceRow,
} from "../../inference/mod.ts";

const layout: KvLayout = { layers: 2, kvHeads: 2, headDim: 3, dtype: "float32" };

/** A batch whose element at (layer, kind, b, h, t, d) encodes its own coordinates. */
function labelled(batch: number, length: number): KvBatch {
  const make = (l: number, kind: number) =>
    Float32Array.from({ length: batch * 2 * length * 3 }, (_, i) => {
      const d = i % 3, t = Math.floor(i / 3) % length, h = Math.floor(i / (3 * length)) % 2;
      const b = Math.floor(i / (3 * length * 2));
      return l * 1e5 + kind * 1e4 + b * 1e3 + h * 100 + t * 10 + d;
    });
  return {
    batch,
    length,
    keys: [make(0, 0), make(1, 0)],
    values: [make(0, 1), make(1, 1)],
  };
}

Deno.test("sliceRow then assembleKv rebuilds a row, tiled", () => {
  const kv = labelled(3, 5);
  const a = sliceRow(layout, kv, { row: 2, start: 0, end: 2 });
  const b = sliceRow(layout, kv, { row: 2, start: 2, end: 5 });
  const tiled = assembleKv(layout, [a, b], 2);
  const want = selectRows(layout, kv, [2, 2]);
  assert.equal(tiled.length, 5);
  assert.deepEqual(tiled.keys, want.keys);
  assert.deepEqual(tiled.values, want.values);
});

Deno.test("selectRows keeps rows in the given order", () => {
  const kv = labelled(3, 2);
  const s = selectRows(layout, kv, [2, 0]);
  assert.equal(s.batch, 2);
  assert.equal(s.keys[0][0], 2000); // b=2,h=0,t=0,d=0
  assert.equal(s.keys[1][12], 1e5 + 0 + 0 + 0); // second row = old row 0, layer 1
});

Deno.test("kvBytes counts keys and values of every layer", () => {
  assert.equal(kvBytes(layout, 10, 2), 2 * 2 * 2 * 2 * 10 * 3 * 4);
});

function seg(start: number, length: number) {
  return sliceRow(layout, labelled(1, start + length), { row: 0, start, end: start + length });
}

Deno.test("PrefixCache finds the longest cached prefix by text", () => {
  const c = new PrefixCache(layout);
  const a = c.insert(c.root, { text: "Q: 1+1", ids: [1, 2, 3], segment: seg(0, 3) });
  const b = c.insert(a, { text: "Q: 1+1\n\nA", ids: [1, 2, 3, 4], segment: seg(3, 1) });
  assert.equal(c.lookup("Q: 1+1\n\nA = 2"), b);
  assert.equal(c.lookup("Q: 1+1\n\nB"), a);
  assert.equal(c.lookup("R"), c.root);
  assert.equal(c.assemble(b, 1).length, 4);
});

Deno.test("PrefixCache rejects a segment that does not start at its parent's end", () => {
  const c = new PrefixCache(layout);
  assert.throws(
    () => c.insert(c.root, { text: "x", ids: [1], segment: seg(2, 1) }),
    /expected 0, got 2/,
  );
});

Deno.test("PrefixCache evicts least recently used leaves and keeps chains whole", () => {
  const per = seg(0, 4);
  const bytesPer = 2 * 2 * 2 * 4 * 3 * 4;
  const c = new PrefixCache(layout, { maxBytes: bytesPer * 3 });
  const root = c.insert(c.root, { text: "r", ids: [0, 0, 0, 0], segment: per });
  const kids = ["a", "b", "c"].map((t) =>
    c.insert(root, { text: "r" + t, ids: [0, 0, 0, 0, 0, 0, 0, 0], segment: seg(4, 4) })
  );
  c.lookup("rb"); // b used recently; a is the oldest leaf
  c.evict();
  assert.ok(c.bytes <= bytesPer * 3);
  assert.equal(c.lookup("ra"), root); // a gone
  assert.equal(c.lookup("rb"), kids[1]);
  c.remove(root);
  assert.equal(c.size, 0);
  assert.equal(c.bytes, 0);
});

Deno.test("PrefixCache.removeUnder drops a search's subtrees and keeps shorter ancestors", () => {
  const c = new PrefixCache(layout);
  const q = c.insert(c.root, { text: "Q", ids: [1], segment: seg(0, 1) });
  const a = c.insert(q, { text: "Q a", ids: [1, 2], segment: seg(1, 1) });
  c.insert(a, { text: "Q a b", ids: [1, 2, 3], segment: seg(2, 1) });
  c.insert(q, { text: "Q z", ids: [1, 4], segment: seg(1, 1) });
  assert.equal(c.removeUnder("Q a"), 1);
  assert.equal(c.size, 2);
  assert.equal(c.lookup("Q a b"), q);
  assert.equal(c.lookup("Q z"), c.lookup("Q z!"));
});
