/**
 * One decode measurement in a process of its own (for comparisons that need a fresh process,
 * such as allocator settings read at startup): the bare loop and the project's generate(),
 * one after the other, greedy after a cached prompt. Prints `{"bare": ms, "project": ms}`
 * (per decode step) on stdout.
 *
 * Usage: `deno run -A bench/_decode_child.ts PROMPT_TOKENS NEW_TOKENS [project-first]`
 *
 * @module
 */
import { OnnxPolicy } from "../inference/mod.ts";
import { BareDecoder } from "./_bare.ts";
import { BENCH_MODEL_DIR, BENCH_MODEL_ONNX } from "./_model.ts";
import { textOfTokens } from "./_text.ts";

async function main(): Promise<void> {
  const [promptTokens, newTokens] = Deno.args.slice(0, 2).map(Number);
  const projectFirst = Deno.args[2] === "project-first";
  const policy = await OnnxPolicy.load(BENCH_MODEL_DIR, { threads: 2 });
  const { layers, kvHeads, headDim } = policy.lm.layout;
  const bare = await BareDecoder.open(BENCH_MODEL_ONNX, { layers, kvHeads, headDim, threads: 2 });
  try {
    const prompt = textOfTokens(policy.tokenizer, promptTokens, { seed: 42 }).text;
    const ids = policy.tokenizer.encode(prompt);
    const steps = newTokens - 1;
    const prefill = await bare.run(ids, 0, null);
    await policy.generate(prompt, { maxNewTokens: 4, temperature: 0 }); // caches the prompt
    await bare.greedy(prefill, ids.length, 3); // warm-up, as the project's run above
    const runBare = async () =>
      (await bare.greedy(prefill, ids.length, steps)).seconds * 1e3 / steps;
    const runProject = async () => {
      const t = performance.now();
      await policy.generate(prompt, { maxNewTokens: newTokens, temperature: 0 });
      return (performance.now() - t) / steps;
    };
    const out: Record<string, number> = {};
    if (projectFirst) out.project = await runProject();
    out.bare = await runBare();
    if (!projectFirst) out.project = await runProject();
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(out) + "\n"));
  } finally {
    await policy.close();
    await bare.close();
  }
}

if (import.meta.main) await main();
