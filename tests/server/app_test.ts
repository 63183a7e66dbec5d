import assert from "node:assert/strict";
import { openStore } from "../../store/mod.ts";
import { createApp } from "../../server/mod.ts";
import { metric, post, ScriptedPolicy, ScriptedReward, sseEvents } from "./_helpers.ts";

function app(config = {}) {
  return createApp({ policy: new ScriptedPolicy(), reward: new ScriptedReward(), config });
}

Deno.test("GET /health answers ok and /ready names the models", async () => {
  const a = app();
  const h = await a.request("/health");
  assert.equal(h.status, 200);
  const body = await h.json();
  assert.equal(body.status, "ok");
  assert.equal(body.ready, true);
  const r = await a.request("/ready");
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), {
    status: "ready",
    policy: "scripted-policy",
    reward: "scripted-reward",
  });
});

Deno.test("/ready is 503 while the models load, /health stays 200, model routes say why", async () => {
  const loading = Promise.withResolvers<ScriptedPolicy>();
  const a = createApp({ policy: loading.promise });
  assert.equal((await a.request("/health")).status, 200);
  const r = await a.request("/ready");
  assert.equal(r.status, 503);
  assert.equal(r.headers.get("retry-after"), "2");
  assert.match((await r.json()).error.message, /still loading/);
  const q = await a.request("/v1/reason", post({ question: "2+2?" }));
  assert.equal(q.status, 503);
  assert.equal((await q.json()).error.type, "unavailable");
  loading.resolve(new ScriptedPolicy());
  await loading.promise;
  await new Promise((r) => setTimeout(r, 0));
  assert.equal((await a.request("/ready")).status, 200);
});

Deno.test("/ready reports models that failed to load", async () => {
  const a = createApp({ policy: Promise.reject(new Error("no model.onnx in /x")) });
  await new Promise((r) => setTimeout(r, 0));
  const r = await a.request("/ready");
  assert.equal(r.status, 503);
  assert.match((await r.json()).error.message, /failed to load: no model.onnx in \/x/);
});

Deno.test("POST /v1/reason returns the answer, its steps with rewards and stats", async () => {
  const r = await app().request("/v1/reason", post({ question: "What is 6 * 7?", k: 3 }));
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.match(body.id, /^rsn-/);
  assert.equal(body.object, "reasoning");
  assert.equal(body.strategy, "mcts");
  assert.equal(body.answer, "42");
  assert.deepEqual(body.steps.map((s: { text: string }) => s.text), [
    "step 1.0",
    "step 2.0",
    "The answer is 42.",
  ]);
  assert.deepEqual(body.steps.map((s: { reward: number }) => s.reward), [0.9, 0.9, 0.9]);
  assert.equal(body.complete, true);
  assert.ok(body.stats.nodes >= 4 && body.stats.tokens > 0 && body.stats.seconds >= 0);
  assert.equal(body.tree, undefined);
  const withTree = await app().request(
    "/v1/reason",
    post({ question: "q", include_tree: true, budget: { simulations: 2 } }),
  );
  assert.ok((await withTree.json()).tree.length >= 3);
});

Deno.test("POST /v1/reason with stream: true sends start, node, pruned, best, score, result", async () => {
  const r = await app().request("/v1/reason", post({ question: "What is 6 * 7?", stream: true }));
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /text\/event-stream/);
  const events = [];
  for await (const e of sseEvents(r.body!)) {
    events.push({ event: e.event, data: JSON.parse(e.data) });
  }
  const kinds = new Set(events.map((e) => e.event));
  for (const k of ["start", "node", "pruned", "best", "score", "result"]) {
    assert.ok(kinds.has(k), k);
  }
  assert.equal(events[0].event, "start");
  assert.equal(events.at(-1)!.event, "result");
  const nodes = events.filter((e) => e.event === "node").map((e) => e.data);
  assert.deepEqual(nodes[0], {
    id: 0,
    parent: -1,
    depth: 0,
    text: "",
    reward: null,
    prior: 1,
    terminal: false,
    pruned: false,
    tokens: 0,
  });
  for (const n of nodes.slice(1)) {
    assert.equal(typeof n.text, "string");
    assert.ok(n.reward >= 0 && n.reward <= 1);
    assert.ok(n.parent >= 0 && n.parent < n.id);
  }
  assert.ok(nodes.some((n) => n.pruned), "the 0.3 siblings are pruned");
  const result = events.at(-1)!.data;
  assert.equal(result.answer, "42");
  const best = events.filter((e) => e.event === "best").at(-1)!.data.path;
  assert.equal(best[0], 0);
  assert.equal(best.length, result.steps.length + 1);
});

Deno.test("greedy works without a reward model; other strategies say they need one", async () => {
  const a = createApp({ policy: new ScriptedPolicy() });
  const ok = await a.request("/v1/reason", post({ question: "q" }));
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).strategy, "greedy");
  const bad = await a.request("/v1/reason", post({ question: "q", strategy: "beam" }));
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /'beam' needs a reward model/);
  const rw = await a.request("/v1/rewards", post({ question: "q", steps: ["a"] }));
  assert.equal(rw.status, 400);
  assert.match((await rw.json()).error.message, /no reward model/);
});

Deno.test("every strategy answers through /v1/reason; a setting it does not read is a 400", async () => {
  const reads: Record<string, object> = {
    mcts: { k: 2 },
    greedy: {},
    "best-of-n": { n: 2 },
    "step-greedy": { n: 2 },
    beam: { n: 2, k: 2 },
  };
  for (const [strategy, settings] of Object.entries(reads)) {
    const r = await app().request("/v1/reason", post({ question: "q", strategy, ...settings }));
    assert.equal(r.status, 200, strategy);
    const body = await r.json();
    assert.equal(body.strategy, strategy);
    assert.ok(body.steps.length >= 1, strategy);
  }
  for (
    const [strategy, extra, message] of [
      [
        "mcts",
        { n: 2 },
        /^n: not read by strategy 'mcts' \(only by best-of-n, step-greedy, beam\)/,
      ],
      ["greedy", { k: 2 }, /^k: not read by strategy 'greedy'/],
      ["greedy", { temperature: 0.5 }, /^temperature: not read by strategy 'greedy'/],
      ["beam", { include_tree: true }, /^include_tree: not read by strategy 'beam'/],
    ] as [string, object, RegExp][]
  ) {
    const r = await app().request("/v1/reason", post({ question: "q", strategy, ...extra }));
    assert.equal(r.status, 400, `${strategy} ${JSON.stringify(extra)}`);
    assert.match((await r.json()).error.message, message);
  }
});

Deno.test("POST /v1/rewards scores every step", async () => {
  const r = await app().request("/v1/rewards", post({ question: "q", steps: ["a.0", "b"] }));
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { model: "scripted-reward", scores: [0.9, 0.3] });
});

Deno.test("GET /v1/models lists the policy in the OpenAI format", async () => {
  const body = await (await app().request("/v1/models")).json();
  assert.equal(body.object, "list");
  assert.equal(body.data[0].id, "scripted-policy");
  assert.equal(body.data[0].object, "model");
});

Deno.test("/metrics counts requests by route and status, with latency histograms and gauges", async () => {
  const a = app();
  await a.request("/health");
  await a.request("/v1/reason", post({ question: "q" }));
  await a.request("/v1/reason", post({ question: "" }));
  await a.request("/no/such/path");
  const r = await a.request("/metrics");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /^text\/plain; version=0.0.4/);
  const text = await r.text();
  const reqs = (route: string, status: number, method = "POST") =>
    metric(
      text,
      `arborist_http_requests_total{route="${route}",method="${method}",status="${status}"}`,
    );
  assert.equal(reqs("/v1/reason", 200), 1);
  assert.equal(reqs("/v1/reason", 400), 1);
  assert.equal(reqs("/health", 200, "GET"), 1);
  assert.equal(reqs("unmatched", 404, "GET"), 1);
  assert.match(
    text,
    /arborist_http_request_duration_seconds_bucket\{route="\/v1\/reason",method="POST",status="200",le="\+Inf"\} 1/,
  );
  assert.ok(metric(text, "arborist_tokens_generated_total") > 0);
  for (
    const g of [
      "arborist_queue_waiting",
      "arborist_kv_cache_bytes",
      "arborist_process_resident_memory_bytes",
    ]
  ) {
    assert.match(text, new RegExp(`^# TYPE ${g} gauge$`, "m"));
  }
  assert.equal(metric(text, 'arborist_searches_total{strategy="mcts",outcome="ok"}'), 1);
});

Deno.test("/openapi.json describes the routes with their request schemas; /docs renders it", async () => {
  const a = app();
  const doc = await (await a.request("/openapi.json")).json();
  assert.equal(doc.openapi, "3.1.0");
  for (
    const p of [
      "/v1/reason",
      "/v1/chat/completions",
      "/v1/completions",
      "/v1/rewards",
      "/v1/models",
      "/v1/runs/{id}/tree",
      "/v1/exports/{kind}",
      "/health",
      "/metrics",
    ]
  ) assert.ok(doc.paths[p], p);
  const reason = doc.paths["/v1/reason"].post.requestBody.content["application/json"].schema;
  assert.deepEqual(reason.required, ["question"]);
  assert.equal(reason.properties.budget.properties.simulations.maximum, 512);
  const docs = await a.request("/docs");
  assert.match(docs.headers.get("content-type")!, /text\/html/);
  const html = await docs.text();
  assert.match(html, /openapi\.json/);
  assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org)/, "no external assets");
});

Deno.test("GET / is a self-contained page", async () => {
  const r = await app().request("/");
  assert.equal(r.status, 200);
  const html = await r.text();
  assert.match(html, /<svg|createElementNS/);
  assert.match(html, /\/v1\/reason/);
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=/, "no external scripts or styles");
  assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org)/, "nothing loaded from elsewhere");
});

Deno.test("runs, trees and exports come from the store", async () => {
  const store = await openStore(":memory:");
  try {
    await store.createRun({
      id: "r1",
      strategy: "mcts",
      config: {},
      seed: 0,
      policyId: "p",
      problemsSource: "test",
    });
    const nodes = [
      { id: 0, parent: -1, depth: 0, text: "", reward: NaN, children: [1, 2] },
      { id: 1, parent: 0, depth: 1, text: "a", reward: 0.8, children: [] },
      { id: 2, parent: 0, depth: 1, text: "b", reward: 0.1, children: [], pruned: true },
    ].map((n) => ({
      logprob: 0,
      prior: 0.5,
      visits: 1,
      value: 0.5,
      terminal: n.id === 1,
      pruned: false,
      tokens: 1,
      ...n,
    }));
    await store.saveProblemResult("r1", {
      problemId: "p1",
      index: 0,
      question: "2+2?",
      tokens: 2,
      seconds: 0.1,
      prediction: "a",
      tree: { kind: "search", seed: 0, nodes },
      trajectories: [{ steps: ["a"], stepRewards: [0.8], score: 0.8, chosen: true, correct: true }],
    });
    const a = createApp({ policy: new ScriptedPolicy(), store });
    const runs = await (await a.request("/v1/runs")).json();
    assert.deepEqual(runs.data.map((r: { id: string }) => r.id), ["r1"]);
    const run = await (await a.request("/v1/runs/r1")).json();
    assert.equal(run.id, "r1");
    assert.equal(run.summary.problems, 1);
    assert.equal(run.problems[0].question, "2+2?");
    const tree = await (await a.request("/v1/runs/r1/tree?problem=p1")).json();
    assert.equal(tree.trees[0].nodes.length, 3);
    assert.equal(tree.trees[0].nodes[0].reward, null, "NaN goes out as null");
    assert.equal(tree.trees[0].nodes[2].pruned, true);
    const all = await (await a.request("/v1/runs/r1/tree")).json();
    assert.equal(all.trees.length, 1);
    const missing = await a.request("/v1/runs/nope");
    assert.equal(missing.status, 404);
    assert.match((await missing.json()).error.message, /No run with id 'nope'/);
    const noTree = await a.request("/v1/runs/r1/tree?problem=zz");
    assert.equal(noTree.status, 404);
    const ex = await a.request("/v1/exports/trajectories?run=r1");
    assert.equal(ex.status, 200);
    assert.match(ex.headers.get("content-type")!, /application\/x-ndjson/);
    const lines = (await ex.text()).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 1);
    assert.deepEqual(lines[0].steps, ["a"]);
    const trees = (await (await a.request("/v1/exports/trees")).text()).trim().split("\n");
    assert.equal(JSON.parse(trees[0]).run_id, "r1");
    const unknown = await a.request("/v1/exports/sft");
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), {
      error: {
        type: "not_found",
        message: "Unknown export kind 'sft': one of trajectories, trees, prm, hrm, hnc, orm",
      },
    });
    const orm = await a.request("/v1/exports/orm?run=r1&format=trl");
    assert.equal(orm.status, 200);
    const [rec] = (await orm.text()).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(rec.prompt, "2+2?");
    const noRun = await a.request("/v1/exports/prm");
    assert.equal(noRun.status, 400);
    assert.match((await noRun.json()).error.message, /run: is required for kind 'prm'/);
    const unlabelled = await a.request("/v1/exports/prm?run=r1");
    assert.equal(unlabelled.status, 400, "a search tree without Monte-Carlo labels");
    assert.equal((await unlabelled.json()).error.type, "invalid_request");
    const badFormat = await a.request("/v1/exports/orm?run=r1&format=csv");
    assert.equal(badFormat.status, 400);
  } finally {
    await store.close();
  }
});

Deno.test("chat applies stop, refuses OpenAI parameters it does not implement, and reports its seed", async () => {
  const a = app();
  const chat = (extra: Record<string, unknown>) =>
    a.request(
      "/v1/chat/completions",
      post({ messages: [{ role: "user", content: "What is 6 * 7?" }], ...extra }),
    );
  const whole = await (await chat({ seed: 3 })).json();
  const content: string = whole.choices[0].message.content;
  assert.match(content, /step 2\.0/);
  assert.equal(whole.choices[0].arborist.seed, 3);
  const cut = await (await chat({ seed: 3, stop: ["2.0", "zzz"] })).json();
  assert.equal(cut.choices[0].message.content, content.slice(0, content.indexOf("2.0")));
  assert.equal(cut.choices[0].finish_reason, "stop");
  for (
    const [extra, name] of [
      [{ frequency_penalty: 0.5 }, "frequency_penalty"],
      [{ logit_bias: { "5": 10 } }, "logit_bias"],
      [{ tools: [{ type: "function", function: { name: "f" } }] }, "tools"],
      [{ response_format: { type: "json_object" } }, "response_format"],
    ] as [Record<string, unknown>, string][]
  ) {
    const r = await chat(extra);
    assert.equal(r.status, 400, name);
    assert.match(
      (await r.json()).error.message,
      new RegExp(`^${name}: not supported by this server`),
    );
  }
  // Neutral values are accepted, as OpenAI clients send them.
  const neutral = await chat({
    frequency_penalty: 0,
    presence_penalty: 0,
    top_p: 1,
    logit_bias: {},
  });
  assert.equal(neutral.status, 200);
  // Without a seed each request draws one, and says which.
  const seeds = await Promise.all(
    [1, 2, 3].map(async () => (await (await chat({})).json()).arborist.seed),
  );
  assert.ok(seeds.every(Number.isInteger));
  assert.ok(new Set(seeds).size > 1, `seeds ${seeds}`);
  const r = await a.request(
    "/v1/completions",
    post({ model: "scripted-policy", prompt: "x", suffix: "y" }),
  );
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /^suffix: not supported/);
});

Deno.test("exports drop repeated lines as the CLI does; unknown query parameters are 400", async () => {
  const { populate } = await import("../self_train/_store.ts");
  const { exportCommand } = await import("../../self_train/mod.ts");
  const dir = await Deno.makeTempDir();
  try {
    const db = `${dir}/runs.db`;
    const store = await openStore(db);
    try {
      await populate(store);
      const a = createApp({ policy: new ScriptedPolicy(), store });
      for (const kind of ["prm", "hrm", "hnc"]) {
        const r = await a.request(`/v1/exports/${kind}?run=r1&format=trl`);
        assert.equal(r.status, 200);
        const lines = (await r.text()).trim().split("\n");
        assert.equal(new Set(lines).size, lines.length, `${kind}: no line twice`);
        const quiet = { print: () => {}, warn: () => {}, progressTo: () => {} };
        await exportCommand(
          { run: "r1", db, kind, format: "trl", out: `${dir}/${kind}` },
          quiet,
        );
        const file = (await Deno.readTextFile(`${dir}/${kind}/data.jsonl`)).trim().split("\n");
        assert.deepEqual(lines, file, `${kind}: the same lines as deno task export`);
      }
      for (const url of ["/v1/exports/orm?run=r1&fromat=trl", "/v1/runs?limt=1"]) {
        const r = await a.request(url);
        assert.equal(r.status, 400, url);
        assert.match((await r.json()).error.message, /fromat|limt/);
      }
    } finally {
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat with the greedy strategy still takes temperature (OpenAI clients send it)", async () => {
  const r = await app().request(
    "/v1/chat/completions",
    post({
      messages: [{ role: "user", content: "q" }],
      temperature: 0.7,
      arborist: { strategy: "greedy" },
    }),
  );
  assert.equal(r.status, 200);
});
