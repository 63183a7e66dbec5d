import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import type { RewardModel } from "../../reward/mod.ts";
import { openStore } from "../../store/mod.ts";
import { createApp } from "../../server/mod.ts";
import { loadModels, post, serve } from "./_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
/** Where the screenshots go (for a person to look at). */
const SHOTS = Deno.env.get("ARBORIST_SCREENSHOTS") ?? "/tmp";

async function launch() {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error("needs Debian chromium: apt-get install -y chromium");
  }
  return await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}

/**
 * The real reward model, each call held back by `ms`: the tiny test models finish a search
 * faster than a loaded machine schedules the browser, and then every event arrives in one read
 * and the tree is drawn once, with the answer. Pacing spreads the events over a second or more.
 */
function paced(reward: RewardModel, ms: number): RewardModel {
  const wait = () => new Promise((r) => setTimeout(r, ms));
  return {
    id: reward.id,
    scoreSteps: async (q, steps, o) => {
      await wait();
      return reward.scoreSteps(q, steps, o);
    },
    scoreMany: reward.scoreMany && (async (q, solutions, o) => {
      await wait();
      return reward.scoreMany!(q, solutions, o);
    }),
    close: () => reward.close(),
  };
}

Deno.test({
  name: "the page shows the search tree grow live and the final answer (headless Chromium)",
  // Chromium's own pipes and timers outlive the page; the browser is closed in finally.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const models = await loadModels();
    const store = await openStore(":memory:");
    const s = serve(
      createApp({
        policy: models.policy,
        reward: paced(models.reward, 100),
        store,
        config: { token: "page-token" },
      }),
    );
    const browser = await launch();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      const external: string[] = [];
      page.on("request", (r) => {
        if (!r.url().startsWith(s.url)) external.push(r.url());
      });
      await page.goto(s.url + "/");
      await page.fill(
        "#question",
        "Tom has 3 apples and buys 4 more. How many apples does he have?",
      );
      await page.fill("#sims", "10");
      await page.fill("#k", "3");
      await page.fill("#steptok", "12");
      await page.fill("#seed", "0"); // a search that grows for a while (no seed: a random one)
      await page.fill("#token", "page-token");
      // Nodes appear while the search runs, before the answer: the page itself records the most
      // nodes it showed while the result had not come (a poll from here could come too late).
      await page.evaluate(`
        globalThis.liveNodes = 0;
        new MutationObserver(() => {
          if (document.querySelector("#result").dataset.done === "1") return;
          const n = document.querySelectorAll("circle.node").length;
          if (n > globalThis.liveNodes) globalThis.liveNodes = n;
        }).observe(document.body, { childList: true, subtree: true, attributes: true });
      `);
      await page.click("#go");
      await page.waitForFunction(
        'document.querySelector("#result").dataset.done === "1"',
        undefined,
        {
          timeout: 60_000,
        },
      );
      assert.deepEqual(errors, [], errors.join("\n"));
      const live = await page.evaluate("globalThis.liveNodes") as number;
      assert.ok(live >= 4, `${live} nodes were drawn before the result came`);
      const nodes = await page.locator("circle.node").count();
      assert.ok(nodes >= 1 + 3 * 3, `${nodes} nodes drawn`);
      assert.ok(await page.locator("circle.node.best").count() >= 2, "the chosen path is marked");
      assert.ok(await page.locator("path.edge.best").count() >= 1);
      const steps = await page.locator("#steps li").count();
      assert.ok(steps >= 1);
      assert.match(await page.locator("#answer").innerText(), /Answer: |No final answer stated/);
      assert.match(await page.locator("#status").innerText(), /done: \d+ nodes, \d+ tokens/);
      // Clicking a node shows its step.
      await page.locator("circle.node.best").nth(1).click();
      assert.match(await page.locator("#detail").innerText(), /Step 1/);
      await page.screenshot({ path: `${SHOTS}/arborist-page.png`, fullPage: true });
      assert.deepEqual(external, [], "nothing is loaded from elsewhere");

      // A stored run opens from the store.
      await store.createRun({
        id: "stored-1",
        strategy: "mcts",
        config: {},
        seed: 0,
        policyId: "decoder-fp32",
        problemsSource: "test",
      });
      const r = await fetch(
        `${s.url}/v1/reason`,
        post({
          question: "What is 2 + 5?",
          k: 3,
          max_step_tokens: 8,
          budget: { simulations: 6 },
          include_tree: true,
        }, { authorization: "Bearer page-token" }),
      );
      const solved = await r.json();
      await store.saveProblemResult("stored-1", {
        problemId: "p7",
        index: 0,
        question: "What is 2 + 5?",
        tokens: solved.stats.tokens,
        seconds: solved.stats.seconds,
        tree: { kind: "search", seed: 0, nodes: solved.tree },
      });
      await page.click("#loadruns");
      await page.waitForFunction('document.querySelectorAll("#problems option").length === 1');
      await page.click("#opentree");
      await page.waitForFunction(
        `document.querySelectorAll("circle.node").length === ${solved.tree.length}`,
      );
      assert.match(await page.locator("#status").innerText(), /stored run stored-1, problem p7/);
      await page.screenshot({ path: `${SHOTS}/arborist-page-stored.png`, fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await s.close();
      await store.close();
      await models.close();
    }
  },
});
