import assert from "node:assert/strict";
import { RemotePolicy } from "../../inference/mod.ts";
import { createApp, ServedPolicy } from "../../server/mod.ts";
import { policyContract } from "../inference/_policy_contract.ts";
import { POLICY_DIR, serve } from "./_helpers.ts";

const TOKEN = "node-to-node";

// One arborist node as another's remote policy: the project's RemotePolicy against this
// server's /v1/completions passes the same contract as the in-process policy.
policyContract("RemotePolicy over arborist's own /v1/completions", async () => {
  const served = await ServedPolicy.load(POLICY_DIR, { threads: 1 });
  const s = serve(createApp({ policy: served, config: { token: TOKEN } }));
  const policy = await RemotePolicy.connect({ baseUrl: `${s.url}/v1`, apiKey: TOKEN, retries: 0 });
  return {
    policy,
    close: async () => {
      await policy.close();
      await s.close();
      await served.close();
    },
  };
});

Deno.test("RemotePolicy through the server gives what the served policy gives for the same seed", async () => {
  const served = await ServedPolicy.load(POLICY_DIR, { threads: 1 });
  const s = serve(createApp({ policy: served }));
  try {
    const remote = await RemotePolicy.connect({ baseUrl: s.url, retries: 0 });
    assert.equal(remote.id, "decoder-fp32");
    const prompt = "Question: Tom has 3 apples and buys 4 more. How many?\n\n";
    const opts = { n: 3, maxNewTokens: 10, temperature: 0.8, seed: 42, stop: ["\n"] };
    const viaHttp = await remote.generate(prompt, opts);
    assert.deepEqual(viaHttp, await served.generate(prompt, opts));
    const a = await remote.score(prompt, "He has 7 apples.", { topK: 4 });
    const b = await served.score(prompt, "He has 7 apples.", { topK: 4 });
    assert.deepEqual(a.promptIds, b.promptIds);
    assert.deepEqual(a.tokens.map((t) => t.id), b.tokens.map((t) => t.id));
    a.tokens.forEach((t, i) => {
      assert.ok(Math.abs(t.logprob - b.tokens[i].logprob) < 1e-4);
      assert.deepEqual(t.top.map((x) => x.id), b.tokens[i].top.map((x) => x.id));
    });
  } finally {
    await s.close();
    await served.close();
  }
});
