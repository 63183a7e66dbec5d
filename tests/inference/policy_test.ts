import assert from "node:assert/strict";
import { OnnxPolicy, WorkerPolicy } from "../../inference/mod.ts";
import { copyFixture, testdataPath } from "../_helpers.ts";

const DIR = testdataPath("models/decoder-fp32");
const PROMPT = "Question: Tom has 3 apples and buys 4 more. How many?\n\n";

async function withPolicy(fn: (p: OnnxPolicy) => Promise<void>, cacheBytes?: number) {
  const p = await OnnxPolicy.load(DIR, { threads: 1, cacheBytes });
  try {
    await fn(p);
  } finally {
    await p.close();
  }
}

Deno.test("batched siblings from a shared prefix equal one-by-one generation with the same seeds", async () => {
  await withPolicy(async (p) => {
    const opts = { temperature: 1, maxNewTokens: 24, seed: 100 };
    const batched = await p.generate(PROMPT, { ...opts, n: 6 });
    assert.equal(batched.length, 6);
    for (let i = 0; i < 6; i++) {
      p.cache.clear();
      const [single] = await p.generate(PROMPT, { ...opts, n: 1, seed: 100 + i });
      assert.deepEqual(single.ids, batched[i].ids, `child ${i}`);
      assert.equal(single.text, batched[i].text);
      single.logprobs.forEach((lp, j) => assert.ok(Math.abs(lp - batched[i].logprobs[j]) < 1e-4));
    }
    assert.ok(new Set(batched.map((g) => g.ids.join())).size > 1, "siblings should differ");
  });
});

Deno.test("the prompt is computed once for all K children, and a child's expansion runs only its new tokens", async () => {
  await withPolicy(async (p) => {
    const promptLen = p.tokenizer.encode(PROMPT).length;
    const before = p.lm.positionsRun;
    const kids = await p.generate(PROMPT, { n: 5, maxNewTokens: 8, seed: 1 });
    const steps = Math.max(...kids.map((k) => k.ids.length)) - 1;
    const ran = p.lm.positionsRun - before;
    assert.ok(ran <= promptLen + 5 * steps, `ran ${ran} positions for a ${promptLen}-token prompt`);
    // Expand child 0: the prompt and child 0's tokens must not be run again.
    const child = kids.find((k) => k.finishReason === "length")!;
    const mark = p.lm.positionsRun;
    await p.generate(PROMPT + child.text, { n: 1, maxNewTokens: 1, seed: 2 });
    assert.equal(p.lm.positionsRun - mark, 1, "only the child's last sampled token is new");
    // The same prompt again: nothing to run before sampling.
    const mark2 = p.lm.positionsRun;
    await p.generate(PROMPT, { n: 1, maxNewTokens: 1, seed: 3 });
    assert.equal(p.lm.positionsRun - mark2, 0);
  });
});

Deno.test("a tiny cache budget evicts but never changes results", async () => {
  let big: string[] = [];
  await withPolicy(async (p) => {
    big = (await p.generate(PROMPT, { n: 3, maxNewTokens: 10, seed: 9 })).map((g) => g.text);
  });
  await withPolicy(async (p) => {
    const small = (await p.generate(PROMPT, { n: 3, maxNewTokens: 10, seed: 9 })).map((g) =>
      g.text
    );
    assert.deepEqual(small, big);
    assert.ok(p.cache.bytes <= 1024, `cache holds ${p.cache.bytes} bytes`);
  }, 1024);
});

Deno.test("greedy generation is deterministic and logprobs are the raw log-softmax", async () => {
  await withPolicy(async (p) => {
    const [a] = await p.generate(PROMPT, { temperature: 0, maxNewTokens: 12 });
    p.cache.clear();
    const [b] = await p.generate(PROMPT, { temperature: 0, maxNewTokens: 12, seed: 77 });
    assert.deepEqual(a.ids, b.ids);
    const scored = await p.score(PROMPT, p.tokenizer.decode(a.ids));
    // Teacher forcing over the decoded text gives the same tokens back for byte-level BPE.
    assert.deepEqual(scored.tokens.map((t) => t.id), a.ids);
    scored.tokens.forEach((t, i) => {
      assert.ok(Math.abs(t.logprob - a.logprobs[i]) < 1e-4);
      assert.equal(t.top[0].id, t.id, "greedy token is the top-1");
      assert.equal(t.top.length, 20);
    });
  });
});

Deno.test("stop strings end a child and stay in its text; max tokens bounds the rest", async () => {
  await withPolicy(async (p) => {
    const outs = await p.generate(PROMPT, { n: 8, maxNewTokens: 40, seed: 5, stop: ["e"] });
    for (const g of outs) {
      assert.ok(g.ids.length <= 40);
      if (g.finishReason === "stop") {
        assert.ok(g.text.endsWith("e"));
        assert.equal(g.text.indexOf("e"), g.text.length - 1);
      } else if (g.finishReason === "length") {
        assert.equal(g.ids.length, 40);
      }
    }
    assert.ok(outs.some((g) => g.finishReason === "stop"), "some child should hit 'e'");
  });
});

Deno.test("a pre-aborted or mid-run abort rejects the generation", async () => {
  await withPolicy(async (p) => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(() => p.generate(PROMPT, { signal: ac.signal }));
    const ac2 = new AbortController();
    const run = p.generate(PROMPT, { signal: ac2.signal, maxNewTokens: 500, n: 4 });
    setTimeout(() => ac2.abort(), 5);
    await assert.rejects(run);
  });
});

Deno.test("bad generation options are rejected with the field and the value", async () => {
  await withPolicy(async (p) => {
    await assert.rejects(() => p.generate(PROMPT, { n: 0 }), /'n'.*0/);
    await assert.rejects(() => p.generate(PROMPT, { maxNewTokens: -1 }), /'maxNewTokens'.*-1/);
    await assert.rejects(() => p.generate(PROMPT, { topP: 2 }), /'topP'.*2/);
  });
});

Deno.test("the worker policy gives the in-process results without blocking this thread", async () => {
  const w = await WorkerPolicy.load(DIR, { threads: 1 });
  try {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const outs = await w.generate(PROMPT, { n: 4, maxNewTokens: 64, seed: 11 });
    clearInterval(timer);
    await withPolicy(async (p) => {
      const local = await p.generate(PROMPT, { n: 4, maxNewTokens: 64, seed: 11 });
      assert.deepEqual(outs.map((g) => g.ids), local.map((g) => g.ids));
    });
    assert.ok(ticks > 0, "timers ran while the worker generated");
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(() => w.generate(PROMPT, { signal: ac.signal }));
  } finally {
    await w.close();
  }
});

Deno.test("a worker whose model cannot load rejects with the loader's message", async () => {
  await assert.rejects(
    () => WorkerPolicy.load("/nonexistent/dir"),
    /\/nonexistent\/dir is not a directory/,
  );
});

/** A prompt of exactly `n` tokens of the fixture's tokenizer (from repeated text). */
function promptOfTokens(p: OnnxPolicy, n: number): string {
  const ids = p.tokenizer.encode(PROMPT.repeat(Math.ceil(n / 10) + 2));
  const text = p.tokenizer.decode(ids.slice(0, n));
  assert.equal(p.tokenizer.encode(text).length, n, "the prompt has the intended length");
  return text;
}

Deno.test("generation stops at the model's context, and a prompt that fills it is refused", async () => {
  await withPolicy(async (p) => {
    assert.deepEqual(p.context, { tokens: 512, source: "config.json max_position_embeddings" });
    const near = promptOfTokens(p, 505);
    const [g] = await p.generate(near, { maxNewTokens: 40, temperature: 1, seed: 3 });
    assert.ok(g.ids.length <= 7, `${g.ids.length} new tokens after 505 of 512`);
    if (g.finishReason === "length") assert.equal(g.ids.length, 7);
    await assert.rejects(
      () => p.generate(promptOfTokens(p, 512), { maxNewTokens: 4 }),
      (e: Error) =>
        e.name === "ContextLengthError" && e instanceof RangeError &&
        /the prompt is 512 tokens, which fills the model's context of 512 \(config.json max_position_embeddings\)/
          .test(e.message),
    );
    await assert.rejects(
      () => p.generate(promptOfTokens(p, 600), { maxNewTokens: 4 }),
      /the prompt is 600 tokens, more than the model's context of 512/,
    );
    await assert.rejects(
      () => p.score(promptOfTokens(p, 500), promptOfTokens(p, 20)),
      /the prompt and the continuation is 520 tokens, more than the model's context of 512/,
    );
  });
});

Deno.test("a config.json whose context is not a positive integer is an error naming the field", async () => {
  await using copy = await copyFixture("models/decoder-fp32");
  const path = `${copy.dir}/config.json`;
  const config = JSON.parse(await Deno.readTextFile(path));
  await Deno.writeTextFile(path, JSON.stringify({ ...config, max_position_embeddings: "512" }));
  await assert.rejects(
    () => OnnxPolicy.load(copy.dir, { threads: 1 }),
    /config\.json 'max_position_embeddings' must be a positive integer \(the context in tokens\): got "512"/,
  );
});

Deno.test("a context error crosses the worker boundary with its class", async () => {
  const w = await WorkerPolicy.load(DIR, { threads: 1 });
  try {
    const long = PROMPT.repeat(60);
    await assert.rejects(
      () => w.generate(long, { maxNewTokens: 2 }),
      (e: Error) => e.name === "ContextLengthError" && e instanceof RangeError,
    );
  } finally {
    await w.close();
  }
});
