/**
 * The `export` and `eval-processbench` commands. main.ts parses the flags (with
 * {@linkcode EXPORT_OPTIONS} / {@linkcode EVAL_PROCESSBENCH_OPTIONS}) and passes their values
 * here; usage errors are `RangeError`s with a one-line message naming the flag.
 *
 * @module
 */
import type { ParseArgsConfig } from "node:util";
import { z } from "zod";
import {
  type Dtype,
  OnnxPolicy,
  type PolicyModel,
  Progress,
  RemotePolicy,
} from "../inference/mod.ts";
// reward/ is imported here (and in export.ts for the paper prompt) only: eval-processbench
// must build the reward model the user names, and reward/ is where its backends live.
import {
  OnnxReward,
  RemoteReward,
  REWARD_HEADS,
  REWARD_INPUT_FORMATS,
  type RewardModel,
} from "../reward/mod.ts";
import { openStore, resolveTarget, type RunStore } from "../store/mod.ts";
import {
  type ExportManifest,
  exportRewardSamples,
  exportSftRecords,
  type LabelMode,
  REWARD_FORMATS,
  type RewardFormat,
} from "./export.ts";
import { evaluateProcessBench, readProcessBench } from "./processbench.ts";
import { readPrm800k } from "./prm800k.ts";
import { runRewardSamples } from "./run_samples.ts";
import { plainPrompt, SFT_MIN_MC, SFT_PSEUDO_MIN_REWARD, sftRecords } from "./sft.ts";

/** Where a command writes: lines to stdout, diagnostics to stderr. */
export interface CommandIo {
  /** One result line (default: stdout). */
  print?: (line: string) => void;
  /** One diagnostic line (default: stderr). */
  warn?: (line: string) => void;
  /** Progress bars (default: drawn on stderr). */
  progress?: boolean;
  /** Where progress bars write, as plain lines (default: stderr, redrawn on a terminal). */
  progressTo?: (text: string) => void;
}

/** {@linkcode CommandIo} with its defaults filled in. */
type Io = Required<Omit<CommandIo, "progressTo">> & Pick<CommandIo, "progressTo">;

/** A progress bar where `io` wants one (none when progress is off). */
function progressBar(
  io: Io,
  label: string,
  options: { total?: number; unit: string },
): Progress | undefined {
  if (!io.progress) return undefined;
  return new Progress(
    label,
    io.progressTo ? { ...options, write: io.progressTo, tty: false } : options,
  );
}

/** Flag definitions in the form `node:util` `parseArgs` takes. */
export type CommandOptions = NonNullable<ParseArgsConfig["options"]>;

/** Usage line of `export`. */
export const EXPORT_USAGE =
  "export (--run ID [--db URL] [--auth-token T] | --prm800k FILE [--strict]) --kind prm|hrm|hnc|orm|sft --format trl|openrlhf|paper|sft --out DIR [--seed S] [--labels hard|soft] [--placeholder TOK] [--policy DIR|URL] [--dtype D] [--top-k K] [--min-mc M] [--min-reward T] [--threads N] [--api-key KEY] [--json]";

/** The flags of `export`, for `node:util` `parseArgs`. */
export const EXPORT_OPTIONS: CommandOptions = {
  run: { type: "string" },
  prm800k: { type: "string" },
  strict: { type: "boolean" },
  kind: { type: "string" },
  format: { type: "string" },
  out: { type: "string" },
  seed: { type: "string" },
  labels: { type: "string" },
  placeholder: { type: "string" },
  db: { type: "string" },
  "auth-token": { type: "string" },
  policy: { type: "string" },
  dtype: { type: "string" },
  "top-k": { type: "string" },
  "min-mc": { type: "string" },
  "min-reward": { type: "string" },
  threads: { type: "string" },
  "api-key": { type: "string" },
  json: { type: "boolean" },
};

/** Usage line of `eval-processbench`. */
export const EVAL_PROCESSBENCH_USAGE =
  "eval-processbench --reward DIR|URL --data FILE [--threshold T] [--limit N] [--head H] [--format F] [--dtype D] [--threads N] [--api-key KEY] [--json]";

/** The flags of `eval-processbench`, for `node:util` `parseArgs`. */
export const EVAL_PROCESSBENCH_OPTIONS: CommandOptions = {
  reward: { type: "string" },
  data: { type: "string" },
  threshold: { type: "string" },
  limit: { type: "string" },
  head: { type: "string" },
  format: { type: "string" },
  dtype: { type: "string" },
  threads: { type: "string" },
  "api-key": { type: "string" },
  json: { type: "boolean" },
};

const KINDS = ["prm", "hrm", "hnc", "orm", "sft"] as const;
type Kind = (typeof KINDS)[number];

/** Flag values as parseArgs gives them: strings and booleans. */
const valuesSchema = z.record(z.string(), z.union([z.string(), z.boolean(), z.undefined()]));

function checkValues(
  values: Record<string, unknown>,
): Record<string, string | boolean | undefined> {
  const r = valuesSchema.safeParse(values);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new RangeError(
      `--${String(issue.path[0])} must be a string or a switch: ${issue.message}`,
    );
  }
  return r.data;
}

function str(v: Record<string, unknown>, name: string): string | undefined {
  const x = v[name];
  if (x === undefined) return undefined;
  if (typeof x !== "string" || x === "") throw new RangeError(`--${name} needs a value`);
  return x;
}

function need(v: Record<string, unknown>, name: string, options: { why?: string } = {}): string {
  const x = str(v, name);
  if (x === undefined) throw new RangeError(`--${name} is required${options.why ?? ""}`);
  return x;
}

function oneOf<T extends string>(
  v: Record<string, unknown>,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (!allowed.includes(x as T)) {
    throw new RangeError(`--${name} must be one of ${allowed.join(", ")}: got '${x}'`);
  }
  return x as T;
}

/**
 * A numeric flag of `node:util` parseArgs values, checked; undefined when absent.
 *
 * @param v Parsed flag values.
 * @param name The flag, without dashes.
 * @param check Integer and bounds.
 * @throws RangeError `--name must be ...: got '...'` (the CLI's usage error).
 */
export function numberFlag(
  v: Record<string, unknown>,
  name: string,
  check: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  const raw = str(v, name);
  if (raw === undefined) return undefined;
  const x = Number(raw);
  const bad = raw.trim() === "" || !Number.isFinite(x) || (check.integer && !Number.isInteger(x)) ||
    (check.min !== undefined && x < check.min) || (check.max !== undefined && x > check.max);
  if (bad) {
    const kind = check.integer ? "an integer" : "a number";
    const what = check.min !== undefined && check.max !== undefined
      ? `${kind} from ${check.min} to ${check.max}`
      : [
        kind,
        check.min !== undefined ? `>= ${check.min}` : "",
        check.max !== undefined ? `<= ${check.max}` : "",
      ].filter(Boolean).join(" ");
    throw new RangeError(`--${name} must be ${what}: got '${raw}'`);
  }
  return x;
}

function ioOf(io: CommandIo): Io {
  return {
    // deno-lint-ignore no-console -- a command prints its result
    print: io.print ?? ((l) => console.log(l)),
    // deno-lint-ignore no-console -- and its warnings
    warn: io.warn ?? ((l) => console.error(l)),
    progress: io.progress ?? true,
    progressTo: io.progressTo,
  };
}

/** An AbortController aborted by Ctrl-C while `work` runs. */
async function withInterrupt<T>(
  warn: (l: string) => void,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  const onInt = () => {
    warn("\ninterrupted: stopping; the previous export (if any) is left as it was");
    ac.abort(new Error("interrupted (Ctrl-C)"));
  };
  let listening = false;
  try {
    Deno.addSignalListener("SIGINT", onInt);
    listening = true;
  } catch {
    // No signal support here (e.g. some test runners): run without it.
  }
  try {
    return await work(ac.signal);
  } finally {
    if (listening) Deno.removeSignalListener("SIGINT", onInt);
  }
}

/**
 * `deno task export`: write a training set and its manifest into `--out`.
 *
 * - `--prm800k FILE --kind prm|hrm --format trl|openrlhf|paper`: human-labelled PRM800K.
 * - `--run ID --kind prm|hrm|hnc --format trl|openrlhf|paper`: samples of the run's annotation
 *   trees (search trees if it has none and they carry Monte-Carlo labels): runs of
 *   `deno task agent --strategy annotate` and of the model build (models/build/build.ts).
 * - `--run ID --kind orm --format trl|openrlhf|paper`: its graded trajectories.
 * - `--run ID --kind sft --policy DIR|URL`: KL-SFT records scored by the reference policy.
 *   The format of `sft` is `sft`: `--format` may be left out or be `sft`; any other format is a
 *   usage error (the records carry token ids and log-probabilities no reward format has), and
 *   `--format sft` with another kind is one too.
 *
 * Labels (`--labels`): `hard` (booleans / reward tokens, threshold 0.5) by default; for
 * `openrlhf` with Monte-Carlo labels (`prm`, `hrm`, `hnc` of a run) `soft` (floats) by default.
 * `trl` stays `hard` unless asked: TRL's PRMTrainer casts labels with `int()`.
 *
 * @param values Flag values (see {@linkcode EXPORT_OPTIONS}).
 * @param io Output (default: stdout and stderr).
 * @throws {RangeError} On a usage error, with a one-line message starting with the flag.
 * @throws {Error} When the input is missing (checked before anything is created), unreadable
 *   or holds nothing to export; a failed export writes nothing and removes a folder it made.
 */
export async function exportCommand(
  values: Record<string, unknown>,
  io: CommandIo = {},
): Promise<void> {
  const plan = exportPlan(checkValues(values));
  await checkInputs(plan);
  const out = ioOf(io);
  const manifest = await withInterrupt(out.warn, async (signal) => {
    const ctx = { ...plan, io: out, signal };
    return plan.file !== undefined ? await exportPrm800k(plan.file, ctx) : await exportRun(ctx);
  });
  report(manifest, { dir: plan.dir, json: plan.json, io: out });
}

/** Every flag of `export`, checked before anything is opened. */
interface ExportPlan {
  kind: Kind;
  format?: RewardFormat;
  dir: string;
  run?: string;
  file?: string;
  db: string;
  authToken?: string;
  /** `--seed`, undefined when not given (run exports then sample with seed 0). */
  seed?: number;
  labels?: LabelMode;
  placeholder?: string;
  strict: boolean;
  json: boolean;
  policy?: string;
  topK: number;
  minMc: number;
  minReward?: number;
  v: Record<string, unknown>;
}

/** Flags that only some exports read, and what reads them. */
const EXPORT_FLAG_SCOPE: [flags: string[], reads: string, when: (x: ScopeOf) => boolean][] = [
  [["strict"], "--prm800k", (x) => x.file],
  [["db", "auth-token"], "--run", (x) => !x.file],
  [["labels"], "--format trl or openrlhf", (x) => x.format === "trl" || x.format === "openrlhf"],
  [["placeholder"], "--format openrlhf", (x) => x.format === "openrlhf"],
  [
    ["policy", "dtype", "top-k", "min-mc", "min-reward", "threads", "api-key"],
    "--kind sft",
    (x) => x.kind === "sft",
  ],
];

interface ScopeOf {
  kind: string;
  format?: string;
  file: boolean;
}

/** A flag this export would not read is a usage error, as in `agent` (it would do nothing). */
function refuseUnread(v: Record<string, unknown>, x: ScopeOf): void {
  for (const [flags, reads, when] of EXPORT_FLAG_SCOPE) {
    const given = flags.find((f) => v[f] !== undefined && v[f] !== false);
    if (given === undefined || when(x)) continue;
    const now = x.file ? "--prm800k" : `--run with --kind ${x.kind}` +
      (x.format === undefined ? "" : ` --format ${x.format}`);
    throw new RangeError(`--${given} is read only with ${reads}: this export is ${now}`);
  }
}

function exportPlan(v: Record<string, unknown>): ExportPlan {
  const kind = oneOf(v, "kind", KINDS);
  if (kind === undefined) throw new RangeError(`--kind is required: one of ${KINDS.join(", ")}`);
  const dir = need(v, "out");
  const run = str(v, "run"), file = str(v, "prm800k");
  if (run === undefined && file === undefined) {
    throw new RangeError("--run ID or --prm800k FILE is required: give exactly one of them");
  }
  if (run !== undefined && file !== undefined) {
    throw new RangeError(
      "--run and --prm800k exclude each other: give exactly one of --run ID and --prm800k FILE",
    );
  }
  const format = oneOf(v, "format", [...REWARD_FORMATS, "sft"] as const);
  if (kind === "sft" && format !== undefined && format !== "sft") {
    throw new RangeError(`--kind sft writes format sft: got --format '${format}'`);
  }
  if (kind !== "sft" && format === "sft") {
    throw new RangeError(`--format sft goes with --kind sft only: got --kind '${kind}'`);
  }
  if (kind !== "sft" && format === undefined) {
    throw new RangeError(`--format is required: one of ${REWARD_FORMATS.join(", ")}`);
  }
  if (file !== undefined && kind !== "prm" && kind !== "hrm") {
    throw new RangeError(`--kind must be one of prm, hrm with --prm800k: got '${kind}'`);
  }
  refuseUnread(v, { kind, format, file: file !== undefined });
  const policy = kind === "sft"
    ? need(v, "policy", {
      why: " with --kind sft (the reference policy that scores the records)",
    })
    : undefined;
  return {
    kind,
    format: format === "sft" ? undefined : format,
    dir,
    run,
    file,
    db: str(v, "db") ?? "data/arborist.db",
    authToken: str(v, "auth-token") ?? Deno.env.get("LIBSQL_AUTH_TOKEN"),
    seed: numberFlag(v, "seed", { integer: true }),
    labels: oneOf(v, "labels", ["hard", "soft"] as const),
    placeholder: str(v, "placeholder"),
    strict: v.strict === true,
    json: v.json === true,
    policy,
    topK: numberFlag(v, "top-k", { integer: true, min: 1 }) ?? 20,
    minMc: numberFlag(v, "min-mc", { min: 0, max: 1 }) ?? SFT_MIN_MC,
    minReward: numberFlag(v, "min-reward", { min: 0, max: 1 }),
    v,
  };
}

/**
 * The input must be there before anything is created: the `--prm800k` file, or the `--db`
 * file (opening a missing one would create and migrate an empty database).
 */
async function checkInputs(plan: ExportPlan): Promise<void> {
  if (plan.file !== undefined) {
    const why = await notAFile(plan.file, "no such file");
    if (why) throw new Error(`Cannot export --prm800k ${plan.file}: ${why}`);
    return;
  }
  const path = resolveTarget(plan.db).file;
  if (path === undefined) return; // memory or a server
  const why = await notAFile(path, "no such database file (nothing was created; check --db)");
  if (why) throw new Error(`Cannot export run '${plan.run}' from --db ${path}: ${why}`);
}

/** Why `path` is not a readable file (`missing` when it is not there), or undefined. */
async function notAFile(path: string, missing: string): Promise<string | undefined> {
  const info = await Deno.stat(path).catch((e: Error) => e);
  if (info instanceof Deno.errors.NotFound) return missing;
  if (info instanceof Error) return info.message;
  return info.isFile ? undefined : "not a file";
}

/** A plan being carried out. */
type ExportCtx = ExportPlan & { io: Io; signal: AbortSignal };

/** Malformed lines of a PRM800K file warned of one by one; the rest are counted. */
const WARN_LINES = 5;

async function exportPrm800k(file: string, ctx: ExportCtx): Promise<ExportManifest> {
  let bad = 0, records = 0, first = "";
  const bar = progressBar(ctx.io, "prm800k", { unit: "samples" });
  const read = readPrm800k(file, {
    kind: ctx.kind as "prm" | "hrm",
    strict: ctx.strict,
    signal: ctx.signal,
    onRecord: () => records++,
    onError: (e) => {
      if (++bad === 1) first = e.message;
      if (bad <= WARN_LINES) ctx.io.warn(`warning: ${e.message} (skipped)`);
    },
  });
  // Throwing here, inside the stream, discards the staged file: nothing is written.
  async function* samples() {
    yield* read;
    if (bad > WARN_LINES) {
      ctx.io.warn(`warning: ${bad - WARN_LINES} more malformed lines skipped (${bad} in all)`);
    }
    if (records === 0) {
      throw new Error(
        bad === 0
          ? `Cannot export --prm800k ${file}: it holds no record (the file is empty)`
          : `Cannot export --prm800k ${file}: none of its ${bad} lines is a PRM800K record (the first: ${first}); the file does not look like PRM800K, whose lines are JSON objects with 'question.problem' and 'label.steps'`,
      );
    }
  }
  try {
    return await exportRewardSamples(samples(), {
      out: ctx.dir,
      format: ctx.format!,
      kind: ctx.kind,
      source: file,
      seed: ctx.seed ?? null,
      labels: ctx.labels ?? "hard",
      placeholder: ctx.placeholder,
      settings: () => ({ malformed_lines_skipped: bad }),
      signal: ctx.signal,
      onRecord: () => bar?.tick(),
    });
  } finally {
    bar?.finish();
  }
}

async function exportRun(ctx: ExportCtx): Promise<ExportManifest> {
  const runId = ctx.run!;
  const store = await openStore(ctx.db, { authToken: ctx.authToken });
  try {
    const run = await store.getRun(runId);
    if (!run) throw new Error(`Cannot export run '${runId}': no such run in ${ctx.db}`);
    if (ctx.kind === "sft") return await exportSft(store, { ...ctx, runPolicy: run.policyId });
    const kind = ctx.kind;
    // Monte-Carlo labels are fractions: OpenRLHF trains on them as soft labels; TRL's
    // PRMTrainer would truncate them with int(), so trl stays hard unless asked.
    const soft = ctx.format === "openrlhf" && kind !== "orm";
    let treeKind: string | undefined;
    const bar = progressBar(ctx.io, `export ${kind}`, { unit: "samples" });
    try {
      const samples = runRewardSamples(store, runId, {
        kind,
        seed: ctx.seed ?? 0,
        signal: ctx.signal,
        onTreeKind: (k) => {
          treeKind = k;
          ctx.io.warn(`reading the run's ${k} trees`);
        },
      });
      const m = await exportRewardSamples(samples, {
        out: ctx.dir,
        format: ctx.format!,
        kind,
        source: `run:${runId}`,
        seed: ctx.seed ?? 0,
        modelIds: { policy: run.policyId, reward: run.rewardId },
        labels: ctx.labels ?? (soft ? "soft" : "hard"),
        placeholder: ctx.placeholder,
        settings: () =>
          kind === "orm"
            ? { from: treeKind === "annotation" ? "annotation tree leaves" : "trajectories" }
            : { trees: treeKind ?? null, fraction: 0.1, round: "ceil", single_score_nodes: 5 },
        signal: ctx.signal,
        onRecord: () => bar?.tick(),
      });
      if (m.files[0].records === 0 && treeKind === "annotation" && kind !== "orm") {
        ctx.io.warn(
          "warning: no samples: no node of the run's annotation trees has a graded leaf below it (a --simulations budget stopped every branch before an answer); annotate again with a larger budget or a smaller --full-depth",
        );
      }
      return m;
    } finally {
      bar?.finish();
    }
  } finally {
    await store.close();
  }
}

async function exportSft(
  store: RunStore,
  ctx: ExportCtx & { runPolicy: string },
): Promise<ExportManifest> {
  const runId = ctx.run!;
  const policy = await openPolicy(ctx.policy!, ctx.v);
  const total = (await store.runSummary(runId)).problems;
  if (policy.id !== ctx.runPolicy) {
    ctx.io.warn(
      `warning: the reference policy '${policy.id}' is not the run's policy '${ctx.runPolicy}': the records' KL anchors to '${policy.id}' (right for a later round whose reference stays the original policy; otherwise pass the run's policy as --policy)`,
    );
  }
  const bar = progressBar(ctx.io, "export sft", { total, unit: "problems" });
  let written = 0;
  try {
    const records = sftRecords(store, runId, {
      policy,
      topK: ctx.topK,
      minMc: ctx.minMc,
      minReward: ctx.minReward,
      signal: ctx.signal,
      // The bar shows the records so far, not the last problem's.
      onProblem: (p) => bar?.tick(1, { records: written += p.records }),
    });
    const m = await exportSftRecords(records, {
      out: ctx.dir,
      source: `run:${runId}`,
      seed: ctx.seed ?? null,
      modelIds: { reference_policy: policy.id, run_policy: ctx.runPolicy },
      settings: {
        prompt: plainPrompt("{question}"),
        completion: 'steps joined by "\\n\\n"',
        top_k: ctx.topK,
        min_mc: ctx.minMc,
        min_reward: ctx.minReward ?? null,
      },
      signal: ctx.signal,
    });
    if (m.files[0].records === 0) {
      ctx.io.warn(
        `warning: no records: no solution of run '${runId}' was selected (with a gold answer: Monte-Carlo score >= --min-mc ${ctx.minMc}, or graded correct${
          ctx.minReward === undefined ? "" : ` with a reward >= --min-reward ${ctx.minReward}`
        }; without one: the reward-weighted majority answer with a reward >= --min-reward ${
          ctx.minReward ?? SFT_PSEUDO_MIN_REWARD
        }); see the run's accuracy, or lower the thresholds`,
      );
    }
    return m;
  } finally {
    bar?.finish();
    await policy.close();
  }
}

function openPolicy(at: string, v: Record<string, unknown>): Promise<PolicyModel> {
  if (/^https?:\/\//i.test(at)) {
    return RemotePolicy.connect({ baseUrl: at, apiKey: str(v, "api-key") });
  }
  return OnnxPolicy.load(at, {
    dtype: oneOf(v, "dtype", ["fp32", "fp16", "q4", "q8"] as const) as Dtype | undefined,
    threads: numberFlag(v, "threads", { integer: true, min: 1 }),
  });
}

function report(
  m: ExportManifest,
  { dir, json, io }: { dir: string; json: boolean; io: Io },
): void {
  if (json) {
    io.print(JSON.stringify(m));
    return;
  }
  const f = m.files[0];
  io.print(`wrote ${f.records} ${m.kind} records (${m.format}) to ${dir}/${f.name}`);
  io.print(`  sha256 ${f.sha256}, ${f.bytes} bytes; manifest ${dir}/manifest.json`);
  for (const [field, c] of Object.entries(m.counts)) {
    const parts = Object.entries(c).sort(([a], [b]) => a.localeCompare(b)).slice(0, 12)
      .map(([k, n]) => `${k}: ${n}`);
    const more = Object.keys(c).length > 12 ? ` ... (${Object.keys(c).length} values)` : "";
    io.print(`  by ${field}: ${parts.join(", ")}${more}`);
  }
  if (m.duplicates > 0) io.print(`  ${m.duplicates} duplicate lines dropped`);
}

/**
 * `deno task eval-processbench`: how well a reward model finds the first wrong step.
 * Predicted first wrong step = the first step scored under `--threshold` (default 0.5), -1
 * when none is. Prints the accuracy on erroneous samples, on correct samples, and their
 * harmonic mean (F1); `--json` prints `{"error_acc", "correct_acc", "f1", "total", "skipped"}`
 * (samples longer than the reward model's context are left out, counted in `skipped`).
 *
 * @param values Flag values (see {@linkcode EVAL_PROCESSBENCH_OPTIONS}).
 * @param io Output (default: stdout and stderr).
 * @throws {RangeError} On a usage error, with a one-line message naming the flag.
 */
export async function evalProcessBenchCommand(
  values: Record<string, unknown>,
  io: CommandIo = {},
): Promise<void> {
  const v = checkValues(values);
  const out = ioOf(io);
  const at = need(v, "reward"), data = need(v, "data");
  const threshold = numberFlag(v, "threshold", { min: 0, max: 1 }) ?? 0.5;
  const limit = numberFlag(v, "limit", { integer: true, min: 1 });
  const samples = (await readProcessBench(data)).slice(0, limit);
  const reward = await openReward(at, v);
  const bar = progressBar(out, "processbench", { total: samples.length, unit: "samples" });
  try {
    const r = await withInterrupt(out.warn, (signal) =>
      evaluateProcessBench(samples, {
        reward,
        threshold,
        signal,
        onSample: () => bar?.tick(),
        onSkip: () => bar?.tick(),
      }));
    if (r.skipped.length) {
      out.warn(
        `warning: ${r.skipped.length} of ${samples.length} samples left out (the first: ${
          r.skipped[0].id
        }: ${r.skipped[0].reason})`,
      );
    }
    if (v.json === true) {
      out.print(JSON.stringify({
        error_acc: r.error_acc,
        correct_acc: r.correct_acc,
        f1: r.f1,
        total: r.total,
        skipped: r.skipped.length,
      }));
      return;
    }
    const hits = (label: (l: number) => boolean) =>
      r.predictions.filter((p) => label(p.label) && p.predicted === p.label).length;
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    out.print(
      `ProcessBench ${data}: ${r.total} samples${
        r.skipped.length
          ? ` (${r.skipped.length} longer than the reward model's context left out)`
          : ""
      }, reward ${reward.id}, threshold ${threshold}`,
    );
    out.print(
      `  accuracy on erroneous samples  ${pct(r.error_acc)} (${hits((l) => l >= 0)}/${r.errors})`,
    );
    out.print(
      `  accuracy on correct samples    ${pct(r.correct_acc)} (${
        hits((l) => l < 0)
      }/${r.corrects})`,
    );
    out.print(`  F1 (harmonic mean)             ${pct(r.f1)}`);
  } finally {
    bar?.finish();
    await reward.close();
  }
}

function openReward(at: string, v: Record<string, unknown>): Promise<RewardModel> {
  if (/^https?:\/\//i.test(at)) {
    return RemoteReward.connect({ baseUrl: at, apiKey: str(v, "api-key") });
  }
  return OnnxReward.load(at, {
    head: oneOf(v, "head", REWARD_HEADS),
    format: oneOf(v, "format", REWARD_INPUT_FORMATS),
    dtype: oneOf(v, "dtype", ["fp32", "fp16", "q4", "q8"] as const) as Dtype | undefined,
    threads: numberFlag(v, "threads", { integer: true, min: 1 }),
  });
}
