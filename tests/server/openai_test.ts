import assert from "node:assert/strict";
import OpenAI from "openai";
import { createApp } from "../../server/mod.ts";
import { loadModels, serve } from "./_helpers.ts";

const TOKEN = "openai-test-token";
const ARBORIST = { k: 2, max_step_tokens: 6, simulations: 3 };

/** Request params with the server's extension fields (the client sends them as they are). */
function ext<T>(params: T, extra: Record<string, unknown>): T {
  return { ...params, ...extra };
}

Deno.test("the official openai client works against the server unchanged", async (t) => {
  const models = await loadModels();
  const s = serve(createApp({ ...models, config: { token: TOKEN } }));
  const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
  try {
    await t.step("models.list gives the policy id", async () => {
      const ids = [];
      for await (const m of client.models.list()) ids.push(m.id);
      assert.deepEqual(ids, ["decoder-fp32"]);
    });

    await t.step("chat.completions.create runs guided reasoning, steps in `arborist`", async () => {
      const r = await client.chat.completions.create(ext({
        model: "decoder-fp32",
        messages: [
          { role: "system", content: "You solve math problems." },
          { role: "user", content: "Tom has 3 apples and buys 4 more. How many?" },
        ],
        max_tokens: 200,
        seed: 3,
      }, { arborist: ARBORIST }));
      assert.equal(r.object, "chat.completion");
      assert.equal(r.model, "decoder-fp32");
      assert.equal(r.choices.length, 1);
      const [c] = r.choices;
      assert.equal(c.message.role, "assistant");
      assert.equal(typeof c.message.content, "string");
      assert.ok(["stop", "length"].includes(c.finish_reason));
      const extra = (r as unknown as { arborist: Record<string, unknown> }).arborist;
      const steps = extra.steps as { text: string; reward: number }[];
      assert.ok(steps.length >= 1);
      assert.equal(c.message.content, steps.map((x) => x.text).join("\n\n"));
      for (const x of steps) assert.ok(x.reward >= 0 && x.reward <= 1);
      assert.equal(extra.strategy, "mcts");
      assert.ok(r.usage!.completion_tokens > 0 && r.usage!.prompt_tokens > 0);
    });

    await t.step("chat with n: 2 gives two choices from two seeds", async () => {
      const r = await client.chat.completions.create(ext({
        model: "decoder-fp32",
        messages: [{ role: "user", content: "2 + 2?" }],
        n: 2,
      }, { arborist: ARBORIST }));
      assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
    });

    await t.step("streamed chat gives chat.completion.chunk deltas that add up", async () => {
      const stream = await client.chat.completions.create(ext({
        model: "decoder-fp32",
        messages: [{ role: "user", content: "What is 5 + 6?" }],
        stream: true,
        seed: 3,
      }, { arborist: ARBORIST }));
      let text = "", role = "", finish: string | null = null, chunks = 0;
      let extra: { steps: { text: string }[] } | undefined;
      for await (const chunk of stream) {
        assert.equal(chunk.object, "chat.completion.chunk");
        chunks++;
        const c = chunk.choices[0];
        if (!c) continue;
        role ||= c.delta.role ?? "";
        text += c.delta.content ?? "";
        finish = c.finish_reason ?? finish;
        extra ??= (chunk as unknown as { arborist?: typeof extra }).arborist;
      }
      assert.equal(role, "assistant");
      assert.ok(chunks >= 3);
      assert.ok(finish === "stop" || finish === "length");
      assert.ok(extra, "the final chunk carries the steps");
      assert.equal(text, extra.steps.map((x) => x.text).join("\n\n"));
    });

    await t.step("completions.create samples with logprobs in the legacy format", async () => {
      const r = await client.completions.create({
        model: "decoder-fp32",
        prompt: "Question: 2 + 2?\nAnswer:",
        max_tokens: 6,
        temperature: 0.7,
        seed: 11,
        n: 2,
        logprobs: 3,
      });
      assert.equal(r.object, "text_completion");
      assert.equal(r.choices.length, 2);
      for (const c of r.choices) {
        const lp = c.logprobs!;
        assert.equal(lp.tokens!.length, lp.token_logprobs!.length);
        assert.ok(lp.tokens!.length >= 1 && lp.tokens!.length <= 6);
        assert.equal(lp.text_offset!.length, lp.tokens!.length);
        assert.equal(lp.text_offset![0], 0);
        for (const [i, top] of lp.top_logprobs!.entries()) {
          assert.ok(Object.keys(top).length >= 3);
          assert.ok(Object.values(top).every((v) => v <= 0));
          const best = Math.max(...Object.values(top));
          assert.ok(lp.token_logprobs![i]! <= best + 1e-6);
        }
      }
      assert.equal(
        r.usage!.completion_tokens,
        r.choices.reduce((s, c) => s + c.logprobs!.tokens!.length, 0),
      );
      const again = await client.completions.create({
        model: "decoder-fp32",
        prompt: "Question: 2 + 2?\nAnswer:",
        max_tokens: 6,
        temperature: 0.7,
        seed: 11,
        n: 2,
      });
      assert.deepEqual(again.choices.map((c) => c.text), r.choices.map((c) => c.text), "seeded");
    });

    await t.step(
      "completions with a stop string: stripped by default, kept on request",
      async () => {
        const base = {
          model: "decoder-fp32",
          prompt: "Question: 2 + 2?\nAnswer:",
          max_tokens: 24,
          temperature: 0,
        };
        const full = (await client.completions.create(base)).choices[0].text;
        const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
        assert.equal(stop.length, 2, `greedy text too short: ${JSON.stringify(full)}`);
        const cut = (await client.completions.create({ ...base, stop: [stop] })).choices[0];
        assert.equal(cut.finish_reason, "stop");
        assert.ok(full.startsWith(cut.text) && !cut.text.endsWith(stop));
        const kept = (await client.completions.create(ext({
          ...base,
          stop: [stop],
        }, { include_stop_str_in_output: true }))).choices[0];
        assert.equal(kept.text, cut.text + stop);
        assert.equal((kept as unknown as { stop_reason: string }).stop_reason, stop);
      },
    );

    await t.step("echo with max_tokens 0 scores a prompt", async () => {
      const r = await client.completions.create({
        model: "decoder-fp32",
        prompt: "He has 7 apples.",
        max_tokens: 0,
        echo: true,
        logprobs: 2,
      });
      const [c] = r.choices;
      assert.equal(c.text, "He has 7 apples.");
      const lp = c.logprobs!;
      assert.equal(lp.token_logprobs![0], null);
      assert.ok(lp.token_logprobs!.slice(1).every((x) => x! <= 0));
      assert.equal(lp.top_logprobs![0], null);
      assert.equal(r.usage!.completion_tokens, 0);
    });

    await t.step("streamed completions end with [DONE]", async () => {
      const stream = await client.completions.create({
        model: "decoder-fp32",
        prompt: "Question: 1 + 1?\nAnswer:",
        max_tokens: 4,
        seed: 1,
        stream: true,
      });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
      assert.ok(text.length > 0);
    });

    await t.step(
      "errors come back as the client's APIError with the server's message",
      async () => {
        const e = await client.chat.completions.create(ext({
          model: "decoder-fp32",
          messages: [{ role: "user", content: "q" }],
        }, { arborist: { simulations: 100000 } })).catch((e) => e);
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, 400);
        assert.match(e.message, /arborist\.simulations: must be <= 512, got 100000/);
        const bad = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "wrong", maxRetries: 0 });
        const e2 = await bad.models.list().catch((e) => e);
        assert.ok(e2 instanceof OpenAI.AuthenticationError, String(e2));
      },
    );
  } finally {
    await s.close();
    await models.close();
  }
});
