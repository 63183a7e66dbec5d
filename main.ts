// deno-lint-ignore-file no-console -- the CLI entry prints by design
/**
 * arborist: the command line. The one place that builds concrete backends and wires them.
 *
 * @module
 */
import { relative, resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  AGENT_STRATEGIES,
  type AgentModels,
  type AgentStrategy,
  ANNOTATE_FULL_DEPTH,
  ANNOTATE_K,
  BUNDLED_MAX_STEP_TOKENS,
  BUNDLED_MODELS,
  BUNDLED_SEED,
  DEFAULT_MAX_STEP_TOKENS,
  defaultRun,
  defaultRunTable,
  diagnoseProblemFile,
  evalRows,
  type EvalStrategy,
  evalSvg,
  evalTable,
  evaluate,
  generateProblems,
  gradeKindFor,
  gradeSolution,
  loadProblems,
  MAX_DEPTH,
  missingBundledModels,
  openPolicy,
  openReward,
  parseSyntheticSpec,
  type Problem,
  ProblemError,
  type ProblemFormat,
  type ProblemHits,
  runAgent,
  type RunReport,
  type Scorer,
  STRATEGY_SETTINGS,
} from "./agent/mod.ts";
import { type Dtype, fileSha256, OnnxPolicy, weightsDigest } from "./inference/mod.ts";
import {
  type Aggregation,
  AGGREGATIONS,
  OnnxReward,
  REWARD_HEADS,
  REWARD_INPUT_FORMATS,
} from "./reward/mod.ts";
import {
  EVAL_PROCESSBENCH_OPTIONS,
  EVAL_PROCESSBENCH_USAGE,
  evalProcessBenchCommand,
  EXPORT_OPTIONS,
  EXPORT_USAGE,
  exportCommand,
  numberFlag,
} from "./self_train/mod.ts";
import { CHOOSE_RULES, type ChooseRule, DEFAULT_TEMPERATURE } from "./mcts/mod.ts";
import { SERVE_OPTIONS, SERVE_USAGE, serveCommand } from "./server/mod.ts";
import { openStore, parseShard } from "./store/mod.ts";

/** A usage error: printed as one line, exit code 2. */
class UsageError extends Error {
  override name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** One CLI command. */
export interface Command {
  summary: string;
  usage: string;
  options: Options;
  /** Run the command; a number is the exit code (none: 0). */
  run(values: Record<string, unknown>): Promise<void | number>;
}

const COMMON: Options = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
};

/** The CLI's commands: usage line, flags, and what each runs (exported for the help test). */
export const COMMANDS: Record<string, Command> = {
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
      "score-steps --reward DIR [--head token-classification|lm-tokens|sequence-classification] [--format qwen-prm|math-shepherd|paper] [--step-tag T] [--label-tokens +,-] [--step-token T] [--system-prompt TEXT] [--dtype D] --question TEXT --steps-file FILE [--threads N] [--json]",
    options: {
      reward: { type: "string" },
      head: { type: "string" },
      format: { type: "string" },
      "step-tag": { type: "string" },
      "step-token": { type: "string" },
      "label-tokens": { type: "string" },
      "system-prompt": { type: "string" },
      dtype: { type: "string" },
      question: { type: "string" },
      "steps-file": { type: "string" },
      threads: { type: "string" },
    },
    run: runScoreSteps,
  },
  agent: {
    summary: "solve a problem set with reward-guided search, store every tree, grade the answers",
    usage:
      "agent [--problems FILE|synthetic:N] [--format gsm8k|math|processbench|prm800k|auto] [--strategy mcts|greedy|best-of-n|step-greedy|beam|annotate] [--n N] [--k K] [--c-puct C] [--choose step|mean|visits|reward] [--max-depth D] [--full-depth D] [--simulations S] [--max-tokens T] [--seconds S] [--aggregation min|last|product|mean] [--temperature T] [--max-step-tokens T] [--limit N] [--strict] [--policy DIR|URL] [--reward DIR|URL] [--orm DIR|URL] [--head H] [--format-reward F] [--db URL] [--auth-token T] [--run-id ID] [--shard i/n] [--concurrency N] [--seed S] [--threads N] [--api-key K] [--json]\n  --temperature: sampling temperature of the proposed steps (default 1; the bundled default run and eval use 0.7)\n  --max-step-tokens: the longest step the policy may write (default 160; the bundled models were trained on steps of at most 48)\n  --strategy annotate: the paper's annotation tree of each problem, for reward-model data ('deno task export --run ID --kind prm|hrm|hnc'): every node down to --full-depth (default " +
      ANNOTATE_FULL_DEPTH + ") gets --k children (default " + ANNOTATE_K +
      "), one sampled rollout per branch below it, to --max-depth; leaves graded against the gold answer (every problem needs one), nodes labelled with Monte-Carlo scores; --reward optional (records step scores); temperature default 0.1 (the paper's reference code); accuracy = majority vote over each tree's answers\n  a resumed run (same --run-id) must keep its settings: a changed one is an error that names it",
    options: {
      problems: { type: "string" },
      "full-depth": { type: "string" },
      format: { type: "string" },
      strategy: { type: "string" },
      temperature: { type: "string" },
      "max-step-tokens": { type: "string" },
      n: { type: "string" },
      k: { type: "string" },
      "c-puct": { type: "string" },
      choose: { type: "string" },
      "max-depth": { type: "string" },
      simulations: { type: "string" },
      "max-tokens": { type: "string" },
      seconds: { type: "string" },
      aggregation: { type: "string" },
      limit: { type: "string" },
      strict: { type: "boolean" },
      policy: { type: "string" },
      reward: { type: "string" },
      orm: { type: "string" },
      head: { type: "string" },
      "format-reward": { type: "string" },
      db: { type: "string" },
      "auth-token": { type: "string" },
      "run-id": { type: "string" },
      shard: { type: "string" },
      concurrency: { type: "string" },
      seed: { type: "string" },
      threads: { type: "string" },
      "api-key": { type: "string" },
    },
    run: runAgentCommand,
  },
  eval: {
    summary: "Best-of-N accuracy against N for ORM/PRM/HRM scorers: markdown table and SVG plot",
    usage:
      "eval [--problems FILE|synthetic:N --policy DIR|URL] [--format F] [--strict] [--orm DIR|URL] [--prm DIR|URL] [--hrm DIR|URL] [--ns 2,4,8,16] [--strategies greedy,best-of-n,step-greedy] [--paper] [--aggregation min|last|product|mean] [--max-depth D] [--max-step-tokens T] [--temperature T] [--limit N] [--seed S] [--out DIR] [--shard i/n] [--report-only] [--fresh] [--threads N] [--api-key K] [--json]\n  --max-step-tokens: the longest step the policy may write (default 160)\n  --report-only: the table of the problems already in --out's journal, nothing run (a partial result of a long evaluation)\n  --paper: the ORM ranks whole solutions (best-of-n), PRM and HRM run step-greedy, as in the paper's table\n  --shard i/n: this process takes problems with index % n == i; shards share --out's journal, so run them side by side and then once without --shard for the whole table\n  with neither --problems nor --policy: the bundled reproduction (500 held-out synthetic problems, N = 2..64, --paper, temperature 0.7, steps of at most 48 tokens as in the annotation trees, greedy reference; resumable in .tmp/eval)",
    options: {
      problems: { type: "string" },
      format: { type: "string" },
      policy: { type: "string" },
      orm: { type: "string" },
      prm: { type: "string" },
      hrm: { type: "string" },
      ns: { type: "string" },
      strategies: { type: "string" },
      aggregation: { type: "string" },
      "max-depth": { type: "string" },
      "max-step-tokens": { type: "string" },
      limit: { type: "string" },
      strict: { type: "boolean" },
      seed: { type: "string" },
      out: { type: "string" },
      fresh: { type: "boolean" },
      paper: { type: "boolean" },
      "report-only": { type: "boolean" },
      temperature: { type: "string" },
      shard: { type: "string" },
      threads: { type: "string" },
      "api-key": { type: "string" },
    },
    run: runEval,
  },
  export: {
    summary:
      "export reward-model (PRM/HRM/HNC/ORM) or KL-SFT training data, atomically, with a manifest",
    usage: EXPORT_USAGE,
    options: EXPORT_OPTIONS as Options,
    run: (v) => exportCommand(v),
  },
  "eval-processbench": {
    summary:
      "first-wrong-step accuracy of a reward model on ProcessBench (error/correct accuracy, F1)",
    usage: EVAL_PROCESSBENCH_USAGE,
    options: EVAL_PROCESSBENCH_OPTIONS as Options,
    run: (v) => evalProcessBenchCommand(v),
  },
  grade: {
    summary: "grade predictions made elsewhere against a problem file",
    usage: "grade --problems FILE --predictions FILE [--format F] [--json]",
    options: {
      problems: { type: "string" },
      predictions: { type: "string" },
      format: { type: "string" },
    },
    run: runGrade,
  },
  serve: {
    summary: "serve guided reasoning over HTTP (OpenAI-compatible API, live search-tree page)",
    usage: SERVE_USAGE,
    options: SERVE_OPTIONS as Options,
    run: (v) => serveCommand(v),
  },
};

function helpText(): string {
  const lines = ["arborist: reward-guided reasoning with small ONNX models", "", "Commands:"];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push("", "Run 'deno task <command> --help' for a command's options.");
  return lines.join("\n");
}

/** Parse a numeric flag; undefined when absent (one parser for every command). */
const num = numberFlag;

/** `--shard i/n`, parsed; undefined when absent. */
function shardFlag(values: Record<string, unknown>): ReturnType<typeof parseShard> | undefined {
  if (values.shard === undefined) return undefined;
  try {
    return parseShard(values.shard as string);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
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

function labelTokensOf(values: Record<string, unknown>): [string, string] | undefined {
  const v = values["label-tokens"] as string | undefined;
  if (v === undefined) return undefined;
  const parts = v.split(",");
  if (parts.length !== 2 || parts.some((p) => p === "")) {
    throw new UsageError(
      `--label-tokens must be two tokens separated by a comma, e.g. '+,-': got '${v}'`,
    );
  }
  return [parts[0], parts[1]];
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
  if (steps.length === 0) {
    throw new Error(
      `Cannot score: --steps-file ${file} holds no steps (paragraphs separated by a blank line)`,
    );
  }
  const reward = await OnnxReward.load(dir, {
    head: oneOf(values, "head", REWARD_HEADS),
    format: oneOf(values, "format", REWARD_INPUT_FORMATS),
    step_tag: values["step-tag"] as string | undefined,
    step_token: values["step-token"] as string | undefined,
    system_prompt: values["system-prompt"] as string | undefined,
    label_tokens: labelTokensOf(values),
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

function oneOf<T extends string>(
  values: Record<string, unknown>,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const v = values[name] as string | undefined;
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) {
    throw new UsageError(`--${name} must be one of ${allowed.join(", ")}: got '${v}'`);
  }
  return v as T;
}

const FORMATS = ["gsm8k", "math", "processbench", "prm800k", "auto"] as const;

async function problemsFrom(values: Record<string, unknown>): Promise<Problem[]> {
  const spec = values.problems as string | undefined;
  if (spec === undefined) throw new UsageError("--problems FILE|synthetic:N is required");
  let synthetic;
  try {
    synthetic = parseSyntheticSpec(spec);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (synthetic) {
    if (synthetic.count < 1) {
      throw new UsageError(`--problems synthetic:N needs N >= 1: got '${spec}'`);
    }
    for (const flag of ["format", "strict"]) {
      if (values[flag] !== undefined) {
        throw new UsageError(`--${flag} is for a problems file, not for --problems ${spec}`);
      }
    }
    let ps;
    try {
      ps = generateProblems(synthetic.count, {
        seed: num(values, "seed", { integer: true }) ?? 0,
        minSteps: synthetic.minSteps,
        maxSteps: synthetic.maxSteps,
      });
    } catch (e) {
      throw new UsageError(`--problems ${spec}: ${(e as Error).message}`);
    }
    const limit = num(values, "limit", { integer: true, min: 1 });
    return limit === undefined ? ps : ps.slice(0, limit);
  }
  const format = (oneOf(values, "format", FORMATS) ?? "auto") as ProblemFormat | "auto";
  const limit = num(values, "limit", { integer: true, min: 1 });
  const cannot = (reason: string) => new Error(`Cannot read --problems ${spec}: ${reason}`);
  const why = (e: unknown) =>
    e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (e as Error).message;
  let info;
  try {
    info = await Deno.stat(spec);
  } catch (e) {
    throw cannot(why(e));
  }
  if (info.isDirectory) throw cannot("it is a directory, not a file");
  let set;
  try {
    set = await loadProblems(spec, { format, strict: values.strict === true, limit });
  } catch (e) {
    // a ProblemError (strict mode, repeated id) names the file and line already
    throw e instanceof ProblemError ? e : cannot(why(e));
  }
  const shown = 5;
  for (const e of set.errors.slice(0, shown)) console.error(`warning: ${e.message} (skipped)`);
  if (set.errors.length > shown) {
    console.error(
      `warning: ... and ${set.errors.length - shown} more skipped records ` +
        `(${set.errors.length} in all)`,
    );
  }
  if (set.problems.length > 0) return set.problems;
  if (set.errors.length === 0) throw cannot("it holds no records");
  const all = `all ${set.errors.length} records were skipped`;
  const d = await diagnoseProblemFile(spec, format).catch(() => undefined);
  if (d?.cause === "format") {
    throw cannot(
      `${all}: none reads as ${d.format}, and they look like ${d.detected} ` +
        `(wrong --format? try --format ${d.detected} or auto)`,
    );
  }
  if (d?.cause === "document") {
    throw cannot(
      `${all}: it starts like one JSON document over several lines (not one record per ` +
        `line, as JSON Lines needs) but does not parse as a whole: ${spec}:${d.line}: ` +
        `${d.error}; is it cut short?`,
    );
  }
  throw cannot(`${all} (see the warnings above)`);
}

async function modelsFrom(
  values: Record<string, unknown>,
  strategy: AgentStrategy,
): Promise<AgentModels> {
  const policyAt = values.policy as string | undefined;
  if (!policyAt) throw new UsageError("--policy DIR|URL is required with --problems");
  const threads = num(values, "threads", { integer: true, min: 1 });
  const apiKey = values["api-key"] as string | undefined;
  const rewardFlags = {
    head: oneOf(values, "head", REWARD_HEADS),
    format: oneOf(values, "format-reward", REWARD_INPUT_FORMATS),
    threads,
    apiKey,
  };
  const models: AgentModels = { policy: await openPolicy(policyAt, { threads, apiKey }) };
  try {
    if (values.reward) models.reward = await openReward(values.reward as string, rewardFlags);
    if (values.orm) models.orm = await openReward(values.orm as string, rewardFlags);
    const alone = strategy === "greedy" || strategy === "annotate" ||
      (strategy === "best-of-n" && models.orm);
    if (!models.reward && !alone) {
      throw new UsageError(`--strategy ${strategy} needs --reward DIR|URL`);
    }
  } catch (e) {
    await closeModels(models);
    throw e;
  }
  return models;
}

/** The digests of the agent's model locations, stored with the run (see `weightsDigest`). */
async function weightsOf(
  values: Record<string, unknown>,
): Promise<{ policy?: string; reward?: string; orm?: string }> {
  const out: { policy?: string; reward?: string; orm?: string } = {};
  for (const k of ["policy", "reward", "orm"] as const) {
    if (typeof values[k] === "string") out[k] = await weightsDigest(values[k]);
  }
  return out;
}

async function closeModels(m: AgentModels): Promise<void> {
  await Promise.allSettled([m.policy.close(), m.reward?.close(), m.orm?.close()]);
}

function summaryTable(r: RunReport): string {
  const rows = [
    ["run", r.runId],
    ["strategy", r.strategy],
    ["problems finished", String(r.problems)],
    ["solved by this process", String(r.solvedNow)],
    ["skipped (already done)", String(r.skipped)],
    ["correct", String(r.correct)],
    ["accuracy", Number.isNaN(r.accuracy) ? "-" : `${(100 * r.accuracy).toFixed(1)}%`],
    ["tokens generated", String(r.tokensGenerated)],
    ["tokens/s (this process)", (r.tokensNow / Math.max(1e-9, r.seconds)).toFixed(1)],
    ["seconds", r.seconds.toFixed(1)],
  ];
  if (r.stopped) rows.push(["stopped early", "yes (finished problems are committed)"]);
  return ["| | |", "|---|---|", ...rows.map(([a, b]) => `| ${a} | ${b} |`)].join("\n");
}

/** `--seconds`, which must be > 0 (a zero budget would store unsolved problems as done). */
function positiveSeconds(values: Record<string, unknown>): number {
  const s = num(values, "seconds", { min: 0 })!;
  if (s === 0) throw new UsageError("--seconds must be > 0: got '0'");
  return s;
}

/** Flags that only some strategies read, and those strategies. */
const STRATEGY_FLAGS: Record<string, readonly AgentStrategy[]> = {
  "full-depth": ["annotate"],
  "c-puct": ["mcts"],
  choose: ["mcts"],
  ...STRATEGY_SETTINGS,
  orm: ["best-of-n"],
  aggregation: ["best-of-n", "mcts"],
};

/** A flag the strategy would ignore is a usage error that says which strategies read it. */
function refuseUnused(values: Record<string, unknown>, strategy: AgentStrategy): void {
  for (const [flag, readers] of Object.entries(STRATEGY_FLAGS)) {
    if (values[flag] !== undefined && !readers.includes(strategy)) {
      throw new UsageError(
        `--${flag} is not read by --strategy ${strategy} (only by ${readers.join(", ")})`,
      );
    }
  }
}

/** Flags the default run (`deno task agent` without --problems and --policy) takes. */
const DEFAULT_RUN_FLAGS = ["limit", "threads", "json", "help"];

/** Exit code of a run stopped by Ctrl-C (128 + SIGINT), so scripts can tell it from success. */
const INTERRUPTED = 130;

async function runAgentCommand(values: Record<string, unknown>): Promise<void | number> {
  if (values.problems === undefined && values.policy === undefined) {
    const other = Object.keys(values).filter((k) => !DEFAULT_RUN_FLAGS.includes(k));
    if (other.length) {
      throw new UsageError(
        `the default run (no --problems, no --policy) takes only ${
          DEFAULT_RUN_FLAGS.map((f) => `--${f}`).join(", ")
        }: got ${other.map((f) => `--${f}`).join(", ")} (give --problems and --policy to set them)`,
      );
    }
    const rows = await defaultRun({
      threads: num(values, "threads", { integer: true, min: 1 }),
      count: num(values, "limit", { integer: true, min: 1 }),
    });
    print(values.json ? JSON.stringify({ rows }) : defaultRunTable(rows));
    return;
  }
  const strategy = oneOf(values, "strategy", AGENT_STRATEGIES) ?? "mcts";
  refuseUnused(values, strategy);
  if (values["run-id"] !== undefined && String(values["run-id"]).trim() === "") {
    throw new UsageError("--run-id must not be empty (leave it out for a new id by date)");
  }
  const aggregation = oneOf(values, "aggregation", AGGREGATIONS) as Aggregation | undefined;
  const choose = oneOf(values, "choose", CHOOSE_RULES) as ChooseRule | undefined;
  const shard = shardFlag(values);
  const budget = {
    simulations: num(values, "simulations", { integer: true, min: 1 }),
    tokens: num(values, "max-tokens", { integer: true, min: 1 }),
    ms: values.seconds === undefined ? undefined : positiveSeconds(values) * 1000,
  };
  const seed = num(values, "seed", { integer: true }) ?? 0;
  const maxStepTokens = num(values, "max-step-tokens", { integer: true, min: 1 });
  const temperature = num(values, "temperature", { min: 0 });
  const problems = await problemsFrom(values);
  const dbUrl = (values.db as string | undefined) ?? "data/arborist.db";
  const store = await openStore(dbUrl, {
    authToken: (values["auth-token"] as string | undefined) ?? Deno.env.get("LIBSQL_AUTH_TOKEN"),
  });
  const ac = new AbortController();
  const onInt = () => {
    console.error(
      "\ninterrupted: finishing the problem in flight is skipped; what is done stays committed",
    );
    ac.abort();
  };
  Deno.addSignalListener("SIGINT", onInt);
  let models: AgentModels | undefined;
  try {
    models = await modelsFrom(values, strategy);
    const report = await runAgent(problems, {
      runId: (values["run-id"] as string | undefined) ??
        `${strategy}-${new Date().toISOString().replace(/[:.]/g, "-")}`,
      store,
      models,
      strategy,
      source: values.problems as string,
      n: num(values, "n", { integer: true, min: 1 }),
      k: num(values, "k", { integer: true, min: 1 }),
      cPuct: num(values, "c-puct", { min: 0 }),
      choose,
      maxDepth: num(values, "max-depth", { integer: true, min: 1 }),
      fullDepth: num(values, "full-depth", { integer: true, min: 0 }),
      budget: Object.values(budget).some((v) => v !== undefined) ? budget : undefined,
      aggregation,
      temperature,
      steps: maxStepTokens === undefined ? undefined : { maxStepTokens },
      seed,
      shard: shard ? { index: shard.index, count: shard.count } : undefined,
      concurrency: num(values, "concurrency", { integer: true, min: 1 }),
      signal: ac.signal,
      weights: await weightsOf(values),
    });
    if (values.json) {
      print(JSON.stringify({
        run_id: report.runId,
        strategy: report.strategy,
        problems: report.problems,
        correct: report.correct,
        accuracy: Number.isNaN(report.accuracy) ? null : report.accuracy,
        tokens_generated: report.tokensGenerated,
        seconds: report.seconds,
      }));
    } else {
      print(summaryTable(report));
    }
    if (report.stopped) return INTERRUPTED;
  } finally {
    Deno.removeSignalListener("SIGINT", onInt);
    if (models) await closeModels(models);
    await store.close();
  }
}

function listOf(values: Record<string, unknown>, name: string): string[] | undefined {
  const v = values[name] as string | undefined;
  return v === undefined ? undefined : v.split(",").map((x) => x.trim()).filter(Boolean);
}

/** Defaults of `deno task eval` with no --problems and no --policy: the bundled reproduction. */
const BUNDLED_EVAL = {
  count: 500,
  ns: ["2", "4", "8", "16", "24", "64"],
  strategies: ["greedy", "best-of-n", "step-greedy"],
  out: ".tmp/eval",
  temperature: 0.7,
  maxStepTokens: BUNDLED_MAX_STEP_TOKENS,
};

async function runEval(values: Record<string, unknown>): Promise<void> {
  const bundled = values.problems === undefined && values.policy === undefined;
  if (bundled) {
    const missing = await missingBundledModels();
    if (missing.length) {
      throw new Error(
        `The bundled models are incomplete (missing: ${
          missing.join(", ")
        } under ${BUNDLED_MODELS}); ` +
          "build them with 'deno run -A models/build/build.ts' or pass --problems and --policy",
      );
    }
    values = {
      problems: `synthetic:${BUNDLED_EVAL.count}`,
      seed: String(BUNDLED_SEED),
      policy: `${BUNDLED_MODELS}policy`,
      orm: `${BUNDLED_MODELS}orm`,
      prm: `${BUNDLED_MODELS}prm`,
      hrm: `${BUNDLED_MODELS}hrm`,
      ns: BUNDLED_EVAL.ns.join(","),
      strategies: BUNDLED_EVAL.strategies.join(","),
      out: BUNDLED_EVAL.out,
      temperature: String(BUNDLED_EVAL.temperature),
      "max-step-tokens": String(BUNDLED_EVAL.maxStepTokens),
      paper: true,
      ...values,
    };
  }
  const problems = await problemsFrom(values);
  const ns = nonEmptyList(values, "ns", ["2", "4", "8", "16"], "integers >= 1").map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`--ns must list integers >= 1: got '${x}'`);
    }
    return n;
  });
  // --paper is the paper's table: greedy, the ORM ranking whole solutions, PRM/HRM step-greedy.
  const defaultStrategies = values.paper === true ? BUNDLED_EVAL.strategies : ["best-of-n"];
  const strategies = nonEmptyList(
    values,
    "strategies",
    defaultStrategies,
    "greedy, best-of-n, step-greedy",
  ).map((s) => {
    if (s !== "best-of-n" && s !== "step-greedy" && s !== "greedy") {
      throw new UsageError(`--strategies must list greedy, best-of-n, step-greedy: got '${s}'`);
    }
    return s as EvalStrategy;
  });
  const policyAt = need(values, "policy");
  const threads = num(values, "threads", { integer: true, min: 1 });
  const apiKey = values["api-key"] as string | undefined;
  const named = (["orm", "prm", "hrm"] as const).filter((k) => values[k] !== undefined);
  if (named.length === 0 && strategies.some((s) => s !== "greedy")) {
    throw new UsageError(
      "give at least one of --orm, --prm, --hrm (only --strategies greedy needs none)",
    );
  }
  const scorerSpecs = named.map((k) => ({
    key: k,
    name: k.toUpperCase(),
    kind: k === "orm" ? "outcome" as const : "process" as const,
    strategies: values.paper === true
      ? [k === "orm" ? "best-of-n" as const : "step-greedy" as const]
      : undefined,
  }));
  if (evalRows(scorerSpecs, strategies).length === 0) {
    throw new UsageError(
      `--strategies ${strategies.join(",")} with ${named.map((k) => `--${k}`).join(" ")}${
        values.paper === true ? " --paper" : ""
      } measures nothing: step-greedy needs --prm or --hrm, best-of-n any of them (with --paper: --orm)`,
    );
  }
  const settings = {
    aggregation: oneOf(values, "aggregation", AGGREGATIONS) as Aggregation | undefined,
    maxDepth: num(values, "max-depth", { integer: true, min: 1 }),
    temperature: num(values, "temperature", { min: 0 }),
    maxStepTokens: num(values, "max-step-tokens", { integer: true, min: 1 }),
    seed: num(values, "seed", { integer: true }) ?? 0,
  };
  const out = values.out as string | undefined;
  const shard = shardFlag(values);
  if (shard && !out) throw new UsageError("--shard needs --out (the shards share its journal)");
  const reportOnly = values["report-only"] === true;
  if (reportOnly && !out) {
    throw new UsageError("--report-only needs --out (it reports the journal there)");
  }
  if (reportOnly && values.fresh === true) {
    throw new UsageError(
      "--report-only and --fresh exclude each other: --fresh would empty the journal that --report-only reports",
    );
  }
  const weights = {
    policy: await weightsDigest(policyAt),
    ...Object.fromEntries(
      await Promise.all(named.map(async (k) => [k, await weightsDigest(values[k] as string)])),
    ),
  };
  // Compared on resume. Version 2: settings as they take effect (defaults resolved, numbers
  // parsed, paths normalized, the problem file's content digested; the limit is not a setting:
  // a journal is per problem, so a larger --limit extends it). Journals without a version were
  // written with the flags as given and resume against that form.
  const config = {
    configVersion: 2,
    problems: place(values.problems),
    // the file's content, so an edited file is not resumed (null for synthetic:N)
    problemsSha256: String(values.problems).startsWith("synthetic:")
      ? null
      : await fileSha256(values.problems as string),
    seed: settings.seed,
    policy: place(policyAt),
    scorers: Object.fromEntries(named.map((k) => [k, place(values[k])])),
    ns,
    strategies,
    aggregation: settings.aggregation ?? "min",
    maxDepth: settings.maxDepth ?? MAX_DEPTH,
    maxStepTokens: settings.maxStepTokens ?? DEFAULT_MAX_STEP_TOKENS,
    paper: values.paper === true,
    temperature: settings.temperature ?? DEFAULT_TEMPERATURE,
    weights,
  };
  const legacyConfig = {
    problems: values.problems,
    seed: values.seed ?? null,
    limit: values.limit ?? null,
    policy: bundledRelative(policyAt),
    scorers: Object.fromEntries(named.map((k) => [k, bundledRelative(values[k])])),
    ns,
    strategies,
    aggregation: values.aggregation ?? null,
    maxDepth: values["max-depth"] ?? null,
    ...(values["max-step-tokens"] === undefined
      ? {}
      : { maxStepTokens: values["max-step-tokens"] }),
    paper: values.paper === true,
    temperature: values.temperature ?? null,
    weights,
  };
  // Read and checked before anything loads; written only once the models have loaded, so a
  // command that fails leaves no journal behind that would refuse its corrected form.
  const journal = out
    ? await readJournal(out, { config, legacyConfig, fresh: values.fresh === true })
    : undefined;
  const policy = await openPolicy(policyAt, { threads, apiKey });
  const scorers: Scorer[] = [];
  try {
    for (const spec of scorerSpecs) {
      const model = await openReward(values[spec.key] as string, { threads, apiKey });
      scorers.push({ name: spec.name, model, kind: spec.kind, strategies: spec.strategies });
    }
    await journal?.begin();
    const mine = reportOnly
      ? problems.filter((p) => journal?.done.has(p.id))
      : shard
      ? problems.filter((p) => p.index % shard.count === shard.index)
      : problems;
    const points = await evaluate(mine, {
      policy,
      scorers,
      ns,
      strategies,
      aggregation: settings.aggregation,
      maxDepth: settings.maxDepth,
      temperature: settings.temperature,
      steps: { maxStepTokens: settings.maxStepTokens },
      seed: settings.seed,
      done: journal?.done,
      onProblem: journal?.append,
    });
    const table = evalTable(points);
    if (out) {
      await Deno.writeTextFile(`${out}/eval.md`, table + "\n");
      await Deno.writeTextFile(`${out}/eval.svg`, evalSvg(points));
      await Deno.writeTextFile(
        `${out}/eval.json`,
        JSON.stringify({ config: { ...config, limit: values.limit ?? null }, points }, null, 2) +
          "\n",
      );
    }
    print(values.json ? JSON.stringify({ points }) : table);
    if (out && !values.json) console.error(`wrote ${out}/eval.md, eval.svg, eval.json`);
  } finally {
    await Promise.allSettled([policy.close(), ...scorers.map((s) => s.model.close())]);
  }
}

/** A comma list flag, or `fallback` when absent; an empty list is a usage error. */
function nonEmptyList(
  values: Record<string, unknown>,
  name: string,
  fallback: readonly string[],
  what: string,
): string[] {
  const list = listOf(values, name);
  if (list === undefined) return [...fallback];
  if (list.length === 0) {
    throw new UsageError(`--${name} must list ${what}: got '${values[name]}'`);
  }
  return list;
}

/** Bundled model paths kept relative, so that a journal resumes in another clone of the repo. */
function bundledRelative(x: unknown): unknown {
  return typeof x === "string" && x.startsWith(BUNDLED_MODELS)
    ? `models/${x.slice(BUNDLED_MODELS.length)}`
    : x;
}

/**
 * A model or problem location as a journal records it: a URL or a spec (`synthetic:N`) as
 * given, a local path relative to the working directory and normalized (`./models//hrm`,
 * `models/hrm` and its absolute path are one place), bundled models as `models/...`.
 */
function place(x: unknown): unknown {
  const b = bundledRelative(x);
  if (typeof b !== "string" || b.includes("://") || b.startsWith("synthetic:")) return b;
  return relative(Deno.cwd(), resolve(b)) || ".";
}

/**
 * The per-problem journal of an eval in `out` (journal.jsonl + config.json), so that a
 * stopped evaluation resumes: finished problems are counted, not rerun. A journal written
 * under another configuration is refused, naming what differs, unless `fresh`. Nothing is
 * written until `begin()`.
 */
async function readJournal(
  out: string,
  { config, legacyConfig, fresh }: {
    config: Record<string, unknown>;
    legacyConfig: Record<string, unknown>;
    fresh: boolean;
  },
): Promise<{
  done: Map<string, string[]>;
  begin: () => Promise<void>;
  append: (r: ProblemHits) => Promise<void>;
}> {
  const cfgPath = `${out}/config.json`, path = `${out}/journal.jsonl`;
  const had = await Deno.readTextFile(cfgPath).catch(() => undefined);
  const done = new Map<string, string[]>();
  const resume = had !== undefined && !fresh;
  if (resume) {
    let stored: Record<string, unknown>;
    try {
      stored = JSON.parse(had);
    } catch (e) {
      throw new Error(`${cfgPath}: not valid JSON (${(e as Error).message}); pass --fresh`);
    }
    const want = "configVersion" in stored ? config : legacyConfig;
    const diff = journalDiff(stored, want);
    if (diff.length > 0) {
      throw new UsageError(
        `${out} holds an evaluation of another configuration (${cfgPath}): ${
          diff.join("; ")
        }; pass another --out, or --fresh to start over there`,
      );
    }
    const text = await Deno.readTextFile(path).catch(() => "");
    text.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      try {
        const r = JSON.parse(line) as ProblemHits;
        if (typeof r.id !== "string" || !Array.isArray(r.hits)) {
          throw new Error("expected {id, hits}");
        }
        done.set(r.id, r.hits);
      } catch (e) {
        // a line cut by a kill is the only expected damage: keep what was whole
        console.error(`warning: ${path}:${i + 1}: ${(e as Error).message} (ignored)`);
      }
    });
    if (done.size) console.error(`resuming: ${done.size} problems already evaluated in ${path}`);
  }
  return {
    done,
    begin: async () => {
      if (resume) return;
      await Deno.mkdir(out, { recursive: true });
      await Deno.writeTextFile(cfgPath, JSON.stringify(config, null, 2) + "\n");
      await Deno.writeTextFile(path, "");
    },
    append: (r) => Deno.writeTextFile(path, JSON.stringify(r) + "\n", { append: true }),
  };
}

/** `key is X in the journal, Y now` for each top-level setting that differs. */
function journalDiff(stored: Record<string, unknown>, want: Record<string, unknown>): string[] {
  const show = (x: unknown) => x === undefined ? "absent" : JSON.stringify(x);
  return [...new Set([...Object.keys(stored), ...Object.keys(want)])]
    .filter((k) => JSON.stringify(stored[k]) !== JSON.stringify(want[k]))
    .map((k) => `${k} is ${show(stored[k])} in the journal, ${show(want[k])} now`);
}

async function runGrade(values: Record<string, unknown>): Promise<void> {
  const problems = await problemsFrom(values);
  const byId = new Map(problems.map((p) => [p.id, p]));
  const path = need(values, "predictions");
  let text: string;
  try {
    text = (await Deno.readTextFile(path)).replace(/^\uFEFF/, ""); // a byte-order mark is no JSON
  } catch (e) {
    throw new Error(`Cannot read --predictions ${path}: ${(e as Error).message}`);
  }
  // problems without a gold answer (ProcessBench) are counted as ungraded, never as wrong
  let total = 0, correct = 0, ungraded = 0;
  const lineOf = new Map<string, number>(); // problem id -> line of its prediction
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let rec: { id?: unknown; prediction?: unknown };
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    if (
      typeof rec.prediction !== "string" ||
      (typeof rec.id !== "string" && typeof rec.id !== "number")
    ) {
      throw new Error(`${path}:${i + 1}: expected {"id": string|number, "prediction": string}`);
    }
    const id = String(rec.id);
    const p = byId.get(id);
    if (!p) throw new Error(`${path}:${i + 1}: no problem with id '${rec.id}' in --problems`);
    const first = lineOf.get(id);
    if (first !== undefined) {
      throw new Error(
        `${path}:${i + 1}: a second prediction for problem '${id}' (the first is on line ` +
          `${first}); expected one prediction per problem`,
      );
    }
    lineOf.set(id, i + 1);
    total++;
    if (p.gold === undefined) ungraded++;
    else if (gradeSolution(rec.prediction, p.gold, { kind: gradeKindFor(p) }).correct) correct++;
  });
  const graded = total - ungraded;
  const accuracy = graded > 0 ? correct / graded : null;
  // Problems without a prediction are left out of the accuracy; say how many, and which first.
  const missing = problems.filter((p) => !lineOf.has(p.id));
  if (missing.length > 0) {
    console.error(
      `warning: ${missing.length} of ${problems.length} problems have no prediction in ${path} (first: '${
        missing[0].id
      }'); the accuracy is over the ${total} predicted`,
    );
  }
  if (values.json) {
    print(JSON.stringify({ total, correct, ungraded, missing: missing.length, accuracy }));
  } else {
    const pct = accuracy === null ? "-" : `${(100 * accuracy).toFixed(2)}%`;
    const rest = ungraded ? `; ${ungraded} ungraded (their problems have no gold answer)` : "";
    const gap = missing.length ? `; ${missing.length} problems without a prediction` : "";
    print(`${correct}/${graded} correct (${pct})${rest}${gap}`);
  }
}

/**
 * `--seed -1` as `--seed=-1`: parseArgs reads a value that starts with "-" only in the `=` form
 * and calls the spaced one ambiguous, so a negative number after a value-taking flag is joined to
 * it (range checks then say whether the value is allowed).
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const name = a.startsWith("--") && !a.includes("=") ? a.slice(2) : undefined;
    if (name && options[name]?.type === "string" && /^-(\d|\.\d)/.test(args[i + 1] ?? "")) {
      out.push(`${a}=${args[++i]}`);
    } else {
      out.push(a);
    }
  }
  return out;
}

/** Commands of other folders report bad flags as one-line RangeErrors starting with "--". */
function isFlagError(e: Error): boolean {
  return e instanceof RangeError && e.message.startsWith("--");
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
        args: joinNegativeValues(rest, { ...COMMON, ...command.options }),
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
    return (await command.run(parsed.values)) ?? 0;
  } catch (e) {
    const err = e as Error;
    console.error(`error: ${err.message}`);
    return err instanceof UsageError || isFlagError(err) ? 2 : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
