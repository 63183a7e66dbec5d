// deno-lint-ignore-file no-console -- a build script reports on stdout
/**
 * Training data of the tiny policy: synthetic problems with solutions that carry natural
 * mistakes and, sometimes, next-step corrections. Writes JSONL `{prompt, completion}` lines.
 *
 * Usage: deno run -A models/build/make_data.ts --out FILE [--n 200000] [--seed 7]
 *   [--mistake-rate 0.06] [--correction-rate 0.5] [--eval-out FILE --eval-n 256]
 *
 * `--eval-out` also writes correct solutions of other held-out problems (seed 999: neither
 * training data nor the bundled evaluation set, seed 1000), which the trainer scores by teacher
 * forcing while it trains.
 *
 * Problems of held-out evaluation use other seeds (the embedded eval set uses seed 1000+).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateProblems, plainPrompt, writeSolution } from "../../agent/mod.ts";
import { Random } from "../../inference/mod.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    n: { type: "string", default: "200000" },
    seed: { type: "string", default: "7" },
    "mistake-rate": { type: "string", default: "0.06" },
    "correction-rate": { type: "string", default: "0.5" },
    "eval-out": { type: "string" },
    "eval-n": { type: "string", default: "256" },
  },
});
if (!values.out) throw new Error("--out FILE is required");
const n = Number(values.n), seed = Number(values.seed);
const rng = new Random(seed + 17);
const lines: string[] = [];
let correct = 0, corrected = 0;
for (const p of generateProblems(n, { seed })) {
  const w = writeSolution(p, {
    mistakeRate: Number(values["mistake-rate"]),
    correctionRate: Number(values["correction-rate"]),
    rng,
  });
  if (w.correct) correct++;
  if (w.corrected) corrected++;
  lines.push(JSON.stringify({ prompt: plainPrompt(p.question), completion: w.steps.join("\n\n") }));
}
const tmp = `${values.out}.tmp`;
await Deno.writeTextFile(tmp, lines.join("\n") + "\n");
await Deno.rename(tmp, values.out);
if (values["eval-out"]) {
  const held = generateProblems(Number(values["eval-n"]), { seed: 999 }).map((p) =>
    JSON.stringify({ prompt: plainPrompt(p.question), completion: p.solution })
  );
  await Deno.writeTextFile(values["eval-out"], held.join("\n") + "\n");
}
console.log(JSON.stringify({ out: values.out, problems: n, correct, corrected }));
