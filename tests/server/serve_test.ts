import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { POLICY_DIR, post, REWARD_DIR, sseEvents } from "./_helpers.ts";

const ENTRY = fileURLToPath(new URL("./_serve_main.ts", import.meta.url));

/** A `serve` subprocess, its stderr lines as they come. */
function spawn(args: string[], denoFlags: string[] = []) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...denoFlags, "-A", ENTRY, ...args],
    env: { ARBORIST_TOKEN: "" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  const done = (async () => {
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let at;
      while ((at = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, at));
        buf = buf.slice(at + 1);
        waiters.splice(0).forEach((w) => w());
      }
    }
    if (buf) lines.push(buf);
    waiters.splice(0).forEach((w) => w());
  })();
  const waitFor = async (re: RegExp, ms = 60_000): Promise<RegExpExecArray> => {
    const t0 = performance.now();
    for (;;) {
      for (const l of lines) {
        const m = re.exec(l);
        if (m) return m;
      }
      if (performance.now() - t0 > ms) throw new Error(`no ${re} in:\n${lines.join("\n")}`);
      await Promise.race([
        new Promise<void>((r) => waiters.push(r)),
        new Promise((r) => setTimeout(r, 200)),
      ]);
    }
  };
  return { child, lines, waitFor, done };
}

Deno.test("serve runs with --cached-only (no network), answers, and stops gracefully on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arborist-serve-" });
  const p = spawn([
    "--cached-only",
    "--port",
    "0",
    "--policy",
    POLICY_DIR,
    "--reward",
    REWARD_DIR,
    "--db",
    `${dir}/runs.db`,
    "--shutdown-seconds",
    "1",
  ], ["--cached-only"]);
  try {
    const [, url] = await p.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\//);
    await p.waitFor(/ready \(policy decoder-fp32, reward reward-paper-2\)/);
    const h = await fetch(`${url}/health`);
    assert.equal(h.status, 200);
    assert.equal((await h.json()).ready, true);
    const r = await fetch(
      `${url}/v1/reason`,
      post({
        question: "2 + 2?",
        k: 2,
        max_step_tokens: 6,
        budget: { simulations: 2 },
      }),
    );
    assert.equal(r.status, 200);
    assert.ok((await r.json()).steps.length >= 1);
    assert.equal((await fetch(`${url}/v1/runs`)).status, 200, "the --db store is open");

    // A long search is in flight when SIGTERM comes: it gets --shutdown-seconds, then stops.
    const long = await fetch(
      `${url}/v1/reason`,
      post({
        question: "Tom has 3 apples and buys 4 more. How many apples does he have?",
        // short steps: paths stay far inside the fixture's 512-token context, so the search
        // runs its many simulations instead of reaching dead ends early
        k: 8,
        max_step_tokens: 8,
        budget: { simulations: 512 },
        stream: true,
      }),
    );
    const events = sseEvents(long.body!);
    await events.next();
    const t0 = performance.now();
    p.child.kill("SIGTERM");
    await p.waitFor(/stopping; requests in flight get 1 s to finish/);
    const rest = [];
    for await (const e of events) rest.push(e);
    assert.deepEqual(rest.filter((e) => e.event === "error").map((e) => JSON.parse(e.data)), [{
      error: { type: "unavailable", message: "The server is shutting down" },
    }]);
    const status = await p.child.status;
    assert.equal(status.code, 0, p.lines.join("\n"));
    assert.ok(performance.now() - t0 < 15_000);
    await p.done;
    assert.ok(p.lines.some((l) => /arborist: stopped/.test(l)));
  } finally {
    try {
      p.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await p.child.status;
    await p.done;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve refuses to listen off loopback without a token, with a clear message", async () => {
  const p = spawn(["--host", "0.0.0.0", "--port", "0", "--policy", POLICY_DIR]);
  const status = await p.child.status;
  await p.done;
  assert.equal(status.code, 1);
  assert.match(
    p.lines.join("\n"),
    /error: Refusing to listen on 0\.0\.0\.0 without a token: .*Pass --token T or set ARBORIST_TOKEN/,
  );
});
