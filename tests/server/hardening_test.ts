import assert from "node:assert/strict";
import { createApp, isLoopback, parseServeFlags } from "../../server/mod.ts";
import { post, ScriptedPolicy, ScriptedReward, serve, sleep, sseEvents } from "./_helpers.ts";

const TOKEN = "s3cret-token";

interface Case {
  name: string;
  path: string;
  init: RequestInit;
  status: number;
  message: RegExp;
}

const big = "x".repeat(20_000);
const auth = { authorization: `Bearer ${TOKEN}` };

const CORPUS: Case[] = [
  {
    name: "broken JSON",
    path: "/v1/reason",
    init: post('{"question": '),
    status: 400,
    message: /not valid JSON/,
  },
  { name: "empty body", path: "/v1/reason", init: post(""), status: 400, message: /body is empty/ },
  {
    name: "invalid UTF-8 bytes",
    path: "/v1/reason",
    init: post(new Uint8Array([0x7b, 0x22, 0x71, 0xc3, 0x28, 0x22, 0x7d])),
    status: 400,
    message: /not valid UTF-8/,
  },
  {
    name: "a JSON array",
    path: "/v1/reason",
    init: post([1, 2]),
    status: 400,
    message: /body: must be an object, got an array/,
  },
  {
    name: "JSON null",
    path: "/v1/reason",
    init: post("null"),
    status: 400,
    message: /body: must be an object, got null/,
  },
  {
    name: "missing question",
    path: "/v1/reason",
    init: post({}),
    status: 400,
    message: /question: is required/,
  },
  {
    name: "question of the wrong type",
    path: "/v1/reason",
    init: post({ question: 42 }),
    status: 400,
    message: /question: must be a string, got the integer 42/,
  },
  {
    name: "blank question",
    path: "/v1/reason",
    init: post({ question: "   " }),
    status: 400,
    message: /question: must not be empty/,
  },
  {
    name: "huge question",
    path: "/v1/reason",
    init: post({ question: big }),
    status: 400,
    message: /question: must have at most 16000 characters, got 20000 characters/,
  },
  {
    name: "unknown strategy",
    path: "/v1/reason",
    init: post({ question: "q", strategy: "dfs" }),
    status: 400,
    message:
      /strategy: must be one of "mcts", "greedy", "best-of-n", "step-greedy", "beam", got "dfs"/,
  },
  {
    name: "huge simulations",
    path: "/v1/reason",
    init: post({ question: "q", budget: { simulations: 100000 } }),
    status: 400,
    message: /^budget\.simulations: must be <= 512, got 100000$/,
  },
  {
    name: "negative simulations",
    path: "/v1/reason",
    init: post({ question: "q", budget: { simulations: -1 } }),
    status: 400,
    message: /budget\.simulations: must be >= 1, got -1/,
  },
  {
    name: "fractional simulations",
    path: "/v1/reason",
    init: post({ question: "q", budget: { simulations: 2.5 } }),
    status: 400,
    message: /budget\.simulations: must be an integer, got the number 2\.5/,
  },
  {
    name: "negative seconds",
    path: "/v1/reason",
    init: post({ question: "q", budget: { seconds: -3 } }),
    status: 400,
    message: /budget\.seconds: must be > 0, got -3/,
  },
  {
    name: "huge max_tokens",
    path: "/v1/reason",
    init: post({ question: "q", budget: { max_tokens: 1e9 } }),
    status: 400,
    message: /budget\.max_tokens: must be <= 8192/,
  },
  {
    name: "huge n",
    path: "/v1/reason",
    init: post({ question: "q", n: 1000 }),
    status: 400,
    message: /^n: must be <= 8, got 1000$/,
  },
  {
    name: "string budget",
    path: "/v1/reason",
    init: post({ question: "q", budget: "lots" }),
    status: 400,
    message: /budget: must be an object, got the string "lots"/,
  },
  {
    name: "unknown field",
    path: "/v1/reason",
    init: post({ question: "q", simulations: 5 }),
    status: 400,
    message: /body: unknown field 'simulations'/,
  },
  {
    name: "stream not a boolean",
    path: "/v1/reason",
    init: post({ question: "q", stream: "yes" }),
    status: 400,
    message: /stream: must be a boolean/,
  },
  {
    name: "rewards without steps",
    path: "/v1/rewards",
    init: post({ question: "q", steps: [] }),
    status: 400,
    message: /steps: must have at least 1 item, got 0 items/,
  },
  {
    name: "rewards with a number step",
    path: "/v1/rewards",
    init: post({ question: "q", steps: [1] }),
    status: 400,
    message: /steps\.0: must be a string/,
  },
  {
    name: "chat without messages",
    path: "/v1/chat/completions",
    init: post({ model: "x", messages: [] }),
    status: 400,
    message: /messages: must have at least 1 item, got 0 items/,
  },
  {
    name: "chat without a user message",
    path: "/v1/chat/completions",
    init: post({ messages: [{ role: "system", content: "hi" }] }),
    status: 400,
    message: /role 'user'/,
  },
  {
    name: "chat with a bad role",
    path: "/v1/chat/completions",
    init: post({ messages: [{ role: "robot", content: "hi" }] }),
    status: 400,
    message: /messages\.0\.role: must be one of/,
  },
  {
    name: "chat with an unknown model",
    path: "/v1/chat/completions",
    init: post({ model: "gpt-9", messages: [{ role: "user", content: "hi" }] }),
    status: 404,
    message: /model: 'gpt-9' does not exist; this server serves 'scripted-policy'/,
  },
  {
    name: "completions with negative max_tokens",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: "a", max_tokens: -5 }),
    status: 400,
    message: /max_tokens: must be >= 0, got -5/,
  },
  {
    name: "completions max_tokens 0 without echo",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: "a", max_tokens: 0 }),
    status: 400,
    message: /max_tokens: must be >= 1 unless echo is true/,
  },
  {
    name: "completions echo on a backend without it",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: "a", max_tokens: 0, echo: true }),
    status: 400,
    message: /echo: not supported/,
  },
  {
    name: "completions with top_p 0",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: "a", top_p: 0 }),
    status: 400,
    message: /top_p: must be > 0, got 0/,
  },
  {
    name: "completions with a prompt object",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: { a: 1 } }),
    status: 400,
    message: /prompt: /,
  },
  {
    name: "runs with a bad limit",
    path: "/v1/runs?limit=-4",
    init: { method: "GET" },
    status: 400,
    message: /limit: must be >= 1, got "-4"/,
  },
  {
    name: "wrong method",
    path: "/v1/reason",
    init: { method: "GET" },
    status: 405,
    message: /^Method GET is not allowed on \/v1\/reason: use POST$/,
  },
  {
    name: "completions without a prompt",
    path: "/v1/completions",
    init: post({ model: "scripted-policy" }),
    status: 400,
    message: /^prompt: is required \(a string, an array of strings or an array of token ids\)$/,
  },
  {
    name: "completions with an empty prompt array",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: [] }),
    status: 400,
    message:
      /^prompt: expected a string, an array of strings or an array of token ids, got an empty array$/,
  },
  {
    name: "completions with a mixed prompt array",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: [1, "a"] }),
    status: 400,
    message: /prompt: expected .*, got an array of integers and strings$/,
  },
  {
    name: "completions with a number stop",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: "a", stop: 5 }),
    status: 400,
    message: /^stop: expected a string or an array of strings, got the integer 5$/,
  },
  {
    name: "chat content parts without a type",
    path: "/v1/chat/completions",
    init: post({ messages: [{ role: "user", content: [{ text: "hi" }] }] }),
    status: 400,
    message:
      /^messages\.0\.content: expected a string or an array of content parts .*, got an array of objects \(messages\.0\.content\.0\.type: is required \(string\)\)$/,
  },
  {
    name: "completions seed past the safe integers (one issue, said once)",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: "a", seed: 1e300 }),
    status: 400,
    message: /^seed: must be <= 9007199254740991, got 1e\+300$/,
  },
  {
    name: "completions temperature that JSON makes infinite",
    path: "/v1/completions",
    init: post('{"model": "scripted-policy", "prompt": "a", "temperature": 1e400}'),
    status: 400,
    message: /^temperature: must be a finite number, got a number too large to represent$/,
  },
  {
    name: "JSON sent as text/plain",
    path: "/v1/reason",
    init: post({ question: "q" }, { "content-type": "text/plain" }),
    status: 415,
    message: /^Content-Type: the body must be JSON \(application\/json\), got 'text\/plain'/,
  },
  {
    name: "JSON sent as a form (curl -d)",
    path: "/v1/completions",
    init: post({ model: "scripted-policy", prompt: "a" }, {
      "content-type": "application/x-www-form-urlencoded",
    }),
    status: 415,
    message: /got 'application\/x-www-form-urlencoded' \(with curl, add -H/,
  },
  {
    name: "runs with a hexadecimal limit",
    path: "/v1/runs?limit=0x10",
    init: { method: "GET" },
    status: 400,
    message: /^limit: must be a plain decimal integer, got "0x10"$/,
  },
  {
    name: "runs with an exponent offset",
    path: "/v1/runs?offset=1e2",
    init: { method: "GET" },
    status: 400,
    message: /^offset: must be a plain decimal integer, got "1e2"$/,
  },
  {
    name: "a GET route asked with DELETE",
    path: "/v1/runs/abc",
    init: { method: "DELETE" },
    status: 405,
    message: /^Method DELETE is not allowed on \/v1\/runs\/abc: use GET or HEAD$/,
  },
  {
    name: "a very long unknown path is cut in the message",
    path: "/v2/" + "p".repeat(5000),
    init: { method: "GET" },
    status: 404,
    message: /^No route GET \/v2\/p{60}… \(5004 characters\)$/,
  },
  {
    name: "unknown route",
    path: "/v2/reason",
    init: post({}),
    status: 404,
    message: /No route POST \/v2\/reason/,
  },
  {
    name: "body over 1 MiB",
    path: "/v1/reason",
    init: post({ question: "x".repeat(1_100_000) }),
    status: 413,
    message: /larger than 1048576 bytes/,
  },
];

Deno.test("every bad request gets a 4xx with a clear JSON message and the server stays up", async () => {
  const app = createApp({
    policy: new ScriptedPolicy(),
    reward: new ScriptedReward(),
    onError: (e) => {
      throw new Error(`unexpected internal error: ${e}`);
    },
  });
  for (const c of CORPUS) {
    const r = await app.request(c.path, c.init);
    const body = await r.json();
    assert.equal(r.status, c.status, `${c.name}: ${JSON.stringify(body)}`);
    assert.match(r.headers.get("content-type")!, /application\/json/, c.name);
    assert.equal(typeof body.error?.type, "string", c.name);
    assert.match(body.error.message, c.message, `${c.name}: ${body.error.message}`);
    assert.doesNotMatch(body.error.message, /at .*\.ts:\d+/, `${c.name}: no stack trace`);
    const h = await app.request("/health");
    assert.equal(h.status, 200, `${c.name}: the server stays up`);
    await h.body?.cancel();
  }
});

Deno.test("a token guards the API: missing or wrong gets 401, health and page stay open", async () => {
  const app = createApp({ policy: new ScriptedPolicy(), config: { token: TOKEN } });
  const none = await app.request("/v1/models");
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), 'Bearer realm="arborist"');
  assert.deepEqual(await none.json(), {
    error: {
      type: "unauthorized",
      message: "The bearer token is missing: send Authorization: Bearer <token>",
    },
  });
  const wrong = await app.request(
    "/v1/reason",
    post({ question: "q" }, { authorization: "Bearer nope" }),
  );
  assert.equal(wrong.status, 401);
  assert.match((await wrong.json()).error.message, /is wrong/);
  const basic = await app.request("/metrics", { headers: { authorization: `Basic ${TOKEN}` } });
  assert.equal(basic.status, 401);
  assert.equal(
    (await basic.json()).error.message,
    "The Authorization header must use the Bearer scheme, got 'Basic': send Authorization: Bearer <token>",
  );
  const bare = await app.request("/metrics", { headers: { authorization: "Bearer " } });
  assert.match((await bare.json()).error.message, /^The bearer token is missing/);
  const ok = await app.request("/v1/models", { headers: auth });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  for (const open of ["/health", "/ready", "/", "/docs", "/openapi.json"]) {
    const r = await app.request(open);
    assert.equal(r.status, 200, open);
    await r.body?.cancel();
  }
});

Deno.test("CORS headers only when configured", async () => {
  const off = createApp({ policy: new ScriptedPolicy() });
  const r1 = await off.request("/health", { headers: { origin: "https://example.org" } });
  assert.equal(r1.headers.get("access-control-allow-origin"), null);
  await r1.body?.cancel();
  const on = createApp({
    policy: new ScriptedPolicy(),
    config: { cors: "https://example.org", token: TOKEN },
  });
  const pre = await on.request("/v1/reason", {
    method: "OPTIONS",
    headers: {
      origin: "https://example.org",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type",
    },
  });
  assert.equal(pre.status, 204, "a preflight needs no token");
  assert.equal(pre.headers.get("access-control-allow-origin"), "https://example.org");
  const r2 = await on.request("/health", { headers: { origin: "https://example.org" } });
  assert.equal(r2.headers.get("access-control-allow-origin"), "https://example.org");
  await r2.body?.cancel();
});

Deno.test("a full queue answers 429 with Retry-After at once", async () => {
  const policy = new ScriptedPolicy(300);
  const app = createApp({
    policy,
    reward: new ScriptedReward(),
    config: { maxConcurrency: 1, maxQueue: 1 },
  });
  const body = { question: "q", k: 1, budget: { simulations: 2 } };
  const first = app.request("/v1/reason", post(body));
  await sleep(20);
  const second = app.request("/v1/reason", post(body)); // waits in the queue
  await sleep(20);
  const t0 = performance.now();
  const third = await app.request("/v1/reason", post(body));
  assert.ok(performance.now() - t0 < 100, "refused at once, not after a wait");
  assert.equal(third.status, 429);
  assert.ok(Number(third.headers.get("retry-after")) >= 1);
  const err = await third.json();
  assert.equal(err.error.type, "rate_limited");
  assert.match(err.error.message, /busy: 1 requests running and 1 waiting/);
  const stream = await app.request("/v1/reason", post({ ...body, stream: true }));
  assert.equal(stream.status, 429, "streams are refused before they start");
  await stream.body?.cancel();
  assert.equal((await first).status, 200);
  assert.equal((await second).status, 200);
  const m = await (await app.request("/metrics")).text();
  assert.match(m, /^arborist_queue_rejected_total 2$/m);
});

Deno.test("a request past its time limit gets 504 and its search stops", async () => {
  const policy = new ScriptedPolicy(400);
  const app = createApp({ policy, reward: new ScriptedReward(), config: { timeoutSeconds: 0.3 } });
  const r = await app.request("/v1/reason", post({ question: "q", budget: { simulations: 50 } }));
  assert.equal(r.status, 504);
  assert.equal((await r.json()).error.type, "timeout");
  const calls = policy.calls;
  await sleep(500);
  assert.equal(policy.calls, calls, "no generation after the timeout");
});

Deno.test("an internal error is a 500 without details; the server reports it to its log", async () => {
  const seen: unknown[] = [];
  const broken = new ScriptedPolicy();
  broken.generate = () => Promise.reject(new Error("secret /path/to/file.ts:12 detail"));
  const app = createApp({
    policy: broken,
    reward: new ScriptedReward(),
    onError: (e) => seen.push(e),
  });
  const r = await app.request("/v1/reason", post({ question: "q" }));
  assert.equal(r.status, 500);
  assert.deepEqual(await r.json(), {
    error: { type: "internal_error", message: "Internal server error" },
  });
  assert.equal(seen.length, 1);
  const s = await app.request("/v1/reason", post({ question: "q", stream: true }));
  const events = [];
  for await (const e of sseEvents(s.body!)) events.push(e);
  assert.deepEqual(events.at(-1), {
    event: "error",
    data: JSON.stringify({
      error: { type: "internal_error", message: "The search failed on the server" },
    }),
  });
  assert.equal((await app.request("/health")).status, 200);
});

Deno.test("a token is required to listen on anything but loopback", () => {
  const env = () => undefined;
  assert.throws(
    () => parseServeFlags({ host: "0.0.0.0", policy: "m" }, env),
    /Refusing to listen on 0\.0\.0\.0 without a token.*--token T or set ARBORIST_TOKEN/,
  );
  assert.equal(parseServeFlags({ host: "0.0.0.0", policy: "m", token: "t" }, env).token, "t");
  const fromEnv = parseServeFlags({ host: "10.1.2.3", policy: "m" }, () => "env-token");
  assert.equal(fromEnv.token, "env-token");
  const local = parseServeFlags({ policy: "m" }, env);
  assert.equal(local.host, "127.0.0.1");
  assert.equal(local.port, 8787);
  assert.equal(local.db, "data/arborist.db");
  assert.equal(local.token, undefined);
  for (const h of ["127.0.0.1", "localhost", "::1", "[::1]", "127.8.9.10"]) {
    assert.ok(isLoopback(h), h);
  }
  for (const h of ["0.0.0.0", "::", "192.168.1.2", "example.org"]) assert.ok(!isLoopback(h), h);
});

Deno.test("serve flags are checked with clear messages", () => {
  const env = () => undefined;
  assert.throws(() => parseServeFlags({}, env, {}), /serve needs --policy DIR\|URL/);
  const bundled = parseServeFlags({}, env, { policy: "/m/policy", reward: "/m/hrm" });
  assert.deepEqual([bundled.policy, bundled.reward], ["/m/policy", "/m/hrm"]);
  const own = parseServeFlags({ policy: "p" }, env, { policy: "/m/policy", reward: "/m/hrm" });
  assert.deepEqual([own.policy, own.reward], ["p", undefined], "no bundled reward with --policy");
  assert.throws(
    () => parseServeFlags({ policy: "m", port: "99999" }, env),
    /--port: must be <= 65535, got "99999"/,
  );
  assert.throws(
    () => parseServeFlags({ policy: "m", "max-queue": "-1" }, env),
    (e) => e instanceof RangeError && /^--max-queue: must be >= 0, got "-1"$/.test(e.message),
    'a RangeError starting with "--": the CLI exits 2',
  );
  assert.throws(
    () => parseServeFlags({ policy: "m", port: "abc", threads: "0" }, env),
    (e) =>
      e instanceof RangeError &&
      e.message ===
        '--port: must be a number, got the string "abc"; --threads: must be >= 1, got "0"',
  );
  assert.throws(
    () => parseServeFlags({ policy: "m", "max-concurrency": "x" }, env),
    /--max-concurrency/,
  );
  assert.throws(
    () => parseServeFlags({ policy: "http://10.0.0.1:8000", "cached-only": true }, env),
    /--cached-only runs without network: --policy must be a local directory/,
  );
  assert.throws(
    () => parseServeFlags({ policy: "m", db: "libsql://db.example", "cached-only": true }, env),
    /--db must be a local file/,
  );
});

Deno.test("real HTTP: the bad-request corpus over a socket leaves the server answering", async () => {
  const app = createApp({
    policy: new ScriptedPolicy(),
    reward: new ScriptedReward(),
    config: { token: TOKEN },
  });
  const s = serve(app);
  try {
    for (const c of CORPUS) {
      const headers = { ...(c.init.headers as Record<string, string>), ...auth };
      const r = await fetch(s.url + c.path, { ...c.init, headers });
      assert.equal(r.status, c.status, c.name);
      assert.match((await r.json()).error.message, c.message, c.name);
    }
    const h = await fetch(s.url + "/health");
    assert.equal(h.status, 200);
    await h.body?.cancel();
  } finally {
    await s.close();
  }
});
