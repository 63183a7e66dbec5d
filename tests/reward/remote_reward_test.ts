import assert from "node:assert/strict";
import { RemoteError } from "../../inference/mod.ts";
import { OnnxReward, paperPrompt, qwenPrmPrompt, RemoteReward } from "../../reward/mod.ts";
import { testdataPath } from "../_helpers.ts";
import { rewardContract } from "./_reward_contract.ts";
import {
  classifierBackend,
  type RewardBackends,
  startRewardServer,
  stepPoolerBackend,
} from "./_reward_server.ts";

const QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?";
const STEPS = ["Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is 7."];

/** A RemoteReward on a loopback server over the model in `dir`. */
async function remoteOver(dir: string, api: "classify" | "pooling") {
  const backend = api === "classify"
    ? await classifierBackend(testdataPath(dir))
    : await stepPoolerBackend(testdataPath(dir), "<extra_0>");
  const backends: RewardBackends = api === "classify"
    ? { classify: backend.fn }
    : { pooling: (t) => backend.fn([t]) };
  const server = startRewardServer(dir, backends);
  const reward = await RemoteReward.connect({ baseUrl: server.url, api, retries: 0 });
  return {
    reward,
    close: async () => {
      await reward.close();
      await server.close();
      await backend.close();
    },
  };
}

rewardContract(
  "RemoteReward /classify over the ONNX paper model",
  () => remoteOver("models/reward-paper-2", "classify"),
);
rewardContract(
  "RemoteReward /pooling over the ONNX Qwen-PRM model",
  () => remoteOver("models/reward-qwen-prm", "pooling"),
);

for (
  const [dir, api] of [
    ["models/reward-paper-2", "classify"],
    ["models/reward-paper-1", "classify"],
    ["models/reward-qwen-prm", "pooling"],
  ] as const
) {
  Deno.test(`RemoteReward /${api} gives the in-process scores of ${dir}`, async () => {
    const remote = await remoteOver(dir, api);
    const local = await OnnxReward.load(testdataPath(dir), { threads: 1 });
    try {
      const a = await remote.reward.scoreSteps(QUESTION, STEPS);
      const b = await local.scoreSteps(QUESTION, STEPS);
      a.forEach((s, i) => assert.ok(Math.abs(s - b[i]) < 1e-5, `step ${i}: ${s} vs ${b[i]}`));
    } finally {
      await local.close();
      await remote.close();
    }
  });
}

// ---- prompts ----

Deno.test("paperPrompt() renders the paper's format exactly", () => {
  assert.equal(
    paperPrompt("Q?", [], "S1"),
    "Question:\nQ?\n\nLet's break it down step by step!\n\nNow, let's focus on the current step:\nS1\n",
  );
  assert.equal(
    paperPrompt("Q?", ["S1", "S2"], "S3"),
    "Question:\nQ?\n\nLet's break it down step by step!\n\nPrevious reasoning:\nS1\n\nS2\n\n" +
      "Now, let's focus on the current step:\nS3",
  );
});

Deno.test("qwenPrmPrompt() puts the step token after every step in ChatML", () => {
  assert.equal(
    qwenPrmPrompt("Q?", ["a", "b"], { systemPrompt: "SYS" }),
    "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n" +
      "<|im_start|>assistant\na<extra_0>b<extra_0><|im_end|>\n",
  );
});

// ---- scripted servers ----

async function withScripted(
  backends: RewardBackends,
  fn: (url: string, bodies: Record<string, unknown>[]) => Promise<void>,
) {
  const server = startRewardServer("prm", backends);
  try {
    await fn(server.url, server.bodies);
  } finally {
    await server.close();
  }
}

Deno.test("RemoteReward /classify sends one paper prompt per step and reads class 1", async () => {
  const classify = (texts: string[]) =>
    Promise.resolve(texts.map((_, i) => [0.9 - i / 10, 0.1 + i / 10]));
  await withScripted({ classify }, async (url, bodies) => {
    const r = new RemoteReward({ baseUrl: url, model: "prm" });
    const scores = await r.scoreSteps(QUESTION, STEPS);
    scores.forEach((s, i) => assert.ok(Math.abs(s - (0.1 + i / 10)) < 1e-12));
    assert.deepEqual(bodies, [{
      model: "prm",
      input: STEPS.map((s, i) => paperPrompt(QUESTION, STEPS.slice(0, i), s)),
    }]);
    assert.deepEqual(await r.scoreSteps(QUESTION, []), []);
    assert.equal(bodies.length, 1, "no request for no steps");
  });
});

Deno.test("RemoteReward clips 1-label outputs and rejects bad probabilities", async () => {
  let reply: number[][] = [];
  const classify = (texts: string[]) => Promise.resolve(texts.map((_, i) => reply[i]));
  await withScripted({ classify }, async (url) => {
    const r = new RemoteReward({ baseUrl: url, model: "prm" });
    reply = [[-0.2], [0.4], [1.3]];
    assert.deepEqual(await r.scoreSteps(QUESTION, STEPS), [0, 0.4, 1]);
    reply = [[0.5, 0.5], [-0.5, 1.5], [0.5, 0.5]];
    await assert.rejects(r.scoreSteps(QUESTION, STEPS), (e: Error) => {
      assert.ok(e instanceof RemoteError);
      assert.match(e.message, /outside \[0, 1\] at data\[1\]\.probs/);
      return true;
    });
    reply = [[0.2, 0.3, 0.5], [1], [1]];
    await assert.rejects(r.scoreSteps(QUESTION, STEPS), /3 classes at data\[0\]\.probs/);
  });
});

Deno.test("RemoteReward rejects a non-number score", async () => {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () =>
      new Response('{"data": [{"index": 0, "probs": [0.5, NaN]}]}', {
        headers: { "content-type": "application/json" },
      }),
  );
  try {
    const r = new RemoteReward({ baseUrl: `http://127.0.0.1:${server.addr.port}`, model: "prm" });
    await assert.rejects(r.scoreSteps(QUESTION, ["one"]), /not JSON/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("RemoteReward /pooling sends the Qwen PRM text and reads one row per step", async () => {
  let rows: number[][] = [];
  await withScripted({ pooling: () => Promise.resolve(rows) }, async (url, bodies) => {
    const r = new RemoteReward({ baseUrl: url, model: "prm", api: "pooling" });
    rows = [[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]];
    assert.deepEqual(await r.scoreSteps(QUESTION, STEPS), [0.8, 0.3, 0.9]);
    assert.deepEqual(bodies, [{ model: "prm", input: qwenPrmPrompt(QUESTION, STEPS) }]);
    rows = Array.from({ length: 40 }, () => [0.5, 0.5]); // one row per token
    await assert.rejects(r.scoreSteps(QUESTION, STEPS), /40 score rows for 3 steps.*step_tag_id/);
  });
});

Deno.test("RemoteReward retries a 503 and names the URL when it gives up", async () => {
  let calls = 0;
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    calls++;
    return new Response("overloaded", { status: 503 });
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  try {
    const r = new RemoteReward({ baseUrl: url, model: "prm", retries: 2, backoffMs: 1 });
    await assert.rejects(r.scoreSteps(QUESTION, ["one"]), (e: Error) => {
      assert.ok(e instanceof RemoteError);
      assert.equal(e.status, 503);
      assert.match(e.message, new RegExp(`POST ${url}/classify failed with HTTP 503.*overloaded`));
      return true;
    });
    assert.equal(calls, 3);
  } finally {
    await server.shutdown();
  }
});

Deno.test("RemoteReward rejects bad options", () => {
  assert.throws(() => new RemoteReward({ baseUrl: "http://h" }), /'model' is missing/);
  assert.throws(
    // @ts-expect-error: not an API
    () => new RemoteReward({ baseUrl: "http://h", model: "m", api: "score" }),
    /api/,
  );
  assert.throws(() => new RemoteReward({ baseUrl: "http://h", model: "m", path: "x" }), /path/);
});
