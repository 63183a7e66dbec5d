import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { type GenerateOptions, type Generation, loadTokenizer } from "../../inference/mod.ts";
import { createApp } from "../../server/mod.ts";
import { openStore } from "../../store/mod.ts";
import {
  loadModels,
  POLICY_DIR,
  post,
  REWARD_DIR,
  ScriptedPolicy,
  ScriptedReward,
  serve,
  sseEvents,
} from "./_helpers.ts";

const QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?";

/** A policy whose steps are fixed texts; the last one is given at every depth past the list. */
class TextPolicy extends ScriptedPolicy {
  constructor(readonly steps: string[]) {
    super();
  }

  override generate(prompt: string, options: GenerateOptions = {}): Promise<Generation[]> {
    const depth = Math.min(prompt.split("\n\n").length - 1, this.steps.length - 1);
    return Promise.resolve(Array.from({ length: options.n ?? 1 }, () => ({
      text: `${this.steps[depth]}\n\n`,
      ids: [1, 2],
      logprobs: [-0.1, -0.1],
      finishReason: "stop" as const,
    })));
  }
}

const STEPS = ["Tom has 3 apples.", "He buys 4 more: 3 + 4 = 7.", "The answer is 7."];

Deno.test("chat max_tokens is a hard limit on the message, streamed or not", async () => {
  const tokenizer = await loadTokenizer(POLICY_DIR);
  const policy = Object.assign(new TextPolicy(STEPS), { tokenizer });
  const s = serve(createApp({ policy, reward: new ScriptedReward() }));
  try {
    const body = {
      messages: [{ role: "user", content: QUESTION }],
      max_tokens: 5,
      arborist: { k: 2, simulations: 2 },
      seed: 1,
    };
    const r = await (await fetch(`${s.url}/v1/chat/completions`, post(body))).json();
    const [c] = r.choices;
    const ids = tokenizer.encode(c.message.content, { addSpecialTokens: false });
    assert.ok(ids.length <= 5, `${ids.length} tokens: ${JSON.stringify(c.message.content)}`);
    assert.equal(c.finish_reason, "length");
    assert.ok(r.usage.completion_tokens <= 5);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.equal(r.arborist.answer, "7", "arborist reports the whole solution");
    const full = r.arborist.steps.map((x: { text: string }) => x.text).join("\n\n");
    assert.ok(full.startsWith(c.message.content), "the message is the solution's start");

    const st = await fetch(`${s.url}/v1/chat/completions`, post({ ...body, stream: true }));
    let content = "";
    let finish: string | null = null;
    let usage: { completion_tokens: number } | undefined;
    for await (const e of sseEvents(st.body!)) {
      if (e.data === "[DONE]") break;
      const chunk = JSON.parse(e.data);
      usage ??= chunk.usage;
      for (const ch of chunk.choices) {
        content += ch.delta.content ?? "";
        finish = ch.finish_reason ?? finish;
      }
    }
    assert.equal(content, c.message.content, "the same seed gives the same cut message");
    assert.equal(finish, "length");
    assert.equal(usage!.completion_tokens, r.usage.completion_tokens);

    const big = await (await fetch(
      `${s.url}/v1/chat/completions`,
      post({ ...body, max_tokens: 4000 }),
    )).json();
    const text = big.arborist.steps.map((x: { text: string }) => x.text).join("\n\n");
    assert.equal(big.choices[0].message.content, text, "nothing is cut under the limit");
    assert.equal(
      big.usage.completion_tokens,
      tokenizer.encode(text, { addSpecialTokens: false }).length,
    );
  } finally {
    await s.close();
  }
});

Deno.test("completions refuse token ids outside the vocabulary", async () => {
  const models = await loadModels();
  const s = serve(createApp(models));
  try {
    for (const [prompt, bad] of [[[1000, 5], 1000], [[5, 999999999], 999999999]] as const) {
      const r = await fetch(
        `${s.url}/v1/completions`,
        post({ model: "decoder-fp32", prompt, max_tokens: 2 }),
      );
      assert.equal(r.status, 400);
      const at = prompt.indexOf(bad as never);
      assert.equal(
        (await r.json()).error.message,
        `prompt.${at}: token id ${bad} is out of range (vocabulary 357: ids 0 to 356)`,
      );
    }
    const ok = await fetch(
      `${s.url}/v1/completions`,
      post({ model: "decoder-fp32", prompt: [5, 356], max_tokens: 1 }),
    );
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await s.close();
    await models.close();
  }
});

Deno.test("answer is the stated answer as written, or null when none is stated", async () => {
  const cases: [string[], string | null][] = [
    [["12 + 5 = 17.", `Tom has ${"1".repeat(160)}`], null],
    [["12 + 5 = 17.", "The answer is 1,000.50."], "1,000.50"],
    [["So $x = \\boxed{0.50}$."], "0.50"],
  ];
  for (const [steps, answer] of cases) {
    const s = serve(createApp({ policy: new TextPolicy(steps), reward: new ScriptedReward() }));
    try {
      for (const strategy of ["greedy", "best-of-n"]) {
        const r = await (await fetch(
          `${s.url}/v1/reason`,
          post({
            question: "q",
            strategy,
            ...(strategy === "greedy" ? {} : { n: 2 }),
            max_depth: 3,
          }),
        )).json();
        assert.equal(r.answer, answer, `${strategy}: ${r.text}`);
      }
    } finally {
      await s.close();
    }
  }
});

Deno.test("chat with n > 1 splits the time allowance across the choices", async () => {
  // Each generate() takes 30 ms and a full tree needs ~70 expansions: each search runs to its
  // time budget. Four 1 s searches one after the other would pass the 3 s limit.
  const s = serve(createApp({
    policy: new ScriptedPolicy(30),
    reward: new ScriptedReward(),
    config: { timeoutSeconds: 3 },
  }));
  try {
    const t0 = performance.now();
    const r = await fetch(
      `${s.url}/v1/chat/completions`,
      post({
        messages: [{ role: "user", content: "q" }],
        n: 4,
        arborist: { simulations: 512, k: 8, seconds: 1 },
      }),
    );
    const body = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.equal(body.choices.length, 4);
    const seconds = body.choices.map((c: { arborist: { stats: { seconds: number } } }) =>
      c.arborist.stats.seconds
    );
    assert.ok(seconds.every((x: number) => x < 0.6), `each gets a share: ${seconds}`);
    assert.ok(performance.now() - t0 < 2500);
  } finally {
    await s.close();
  }
});

Deno.test("streamed /v1/reason: every score follows the best path it reports, none skipped", async () => {
  const s = serve(createApp({ policy: new ScriptedPolicy(), reward: new ScriptedReward() }));
  try {
    const r = await fetch(
      `${s.url}/v1/reason`,
      post({ question: "q", k: 2, budget: { simulations: 6 }, stream: true }),
    );
    let sawBest = false;
    const counts: number[] = [];
    for await (const e of sseEvents(r.body!)) {
      if (e.event === "best") sawBest = true;
      if (e.event === "score") {
        const d = JSON.parse(e.data);
        assert.ok(sawBest, "a best event comes before the first score");
        assert.equal(typeof d.best_value, "number");
        counts.push(d.simulations);
      }
    }
    assert.deepEqual(counts, counts.map((_, i) => i + 1));
    assert.ok(counts.length >= 2);
  } finally {
    await s.close();
  }
});

Deno.test("run listing: tree offset, raw-only exports, decimal limits, clipped ids, documented", async () => {
  const store = await openStore(":memory:");
  const s = serve(createApp({ policy: new ScriptedPolicy(), store }));
  try {
    await store.createRun({
      id: "r1",
      strategy: "mcts",
      config: {},
      seed: 0,
      policyId: "p",
      problemsSource: "test",
    });
    for (const [i, id] of ["p1", "p2", "p3"].entries()) {
      const nodes = [{
        id: 0,
        parent: -1,
        depth: 0,
        text: "",
        reward: NaN,
        children: [],
        logprob: 0,
        prior: 1,
        visits: 1,
        value: 0,
        terminal: false,
        pruned: false,
        tokens: 0,
      }];
      await store.saveProblemResult("r1", {
        problemId: id,
        index: i,
        question: `${id}?`,
        tokens: 0,
        seconds: 0,
        prediction: "a",
        tree: { kind: "search", seed: 0, nodes },
        trajectories: [],
      });
    }
    const get = async (path: string) => {
      const r = await fetch(s.url + path);
      return { status: r.status, body: await r.json() };
    };
    const all = (await get("/v1/runs/r1/tree")).body.trees.map((t: { problem_id: string }) =>
      t.problem_id
    );
    assert.equal(all.length, 3);
    const page = await get("/v1/runs/r1/tree?limit=1&offset=1");
    assert.deepEqual(page.body.trees.map((t: { problem_id: string }) => t.problem_id), [all[1]]);
    const past = await get("/v1/runs/r1/tree?offset=5");
    assert.deepEqual(past.body.trees, []);

    const trl = await get("/v1/exports/trees?format=trl");
    assert.equal(trl.status, 400);
    assert.match(
      trl.body.error.message,
      /^format: kind 'trees' is exported as stored \("raw" only\), got "trl"/,
    );
    const xml = await get("/v1/exports/trajectories?format=xml");
    assert.equal(xml.status, 400);
    assert.match(
      xml.body.error.message,
      /format: must be one of "raw", "trl", "openrlhf", "paper"/,
    );
    const raw = await fetch(`${s.url}/v1/exports/trees?format=raw`);
    assert.equal(raw.status, 200);
    await raw.body?.cancel();

    for (const q of ["limit=0x10", "limit=1e2", "limit=+5", "limit=%205", "offset=1.0"]) {
      const r = await get(`/v1/runs?${q}`);
      assert.equal(r.status, 400, q);
      assert.match(r.body.error.message, /must be a plain decimal integer/, q);
    }
    assert.equal((await get("/v1/runs?limit=2&offset=0")).status, 200);

    const long = "x".repeat(5000);
    const missing = await get(`/v1/runs/${long}`);
    assert.equal(missing.status, 404);
    assert.ok(missing.body.error.message.length < 200, missing.body.error.message);
    assert.match(missing.body.error.message, /x… \(5000 characters\)'$/);

    const doc = (await get("/openapi.json")).body;
    const tree = doc.paths["/v1/runs/{id}/tree"].get;
    assert.deepEqual(
      tree.parameters.map((p: { name: string }) => p.name),
      ["id", "problem", "limit", "offset"],
    );
    for (const [path, item] of Object.entries(doc.paths) as [string, Record<string, Json>][]) {
      const op = item.get;
      if (!op || !(op.parameters as Json[] | undefined)?.some((p) => p.in === "query")) continue;
      assert.ok((op.responses as Json)["400"], `${path} documents its 400`);
    }
    const reason = doc.paths["/v1/reason"].post.requestBody.content["application/json"].schema;
    assert.match(reason.properties.budget.properties.max_tokens.description, /^Soft search budget/);
    assert.ok(doc.paths["/v1/reason"].post.responses["415"]);
  } finally {
    await s.close();
    await store.close();
  }
});

type Json = Record<string, unknown>;

Deno.test("a JSON body with no content type is accepted; the page's requests stay JSON", async () => {
  const s = serve(createApp({ policy: new ScriptedPolicy(), reward: new ScriptedReward() }));
  try {
    const bytes = new TextEncoder().encode(JSON.stringify({ question: "q", strategy: "greedy" }));
    const r = await fetch(`${s.url}/v1/reason`, { method: "POST", body: bytes });
    assert.equal(r.status, 200);
    await r.body?.cancel();
    const charset = await fetch(
      `${s.url}/v1/reason`,
      post({ question: "q", strategy: "greedy" }, {
        "content-type": "application/json; charset=utf-8",
      }),
    );
    assert.equal(charset.status, 200);
    await charset.body?.cancel();
    const page = await (await fetch(`${s.url}/`)).text();
    assert.match(page, /"content-type": "application\/json"/);
  } finally {
    await s.close();
  }
});

const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const ENTRY = fileURLToPath(new URL("./_serve_main.ts", import.meta.url));

async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    env: { ARBORIST_TOKEN: "" },
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("serve: bad flags exit 2; a taken port names the address and opens no database", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arborist-serve-flags-" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const bad = await run([MAIN, "serve", "--port", "abc", "--db", `${dir}/a.db`]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /error: --port: must be a number, got the string "abc"/);
    const port = (taken.addr as Deno.NetAddr).port;
    const busy = await run([
      ENTRY,
      "--port",
      String(port),
      "--policy",
      POLICY_DIR,
      "--db",
      `${dir}/b.db`,
    ]);
    assert.equal(busy.code, 1);
    assert.match(
      busy.stderr,
      new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no database file was created");
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a second SIGINT stops waiting for requests in flight and exits 130", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arborist-serve-int-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ENTRY,
      ...["--port", "0", "--policy", POLICY_DIR, "--reward", REWARD_DIR],
      ...["--db", `${dir}/r.db`, "--shutdown-seconds", "60"],
    ],
    env: { ARBORIST_TOKEN: "" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const waitFor = async (re: RegExp) => {
    while (!re.test(log)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`no ${re} in:\n${log}`);
      log += value;
    }
    return re.exec(log)!;
  };
  try {
    const [, url] = await waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\//);
    await waitFor(/ready \(policy/);
    const long = await fetch(
      `${url}/v1/reason`,
      post({
        question: QUESTION,
        max_step_tokens: 160,
        budget: { simulations: 512 },
        stream: true,
      }),
    );
    const events = sseEvents(long.body!);
    await events.next();
    child.kill("SIGINT");
    await waitFor(/stopping; requests in flight get 60 s/);
    const t0 = performance.now();
    child.kill("SIGINT");
    for await (const _ of events) { /* the stream ends */ }
    const status = await child.status;
    assert.equal(status.code, 130, log);
    assert.ok(performance.now() - t0 < 10_000, "it did not wait the 60 s");
    await waitFor(/stopped/).catch(() => {});
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await reader.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
