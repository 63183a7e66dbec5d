import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

async function run(script: string, args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

// Bad flags of the bench and of the model build are one line and exit 2, before anything runs
// (the build's stages take hours: a typo must not surface after them).
Deno.test("bench and build refuse bad flags with one line and exit 2", async () => {
  const cases: [string, string[], RegExp][] = [
    ["bench/mod.ts", ["--only", "engine"], /^bench: --only must name sections among search, /],
    ["bench/mod.ts", ["--bogus"], /^bench: Unknown option '--bogus'/],
    [
      "models/build/build.ts",
      ["--hrm-data", "x"],
      /^build: --hrm-data must be hnc or hrm: got 'x'/,
    ],
    [
      "models/build/build.ts",
      ["--tree-problems=-1"],
      /^build: --tree-problems must be an integer >= 1/,
    ],
    ["models/build/build.ts", ["--device", "tpu"], /^build: --device must be cpu, cuda or cuda:N/],
  ];
  for (const [script, args, message] of cases) {
    const r = await run(script, args);
    assert.equal(r.code, 2, `${script} ${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});
