import assert from "node:assert/strict";
import { OnnxPolicy, RemoteError, RemotePolicy } from "../../inference/mod.ts";
import { testdataPath } from "../_helpers.ts";
import { startOpenAiServer } from "./_openai_server.ts";
import { policyContract } from "./_policy_contract.ts";

const DIR = testdataPath("models/decoder-fp32");
const PROMPT = "Question: Tom has 3 apples and buys 4 more. How many?\n\n";

policyContract("RemotePolicy over a loopback vLLM-like server", async () => {
  const local = await OnnxPolicy.load(DIR, { threads: 1 });
  const server = startOpenAiServer(local, { model: "decoder-fp32" });
  const policy = await RemotePolicy.connect({ baseUrl: `${server.url}/v1`, retries: 0 });
  return {
    policy,
    close: async () => {
      await policy.close();
      await server.close();
      await local.close();
    },
  };
});

Deno.test("RemotePolicy gives what the in-process policy gives for the same seed", async () => {
  const local = await OnnxPolicy.load(DIR, { threads: 1 });
  const server = startOpenAiServer(local, { model: "m" });
  try {
    const remote = new RemotePolicy({ baseUrl: server.url, model: "m" });
    const opts = { n: 3, maxNewTokens: 10, temperature: 0.8, seed: 42, stop: ["\n"] };
    const viaHttp = await remote.generate(PROMPT, opts);
    local.cache.clear();
    assert.deepEqual(viaHttp, await local.generate(PROMPT, opts));
    const a = await remote.score(PROMPT, "He has 7 apples.", { topK: 4 });
    const b = await local.score(PROMPT, "He has 7 apples.", { topK: 4 });
    assert.deepEqual(a.promptIds, b.promptIds);
    assert.deepEqual(a.tokens.map((t) => t.id), b.tokens.map((t) => t.id));
    a.tokens.forEach((t, i) => {
      assert.ok(Math.abs(t.logprob - b.tokens[i].logprob) < 1e-4);
      assert.deepEqual(t.top.map((x) => x.id), b.tokens[i].top.map((x) => x.id));
    });
  } finally {
    await server.close();
    await local.close();
  }
});

// ---- scripted servers: the HTTP behaviour without a model ----

type Handler = (
  req: Request,
  body: Record<string, unknown> | undefined,
) => Response | Promise<Response>;

async function withServer(handler: Handler, fn: (url: string) => Promise<void>): Promise<void> {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const body = req.method === "POST" ? await req.json() : undefined;
    return await handler(req, body);
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

function completion(choices: Record<string, unknown>[]): Response {
  return Response.json({ choices: choices.map((c, index) => ({ index, ...c })) });
}

const OK_CHOICE = {
  text: " 7",
  finish_reason: "length",
  stop_reason: null,
  logprobs: {
    tokens: ["token_id:12"],
    token_logprobs: [-0.5],
    top_logprobs: [{ "token_id:12": -0.5 }],
  },
};

Deno.test("RemotePolicy retries 503 twice and succeeds on the third attempt", async () => {
  let calls = 0;
  await withServer(
    () => ++calls <= 2 ? new Response("busy", { status: 503 }) : completion([OK_CHOICE]),
    async (url) => {
      const p = new RemotePolicy({ baseUrl: url, model: "m", backoffMs: 1 });
      const [g] = await p.generate("x", { seed: 1 });
      assert.deepEqual(g, { text: " 7", ids: [12], logprobs: [-0.5], finishReason: "length" });
    },
  );
  assert.equal(calls, 3);
});

Deno.test("RemotePolicy retries 429 after the Retry-After it is given", async () => {
  let calls = 0;
  const handler = () =>
    ++calls === 1
      ? new Response("slow down", { status: 429, headers: { "retry-after": "0" } })
      : completion([OK_CHOICE]);
  await withServer(handler, async (url) => {
    // A backoff of a minute would time the test out: Retry-After: 0 must win.
    const p = new RemotePolicy({ baseUrl: url, model: "m", backoffMs: 60_000 });
    assert.equal((await p.generate("x")).length, 1);
  });
  assert.equal(calls, 2);
});

Deno.test("RemotePolicy does not retry 400 and reports the server's message", async () => {
  let calls = 0;
  const handler = () => {
    calls++;
    const message = "max_tokens must be at least 1, got 0.";
    return Response.json({ object: "error", message, type: "BadRequestError", code: 400 }, {
      status: 400,
    });
  };
  await withServer(handler, async (url) => {
    const p = new RemotePolicy({ baseUrl: url, model: "m", backoffMs: 1 });
    const e = await p.generate("x").catch((e) => e);
    assert.ok(e instanceof RemoteError);
    assert.equal(e.status, 400);
    assert.equal(e.kind, "http");
    assert.match(e.message, /max_tokens must be at least 1, got 0\./);
    assert.match(e.message, new RegExp(`${url}/v1/completions`));
  });
  assert.equal(calls, 1);
});

Deno.test("RemotePolicy gives up after its retries with the last status", async () => {
  let calls = 0;
  await withServer(
    () => (calls++, new Response("x".repeat(2000), { status: 502 })),
    async (url) => {
      const p = new RemotePolicy({ baseUrl: url, model: "m", retries: 2, backoffMs: 1 });
      const e = await p.generate("x").catch((e) => e);
      assert.ok(e instanceof RemoteError);
      assert.equal(e.status, 502);
      assert.equal(e.attempts, 3);
      assert.match(e.message, /after 3 attempts/);
      assert.ok(e.body.length < 600, "the body is truncated");
    },
  );
  assert.equal(calls, 3);
});

/** A server whose completions never answer before the test ends. */
async function withHangingServer(fn: (url: string, calls: () => number) => Promise<void>) {
  let calls = 0;
  const release = Promise.withResolvers<void>();
  await withServer(async () => {
    calls++;
    await release.promise;
    return new Response("late", { status: 503 });
  }, async (url) => {
    try {
      await fn(url, () => calls);
    } finally {
      release.resolve();
    }
  });
}

Deno.test("RemotePolicy times out a hanging server with an error naming the URL", async () => {
  await withHangingServer(async (url, calls) => {
    const p = new RemotePolicy({
      baseUrl: url,
      model: "m",
      timeoutMs: 200,
      retries: 1,
      backoffMs: 1,
    });
    const t0 = performance.now();
    const e = await p.generate("x").catch((e) => e);
    assert.ok(e instanceof RemoteError, String(e));
    assert.equal(e.kind, "timeout");
    assert.match(e.message, new RegExp(`${url}/v1/completions timed out after 200 ms`));
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(calls(), 2, "a timeout is retried");
  });
});

Deno.test("RemotePolicy stops at once when the caller aborts a request in flight", async () => {
  await withHangingServer(async (url, calls) => {
    const p = new RemotePolicy({ baseUrl: url, model: "m", retries: 3, backoffMs: 1 });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new DOMException("stop", "AbortError")), 100);
    const e = await p.generate("x", { n: 3, seed: 1, signal: ctl.signal }).catch((e) => e);
    assert.ok(e instanceof DOMException && e.name === "AbortError", String(e));
    assert.equal(calls(), 3, "one request per child, none retried");
  });
});

Deno.test("RemotePolicy sends one seeded request per child, one request otherwise", async () => {
  const bodies: Record<string, unknown>[] = [];
  const handler: Handler = (_req, body) => {
    bodies.push(body!);
    return completion(Array.from({ length: body!.n as number }, () => OK_CHOICE));
  };
  await withServer(handler, async (url) => {
    const p = new RemotePolicy({ baseUrl: url, model: "m" });
    assert.equal((await p.generate("x", { n: 3, seed: 10, topK: 5 })).length, 3);
    const seeded = bodies.splice(0);
    assert.deepEqual(seeded.map((b) => [b.n, b.seed]).sort(), [[1, 10], [1, 11], [1, 12]]);
    assert.equal(seeded[0].top_k, 5);
    assert.equal(seeded[0].include_stop_str_in_output, true);
    assert.equal(seeded[0].return_tokens_as_token_ids, true);
    assert.equal((await p.generate("x", { n: 3 })).length, 3);
    assert.deepEqual(bodies.splice(0).map((b) => [b.n, b.seed, "top_k" in b]), [[
      3,
      undefined,
      false,
    ]]);
    assert.equal((await p.generate("x", { n: 4, temperature: 0, seed: 3 })).length, 4);
    assert.deepEqual(bodies.map((b) => b.n), [1], "greedy: one request, copied");
  });
});

Deno.test("RemotePolicy maps vLLM's finish_reason and stop_reason", async () => {
  const choices = [
    { text: "a b", finish_reason: "stop", stop_reason: "\n\n" }, // stop string stripped
    { text: "c\n\n", finish_reason: "stop", stop_reason: "\n\n" }, // kept
    { text: "xyz", finish_reason: "stop", stop_reason: null }, // EOS
    { text: "q", finish_reason: "stop", stop_reason: 151643 }, // a stop token id
    { text: "r", finish_reason: "length", stop_reason: null },
    { text: "s END", finish_reason: "stop" }, // a server without stop_reason
  ];
  await withServer(() => completion(choices), async (url) => {
    const p = new RemotePolicy({ baseUrl: url, model: "m" });
    const out = await p.generate("x", { n: 6, stop: ["\n\n", " END"] });
    assert.deepEqual(out.map((g) => [g.text, g.finishReason]), [
      ["a b\n\n", "stop"],
      ["c\n\n", "stop"],
      ["xyz", "eos"],
      ["q", "eos"],
      ["r", "length"],
      ["s END", "stop"],
    ]);
    assert.deepEqual(out[0].ids, [], "no logprobs: no ids");
  });
});

Deno.test("RemotePolicy reads ids from token_id:N and leaves ids empty for token strings", async () => {
  const lp = (tokens: string[]) => ({
    tokens,
    token_logprobs: tokens.map(() => -1),
    top_logprobs: null,
  });
  const choices = [
    { text: "ab", finish_reason: "length", logprobs: lp(["token_id:5", "token_id:6"]) },
    { text: "ab", finish_reason: "length", logprobs: lp(["a", "b"]) },
  ];
  await withServer(() => completion(choices), async (url) => {
    const p = new RemotePolicy({ baseUrl: url, model: "m" });
    const [a, b] = await p.generate("x", { n: 2 });
    assert.deepEqual([a.ids, a.logprobs], [[5, 6], [-1, -1]]);
    assert.deepEqual([b.ids, b.logprobs], [[], [-1, -1]]);
  });
});

Deno.test("RemotePolicy rejects a body that is not a completion, naming the URL", async () => {
  await withServer(() => Response.json({ choices: [{ nope: 1 }] }), async (url) => {
    const p = new RemotePolicy({ baseUrl: url, model: "m" });
    await assert.rejects(p.generate("x"), (e: Error) => {
      assert.ok(e instanceof RemoteError);
      assert.match(e.message, new RegExp(`POST ${url}/v1/completions returned an unexpected body`));
      return true;
    });
  });
});

Deno.test("RemotePolicy.connect takes the first listed model and sends the API key", async () => {
  const seen: (string | null)[] = [];
  const handler: Handler = (req, body) => {
    seen.push(req.headers.get("authorization"));
    if (req.method === "GET") return Response.json({ data: [{ id: "qwen" }, { id: "other" }] });
    assert.equal(body!.model, "qwen");
    return completion([OK_CHOICE]);
  };
  await withServer(handler, async (url) => {
    const p = await RemotePolicy.connect({ baseUrl: `${url}/v1/`, apiKey: "sk-test" });
    assert.equal(p.id, "qwen");
    assert.equal(p.baseUrl, url);
    await p.generate("x");
  });
  assert.deepEqual(seen, ["Bearer sk-test", "Bearer sk-test"]);
});

Deno.test("RemotePolicy rejects bad options", async () => {
  assert.throws(() => new RemotePolicy({ baseUrl: "http://127.0.0.1:1" }), /'model' is missing/);
  assert.throws(() => new RemotePolicy({ baseUrl: "not a url", model: "m" }), /not a URL/);
  assert.throws(() => new RemotePolicy({ baseUrl: "ftp://h", model: "m" }), /http/);
  assert.throws(
    () => new RemotePolicy({ baseUrl: "http://h", model: "m", retries: -1 }),
    /retries/,
  );
  const p = new RemotePolicy({ baseUrl: "http://127.0.0.1:1", model: "m" });
  await assert.rejects(p.generate("x", { n: 1.5 }), /'n' must be an integer >= 1/);
  await assert.rejects(p.generate("x", { topP: 0 }), /'topP'/);
  await assert.rejects(p.score("x", "y", { topK: -1 }), /'topK'/);
});
