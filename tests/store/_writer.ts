/**
 * A worker for the multi-process tests: `_writer.ts <db> <runId> [i/n] [limit]` opens the
 * store and saves problems `p0, p1, ...` (those of shard `i/n`, below `limit`, skipping
 * those already stored: a resume), printing `committed <id>` after each commit; without a
 * limit it runs until killed.
 *
 * @module
 */
import { openStore, parseShard, shardOf } from "../../store/mod.ts";
import { makeResult } from "./_trees.ts";

const [dbPath, runId = "resume", shardArg = "0/1", limitArg] = Deno.args;
const shard = parseShard(shardArg);
const limit = limitArg === undefined ? Infinity : Number(limitArg);
const store = await openStore(dbPath);
await store.getOrCreateRun({
  id: runId,
  strategy: "mcts",
  config: { k: 4 },
  seed: 0,
  policyId: "tiny",
  problemsSource: "synthetic",
  shards: shard.count,
});
const done = await store.finishedProblemIds(runId);
const out = new TextEncoder();
for (let i = 0; i < limit; i++) {
  const id = `p${i}`;
  if (shardOf(id, shard.count) !== shard.index || done.has(id)) continue;
  await store.saveProblemResult(runId, {
    ...makeResult(id, { size: 300, seed: i }),
    shard: shard.index,
  });
  await Deno.stdout.write(out.encode(`committed ${id}\n`));
}
await store.close();
