/**
 * The contract every {@linkcode PolicyModel} implementation passes: call
 * {@linkcode policyContract} from a test file with a factory of the implementation.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Generation, PolicyModel } from "../../inference/mod.ts";

/** What a contract factory returns: the policy and how to free it and what it depends on. */
export interface PolicyUnderTest {
  /** The implementation under test. */
  policy: PolicyModel;
  /** Frees the policy and everything behind it (servers, sessions). */
  close: () => Promise<void>;
}

const PROMPT = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\n\n";

/**
 * Register the policy contract as Deno tests named `"<name>: ..."`.
 *
 * @param name Names the implementation in the test names.
 * @param make Creates a fresh policy for one test.
 */
export function policyContract(name: string, make: () => Promise<PolicyUnderTest>): void {
  const test = (what: string, fn: (p: PolicyModel) => Promise<void>) =>
    Deno.test(`${name}: ${what}`, async () => {
      const { policy, close } = await make();
      try {
        await fn(policy);
      } finally {
        await close();
      }
    });

  test("generate() returns n generations", async (p) => {
    const out = await p.generate(PROMPT, { n: 3, maxNewTokens: 6, seed: 1 });
    assert.equal(out.length, 3);
    for (const g of out) {
      assert.equal(typeof g.text, "string");
      assert.ok(["stop", "eos", "length"].includes(g.finishReason), g.finishReason);
      assert.ok(g.logprobs.length >= 1 && g.logprobs.length <= 6);
    }
  });

  test("the same seed gives the same output", async (p) => {
    const opts = { n: 2, maxNewTokens: 8, temperature: 1, seed: 7 };
    assert.deepEqual(await p.generate(PROMPT, opts), await p.generate(PROMPT, opts));
  });

  test("different seeds give different outputs", async (p) => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 5; seed++) {
      const [g] = await p.generate(PROMPT, { maxNewTokens: 8, temperature: 1, seed });
      seen.add(g.text + "|" + g.logprobs.join());
    }
    assert.ok(seen.size > 1, "five seeds gave one output");
    const kids = await p.generate(PROMPT, { n: 4, maxNewTokens: 8, temperature: 1, seed: 11 });
    assert.ok(new Set(kids.map((g) => g.logprobs.join())).size > 1, "siblings should differ");
  });

  test("greedy generation (temperature 0) is deterministic", async (p) => {
    const opts = { n: 2, maxNewTokens: 8, temperature: 0 };
    const a = await p.generate(PROMPT, opts);
    assert.deepEqual(a[0], a[1]);
    assert.deepEqual(await p.generate(PROMPT, { ...opts, seed: 99 }), a);
  });

  test("a stop string ends the text and is kept in it", async (p) => {
    const [full] = await p.generate(PROMPT, { maxNewTokens: 24, temperature: 0 });
    const cut = stopCandidate(full.text);
    assert.ok(cut, `greedy text too short to pick a stop string: ${JSON.stringify(full.text)}`);
    const [g] = await p.generate(PROMPT, { maxNewTokens: 24, temperature: 0, stop: [cut] });
    assert.equal(g.finishReason, "stop");
    assert.ok(g.text.endsWith(cut), `${JSON.stringify(g.text)} should end with ${cut}`);
    assert.ok(full.text.startsWith(g.text), "the stopped text is a prefix of the full one");
    assert.equal(g.text.indexOf(cut), g.text.length - cut.length, "stops at the first match");
  });

  test("maxNewTokens bounds the number of new tokens", async (p) => {
    for (const g of await p.generate(PROMPT, { n: 3, maxNewTokens: 3, seed: 5 })) {
      assert.ok(g.logprobs.length <= 3);
      assert.ok(g.ids.length <= 3);
      if (g.finishReason === "length") assert.equal(g.logprobs.length, 3);
    }
  });

  test("logprobs are <= 0 and one per token id", async (p) => {
    for (const g of await p.generate(PROMPT, { n: 2, maxNewTokens: 8, seed: 3 })) {
      assert.ok(g.logprobs.every((x) => Number.isFinite(x) && x <= 0), String(g.logprobs));
      assert.equal(g.ids.length, g.logprobs.length);
      assert.ok(g.ids.every((id) => Number.isInteger(id) && id >= 0));
    }
  });

  test("score() gives one entry per continuation token with sorted top-k", async (p) => {
    const r = await p.score(PROMPT, "He has 7 apples.", { topK: 5 });
    assert.ok(r.promptIds.length > 0);
    assert.ok(r.tokens.length > 0);
    for (const t of r.tokens) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top.length, 5);
      for (let i = 1; i < t.top.length; i++) assert.ok(t.top[i - 1].logprob >= t.top[i].logprob);
      assert.ok(t.logprob <= t.top[0].logprob + 1e-5);
      const listed = t.top.find((x) => x.id === t.id);
      if (listed) assert.ok(Math.abs(listed.logprob - t.logprob) < 1e-5);
    }
    assert.deepEqual((await p.score(PROMPT, "", { topK: 5 })).tokens, []);
  });

  test("score() agrees with generate() on a greedy continuation", async (p) => {
    const [g] = await p.generate(PROMPT, { maxNewTokens: 8, temperature: 0 });
    const r = await p.score(PROMPT, g.text, { topK: 3 });
    const n = commonPrefix(r.tokens.map((t) => t.id), generatedIds(g));
    assert.ok(n >= 1, "the scored continuation should re-tokenize like the generated one");
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(r.tokens[i].logprob - g.logprobs[i]) < 1e-3, `token ${i}`);
      assert.ok(r.tokens[i].logprob >= r.tokens[i].top[0].logprob - 1e-4, "greedy = top-1");
    }
  });

  test("invalid options are rejected", async (p) => {
    await assert.rejects(p.generate(PROMPT, { n: 0 }), RangeError);
    await assert.rejects(p.generate(PROMPT, { maxNewTokens: 0 }), RangeError);
    await assert.rejects(p.generate(PROMPT, { temperature: -1 }), RangeError);
  });

  test("an aborted signal rejects", async (p) => {
    const ctl = new AbortController();
    ctl.abort();
    await assert.rejects(p.generate(PROMPT, { n: 2, maxNewTokens: 4, signal: ctl.signal }));
    await assert.rejects(p.score(PROMPT, "He has 7.", { signal: ctl.signal }));
  });
}

/** Ids of the generated text: without the EOS, which is not part of the text. */
function generatedIds(g: Generation): number[] {
  return g.finishReason === "eos" ? g.ids.slice(0, -1) : g.ids;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Two characters from the middle of `text` that are not whitespace only, if any. */
function stopCandidate(text: string): string | undefined {
  for (let at = Math.floor(text.length / 2); at + 2 <= text.length; at++) {
    const s = text.slice(at, at + 2);
    if (s.trim().length === 2 && !s.includes("\ufffd")) return s;
  }
  return undefined;
}
