/**
 * arborist: the command line. The one place that builds concrete backends and wires them.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { type Dtype, OnnxPolicy } from "./inference/mod.ts";
import { OnnxReward, type RewardConfig } from "./reward/mod.ts";

/** A usage error: printed as one line, exit code 2. */
class UsageError extends Error {
  override name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run(values: Record<string, unknown>): Promise<void>;
}

const COMMON: Options = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
};

const COMMANDS: Record<string, Command> = {
  generate: {
    summary: "sample a continuation of a prompt with an ONNX policy",
    usage:
      "generate --model DIR [--dtype fp32|fp16|q4|q8] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--stop STR]... [--threads N] [--json]",
    options: {
      model: { type: "string" },
      dtype: { type: "string" },
      prompt: { type: "string" },
      "max-new-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      seed: { type: "string" },
      stop: { type: "string", multiple: true },
      threads: { type: "string" },
    },
    run: runGenerate,
  },
  "score-steps": {
    summary: "score each step of a solution with a reward model",
    usage:
      "score-steps --reward DIR [--head H] [--format F] [--step-tag T] [--dtype D] --question TEXT --steps-file FILE [--json]",
    options: {
      reward: { type: "string" },
      head: { type: "string" },
      format: { type: "string" },
      "step-tag": { type: "string" },
      dtype: { type: "string" },
      question: { type: "string" },
      "steps-file": { type: "string" },
      threads: { type: "string" },
    },
    run: runScoreSteps,
  },
  agent: {
    summary: "solve a problem set with reward-guided search (not built yet)",
    usage: "agent [options]",
    options: {},
    run: () => notBuilt("agent", "the search and agent loop (issue 3)"),
  },
  serve: {
    summary: "serve guided reasoning over HTTP (not built yet)",
    usage: "serve [--port P] [--host H]",
    options: { port: { type: "string" }, host: { type: "string" } },
    run: () => notBuilt("serve", "the HTTP API (issue 6)"),
  },
};

function notBuilt(name: string, what: string): Promise<void> {
  throw new Error(`'${name}' is not built yet: it needs ${what}, which is still open`);
}

function helpText(): string {
  const lines = ["arborist: reward-guided reasoning with small ONNX models", "", "Commands:"];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push("", "Run 'deno task <command> --help' for a command's options.");
  return lines.join("\n");
}

/** Parse a numeric flag; undefined when absent. */
function num(
  values: Record<string, unknown>,
  name: string,
  check: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const bad = !Number.isFinite(v) || (check.integer && !Number.isInteger(v)) ||
    (check.min !== undefined && v < check.min) || (check.max !== undefined && v > check.max);
  if (bad) {
    const what = [
      check.integer ? "an integer" : "a number",
      check.min !== undefined ? `>= ${check.min}` : "",
      check.max !== undefined ? `<= ${check.max}` : "",
    ].filter(Boolean).join(" ");
    throw new UsageError(`--${name} must be ${what}: got '${raw}'`);
  }
  return v;
}

function need(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

function dtypeOf(values: Record<string, unknown>): Dtype | undefined {
  const d = values.dtype as string | undefined;
  if (d === undefined) return undefined;
  if (!["fp32", "fp16", "q4", "q8"].includes(d)) {
    throw new UsageError(`--dtype must be one of fp32, fp16, q4, q8: got '${d}'`);
  }
  return d as Dtype;
}

function print(text: string): void {
  console.log(text);
}

async function runGenerate(values: Record<string, unknown>): Promise<void> {
  const model = need(values, "model");
  const prompt = need(values, "prompt");
  const options = {
    maxNewTokens: num(values, "max-new-tokens", { integer: true, min: 1 }) ?? 64,
    temperature: num(values, "temperature", { min: 0 }) ?? 1,
    topP: num(values, "top-p", { min: 0, max: 1 }) ?? 1,
    topK: num(values, "top-k", { integer: true, min: 0 }) ?? 0,
    seed: num(values, "seed", { integer: true }) ?? 0,
    stop: (values.stop as string[] | undefined) ?? [],
  };
  if (options.topP === 0) throw new UsageError("--top-p must be > 0: got '0'");
  const policy = await OnnxPolicy.load(model, {
    dtype: dtypeOf(values),
    threads: num(values, "threads", { integer: true, min: 1 }),
  });
  try {
    const [g] = await policy.generate(prompt, options);
    if (values.json) {
      print(JSON.stringify({
        prompt_ids: policy.tokenizer.encode(prompt),
        ids: g.ids,
        logprobs: g.logprobs,
        text: g.text,
      }));
    } else {
      print(g.text);
    }
  } finally {
    await policy.close();
  }
}

async function runScoreSteps(values: Record<string, unknown>): Promise<void> {
  const dir = need(values, "reward");
  const question = need(values, "question");
  const file = need(values, "steps-file");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new Error(`Cannot read --steps-file ${file}: ${(e as Error).message}`);
  }
  const steps = text.replace(/\r\n/g, "\n").split(/\n[ \t]*\n/).map((s) => s.trim()).filter((
    s,
  ) => s.length > 0);
  const reward = await OnnxReward.load(dir, {
    head: values.head as RewardConfig["head"] | undefined,
    format: values.format as RewardConfig["format"] | undefined,
    step_tag: values["step-tag"] as string | undefined,
    dtype: dtypeOf(values),
    threads: num(values, "threads", { integer: true, min: 1 }),
  });
  try {
    const scores = await reward.scoreSteps(question, steps);
    if (values.json) print(JSON.stringify({ scores }));
    else steps.forEach((s, i) => print(`${scores[i].toFixed(4)}  ${s.split("\n")[0]}`));
  } finally {
    await reward.close();
  }
}

/**
 * Run the CLI.
 *
 * @param args Command-line arguments (the command first).
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    print(helpText());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  try {
    if (!command) {
      throw new UsageError(
        `unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(", ")})`,
      );
    }
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...COMMON, ...command.options },
        strict: true,
        allowPositionals: false,
      });
    } catch (e) {
      throw new UsageError((e as Error).message.split("\n")[0]);
    }
    if (parsed.values.help) {
      print(`usage: deno task ${command.usage}\n\n${command.summary}`);
      return 0;
    }
    await command.run(parsed.values);
    return 0;
  } catch (e) {
    const err = e as Error;
    console.error(`error: ${err.message}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
