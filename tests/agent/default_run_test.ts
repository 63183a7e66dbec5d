import assert from "node:assert/strict";
import { defaultRun, defaultRunTable, missingBundledModels } from "../../agent/mod.ts";
import { testdataPath } from "../_helpers.ts";

Deno.test("defaultRun() names the missing bundled models", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.deepEqual(await missingBundledModels(dir + "/"), ["policy", "orm", "prm", "hrm"]);
    await assert.rejects(
      () => defaultRun({ modelsDir: dir + "/" }),
      /bundled default models are not built yet \(missing .*policy\/model\.onnx/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defaultRun() runs the five configurations on a models directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const link = (from: string, to: string) =>
      Deno.symlink(testdataPath(`models/${from}`), `${dir}/${to}`);
    await link("decoder-fp32", "policy");
    await link("reward-paper-1", "orm");
    await link("reward-paper-2", "prm");
    await link("reward-qwen-prm", "hrm");
    const rows = await defaultRun({
      modelsDir: dir + "/",
      count: 2,
      n: 2,
      mctsK: 3,
      simulations: 2,
      threads: 1,
    });
    assert.deepEqual(rows.map((r) => r.name), [
      "greedy",
      "best-of-2 (ORM)",
      "step-greedy N=2 (PRM)",
      "step-greedy N=2 (HRM)",
      "MCTS k=3 (HRM)",
    ]);
    for (const r of rows) {
      assert.equal(r.problems, 2);
      assert.ok(r.tokens > 0, JSON.stringify(r));
    }
    assert.match(defaultRunTable(rows), /\| MCTS k=3 \(HRM\) \| \d\/2 \|/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
