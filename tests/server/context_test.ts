import assert from "node:assert/strict";
import { createApp } from "../../server/mod.ts";
import { loadModels, post, serve } from "./_helpers.ts";

// Real tiny models in their workers (512-token context from config.json), real HTTP: inputs
// longer than a model's context get a 400 naming the length and the limit, not a run past the
// positions the model knows (which also costs memory growing with the square of the length).
Deno.test("inputs longer than the models' context get a 400 with the length and the limit", async () => {
  const models = await loadModels();
  const s = serve(createApp({ policy: models.policy, reward: models.reward }));
  try {
    const long = "Tom gets more: 1 + 1 = 2. ".repeat(120);
    const rw = await fetch(`${s.url}/v1/rewards`, post({ question: "q", steps: [long] }));
    assert.equal(rw.status, 400);
    assert.match((await rw.json()).error.message, /tokens, more than the model's context of 512/);
    const ok = await fetch(`${s.url}/v1/rewards`, post({ question: "q", steps: ["1 + 1 = 2."] }));
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).scores.length, 1);
    const c = await fetch(
      `${s.url}/v1/completions`,
      post({ model: models.policy.id, prompt: long, max_tokens: 4 }),
    );
    assert.equal(c.status, 400);
    assert.match((await c.json()).error.message, /more than the model's context of 512/);
    // A question the policy cannot even start: 400, not an empty answer (reason, stream, chat).
    const question = long;
    for (
      const body of [{ question, strategy: "greedy" }, { question, budget: { simulations: 2 } }]
    ) {
      const r = await fetch(`${s.url}/v1/reason`, post(body));
      assert.equal(r.status, 400, JSON.stringify(body).slice(0, 60));
      assert.match(
        (await r.json()).error.message,
        /the prompt is \d+ tokens, more than the model's context of 512/,
      );
    }
    const chat = await fetch(
      `${s.url}/v1/chat/completions`,
      post({ messages: [{ role: "user", content: long }], arborist: { simulations: 2 } }),
    );
    assert.equal(chat.status, 400);
    assert.match((await chat.json()).error.message, /context of 512/);
  } finally {
    await s.close();
    await models.close();
  }
});
