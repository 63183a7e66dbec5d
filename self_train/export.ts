/**
 * Exports: reward samples in the formats trainers read (TRL, OpenRLHF, the paper's prompt) and
 * KL-SFT records, streamed to JSONL and committed atomically with a manifest.
 *
 * Atomicity: every file is written to `<name>.tmp-<random>` beside its target, hashed while
 * written, fsynced; the manifest is then written the same way; only when all of that succeeded
 * are the files renamed over their targets, the manifest last. A throw, an abort or a kill
 * before that point leaves the previous export as it was (an abort or a throw also removes the
 * temporary files, and the export folder if it created it; a kill may leave one `*.tmp-*`
 * behind, never a half-written target).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
// reward/ is imported for the paper's prompt only: the `paper` format must be exactly the text
// the reference reward model reads, and reward/prompts.ts is where that text is defined.
import { paperPrompt } from "../reward/mod.ts";
import denoConfig from "../deno.json" with { type: "json" };
import type { SftRecord } from "./sft.ts";
import type { RewardSample } from "./types.ts";

/** The reward-sample formats. */
export const REWARD_FORMATS = ["trl", "openrlhf", "paper"] as const;
/** A reward-sample format. */
export type RewardFormat = (typeof REWARD_FORMATS)[number];
/** Every export format: the reward formats and `sft`. */
export type ExportFormat = RewardFormat | "sft";

/** The arborist version written into manifests (from deno.json). */
export const ARBORIST_VERSION: string = denoConfig.version;

/**
 * How labels are written in the stepwise formats:
 * - `"hard"`: a label >= 0.5 is positive (TRL `true`, OpenRLHF the first reward token `"+"`),
 *   else negative (`false`, `"-"`);
 * - `"soft"`: the number itself (TRL and OpenRLHF float labels).
 */
export type LabelMode = "hard" | "soft";

/** A line of the `trl` format (TRL's stepwise supervision). */
export interface TrlRecord {
  /** The question. */
  prompt: string;
  /** The steps. */
  completions: string[];
  /** One label per step. */
  labels: (boolean | number)[];
}

/**
 * A sample in TRL's stepwise-supervision format: `prompt` = the question, `completions` =
 * previous steps + [current], `labels` = one per completion: each previous step's label
 * (`previousLabels`: PRM800K chosen steps 1, tree ancestors their Monte-Carlo scores) and the
 * sample's label last.
 *
 * Labels are booleans by default (`"hard"`, threshold 0.5): TRL's `PRMTrainer` reads each
 * label with Python's `int()`, so a float such as 0.67 would silently become 0. `"soft"` writes
 * the numbers, for trainers that take float targets. An ORM sample (no `previousLabels`) is
 * one completion: the whole solution joined by "\n\n", with its outcome label.
 *
 * @param sample The sample.
 * @param options Label mode (default `"hard"`).
 */
export function toTrl(sample: RewardSample, options: { labels?: LabelMode } = {}): TrlRecord {
  const mode = options.labels ?? "hard";
  const { steps, labels } = stepwise(sample);
  return {
    prompt: sample.question,
    completions: steps,
    labels: labels.map((l) => (mode === "hard" ? l >= 0.5 : l)),
  };
}

/** A line of the `openrlhf` format. */
export interface OpenRlhfRecord {
  /** Question, then every step followed by the placeholder token. */
  input: string;
  /** One label per placeholder: reward tokens (hard) or floats (soft). */
  label: (string | number)[];
}

/** Options of {@linkcode toOpenRlhf}. */
export interface OpenRlhfOptions {
  /** Label mode (default `"hard"`). */
  labels?: LabelMode;
  /** The step placeholder, OpenRLHF's `--placeholder_token` (default `"ки"`). */
  placeholder?: string;
  /** OpenRLHF's `--reward_tokens`: positive, negative (default `["+", "-"]`). */
  rewardTokens?: readonly [string, string];
}

/**
 * A sample in OpenRLHF's process-reward format (`openrlhf.cli.train_prm --input_key input
 * --label_key label --placeholder_token ки --reward_tokens + -`): `input` = question + " " +
 * the steps, each followed by " " + placeholder, joined by "\n" — the Math-Shepherd layout, the
 * same text the `math-shepherd` reward head of this project scores (step tag " ки"). `label`
 * has one entry per placeholder: with `"hard"` labels the reward token (`"+"` when the label is
 * >= 0.5, else `"-"`), with `"soft"` labels the number (OpenRLHF trains a float label p as
 * the target [p, 1 - p] over the two reward tokens). Which steps are labelled, and how, is as
 * in {@linkcode toTrl}.
 *
 * @param sample The sample.
 * @param options Label mode, placeholder, reward tokens.
 * @throws {RangeError} When the question or a step already contains the placeholder (the
 *   labels would no longer line up with the placeholders).
 */
export function toOpenRlhf(sample: RewardSample, options: OpenRlhfOptions = {}): OpenRlhfRecord {
  const mode = options.labels ?? "hard", tag = options.placeholder ?? "ки";
  const [good, bad] = options.rewardTokens ?? ["+", "-"];
  const { steps, labels } = stepwise(sample);
  for (const text of [sample.question, ...steps]) {
    if (text.includes(tag)) {
      throw new RangeError(
        `Cannot write an OpenRLHF sample of problem '${
          sample.problemId ?? "?"
        }': its text contains the placeholder '${tag}' (choose another placeholder)`,
      );
    }
  }
  return {
    input: `${sample.question} ${steps.map((s) => `${s} ${tag}`).join("\n")}`,
    label: labels.map((l) => (mode === "hard" ? (l >= 0.5 ? good : bad) : l)),
  };
}

/** A line of the `paper` format. */
export interface PaperRecord {
  /** The reference reward model's prompt. */
  input: string;
  /** The label: 0/1 or the Monte-Carlo score. */
  label: number;
}

/**
 * A sample in the reference code's format: `input` = `paperPrompt(question, previous,
 * current)` (exactly the reference prompt, PAPER.md), `label` = the sample's label as a number
 * (0/1 for a 2-class head, the Monte-Carlo score for the regression head).
 *
 * @param sample The sample.
 */
export function toPaper(sample: RewardSample): PaperRecord {
  return {
    input: paperPrompt(sample.question, sample.previous, sample.current),
    label: sample.label,
  };
}

/** Steps and their labels in the stepwise formats. */
function stepwise(sample: RewardSample): { steps: string[]; labels: number[] } {
  if (sample.previousLabels === undefined) {
    return { steps: [[...sample.previous, sample.current].join("\n\n")], labels: [sample.label] };
  }
  if (sample.previousLabels.length !== sample.previous.length) {
    throw new RangeError(
      `Cannot write a stepwise sample of problem '${
        sample.problemId ?? "?"
      }': 'previousLabels' must have one label per previous step (${sample.previous.length}): got ${sample.previousLabels.length}`,
    );
  }
  return {
    steps: [...sample.previous, sample.current],
    labels: [...sample.previousLabels, sample.label],
  };
}

/** One written file, as the manifest lists it. */
export interface ManifestFile {
  /** File name inside the export folder. */
  name: string;
  /** Lines (records) in it. */
  records: number;
  /** SHA-256 of its bytes, hex. */
  sha256: string;
  /** Its size. */
  bytes: number;
}

/** `manifest.json` of an export. */
export interface ExportManifest {
  /** What was exported: `prm`, `hrm`, `hnc`, `orm` or `sft`. */
  kind: string;
  /** The format. */
  format: ExportFormat;
  /** When the export was written (ISO 8601). */
  created_at: string;
  /** Where the data came from: `run:<id>` or the input file. */
  source: string;
  /**
   * The seed: for a run's reward samples the sampling seed (0 unless `--seed` was given); for
   * PRM800K and sft exports, which sample nothing, the `--seed` given (null when none was).
   */
  seed: number | null;
  /** Models involved, e.g. `{ policy, reward }` of the run, `{ reference_policy }` for sft. */
  model_ids: Record<string, string | null>;
  /** Format settings (label mode, placeholder, thresholds...). */
  options: Record<string, unknown>;
  /** The data files. */
  files: ManifestFile[];
  /** Counts per label value (`label`), per sample kind (`kind`) or per other field. */
  counts: Record<string, Record<string, number>>;
  /** Records not written because an identical line was written before. */
  duplicates: number;
  /** The arborist version that wrote it. */
  arborist_version: string;
}

/** Options shared by the export writers. */
export interface ExportOptions {
  /** The export folder (created if missing). */
  out: string;
  /** What is exported (manifest `kind`). */
  kind: string;
  /** Where the data came from (manifest `source`). */
  source: string;
  /** The sampling seed (manifest `seed`; default null). */
  seed?: number | null;
  /** Model ids (manifest `model_ids`). */
  modelIds?: Record<string, string | null | undefined>;
  /**
   * Extra settings to record (manifest `options`); a function is called when the manifest is
   * written, after the data (for what is only known then, e.g. lines skipped).
   */
  settings?: Record<string, unknown> | (() => Record<string, unknown>);
  /** Data file name (default `data.jsonl`). */
  fileName?: string;
  /** Drop a record whose line was already written (default true). */
  dedupe?: boolean;
  /** Clock (default `new Date()`). */
  now?: () => Date;
  /** Cancellation: stops the export and leaves the previous one. */
  signal?: AbortSignal;
  /** Told after each record read (for a progress bar). */
  onRecord?: () => void;
}

/** Options of {@linkcode exportRewardSamples}. */
export interface RewardExportOptions extends ExportOptions, OpenRlhfOptions {
  /** `trl`, `openrlhf` or `paper`. */
  format: RewardFormat;
}

/**
 * Write reward samples as one JSONL file in `format` plus `manifest.json`, streamed and
 * committed atomically (see the module docs). Counts: `label` (per label value) and `kind`
 * (per sample kind) of the records written.
 *
 * @param samples The samples (sync or async iterable; consumed once).
 * @param options Folder, format, label mode, manifest fields.
 * @returns The manifest written.
 * @example
 * ```ts
 * await exportRewardSamples(readPrm800k("phase1_test.jsonl", { kind: "hrm" }), {
 *   out: "exports/hrm", format: "paper", kind: "hrm", source: "phase1_test.jsonl" });
 * ```
 */
export async function exportRewardSamples(
  samples: AsyncIterable<RewardSample> | Iterable<RewardSample>,
  options: RewardExportOptions,
): Promise<ExportManifest> {
  const format = options.format;
  if (!REWARD_FORMATS.includes(format)) {
    throw new RangeError(
      `Cannot export reward samples as 'format' must be one of ${
        REWARD_FORMATS.join(", ")
      }: got '${format}'`,
    );
  }
  const convert = (s: RewardSample): unknown =>
    format === "trl"
      ? toTrl(s, options)
      : format === "openrlhf"
      ? toOpenRlhf(s, options)
      : toPaper(s);
  const formatSettings: Record<string, unknown> = {};
  if (format !== "paper") formatSettings.labels = options.labels ?? "hard";
  if (format === "openrlhf") {
    formatSettings.placeholder = options.placeholder ?? "ки";
    formatSettings.reward_tokens = options.rewardTokens ?? ["+", "-"];
  }
  const extra = options.settings;
  const settings = () => ({
    ...(typeof extra === "function" ? extra() : extra),
    ...formatSettings,
  });
  const countsOf = (s: RewardSample) => ({ label: labelKey(s.label), kind: s.kind });
  return await writeExport(mapRecords(samples, { convert, countsOf }), {
    ...options,
    format,
    settings,
  });
}

/** Options of {@linkcode exportSftRecords}. */
export type SftExportOptions = Omit<ExportOptions, "kind"> & { kind?: string };

/**
 * Write KL-SFT records ({@linkcode SftRecord}) as JSONL plus `manifest.json` (format `sft`),
 * streamed and committed atomically. Counts: `pseudo_label` and `source`.
 *
 * @param records The records (consumed once).
 * @param options Folder, manifest fields.
 * @returns The manifest written.
 */
export async function exportSftRecords(
  records: AsyncIterable<SftRecord> | Iterable<SftRecord>,
  options: SftExportOptions,
): Promise<ExportManifest> {
  const tagged = mapRecords(records, {
    convert: (r) => r,
    countsOf: (r) => ({ pseudo_label: String(r.pseudo_label), source: r.source }),
  });
  return await writeExport(tagged, { ...options, kind: options.kind ?? "sft", format: "sft" });
}

/** A record ready to write and the count keys it adds to. */
interface Tagged {
  record: unknown;
  counts: Record<string, string>;
}

async function* mapRecords<T>(
  items: AsyncIterable<T> | Iterable<T>,
  how: { convert: (item: T) => unknown; countsOf: (item: T) => Record<string, string> },
): AsyncGenerator<Tagged, void, undefined> {
  for await (const item of items) yield { record: how.convert(item), counts: how.countsOf(item) };
}

/** A label as a count key: up to 6 decimals, so Monte-Carlo scores group. */
function labelKey(label: number): string {
  return String(Math.round(label * 1e6) / 1e6);
}

/**
 * The key that tells an export line from another: 128 bits of its SHA-256 (a set of keys holds
 * 22 characters per line, not the line). Exports drop a line whose key was seen.
 *
 * @param line One JSON line.
 * @returns Its key.
 */
export function lineKey(line: string): string {
  return createHash("sha256").update(line).digest("base64").slice(0, 22);
}

/** The lines of tagged records, less repeats (when deduplicating), with counts kept. */
class LineMaker {
  readonly counts: Record<string, Record<string, number>> = {};
  duplicates = 0;
  readonly #seen?: Set<string>;

  constructor(dedupe: boolean) {
    if (dedupe) this.#seen = new Set();
  }

  async *lines(
    records: AsyncIterable<Tagged>,
    options: ExportOptions,
  ): AsyncGenerator<string, void, undefined> {
    for await (const t of records) {
      options.signal?.throwIfAborted();
      options.onRecord?.();
      const line = JSON.stringify(t.record) + "\n";
      if (this.#seen) {
        const key = lineKey(line);
        if (this.#seen.has(key)) {
          this.duplicates++;
          continue;
        }
        this.#seen.add(key);
      }
      for (const [field, value] of Object.entries(t.counts)) {
        const c = this.counts[field] ??= {};
        c[value] = (c[value] ?? 0) + 1;
      }
      yield line;
    }
  }
}

/** Stream tagged records to a staged file, then commit it and the manifest. */
async function writeExport(
  records: AsyncIterable<Tagged>,
  options: ExportOptions & { format: ExportFormat },
): Promise<ExportManifest> {
  const name = options.fileName ?? "data.jsonl";
  if (name === "manifest.json" || /[\\/]/.test(name) || name.includes(".tmp-")) {
    throw new RangeError(
      `Cannot export to file '${name}': choose a plain name other than manifest.json`,
    );
  }
  const created = await makeDirs(options.out);
  const maker = new LineMaker(options.dedupe !== false);
  let data: Staged;
  try {
    data = await stage(join(options.out, name), maker.lines(records, options), options);
  } catch (e) {
    await removeDirs(created);
    throw e;
  }
  let manifest: ExportManifest, staged: Staged;
  try {
    manifest = manifestOf(options, {
      files: [{ name, ...data.info }],
      counts: maker.counts,
      duplicates: maker.duplicates,
    });
    const text = JSON.stringify(manifest, null, 2) + "\n";
    staged = await stage(join(options.out, "manifest.json"), [text], options);
  } catch (e) {
    await data.discard();
    await removeDirs(created);
    throw e;
  }
  // Both files are complete and synced: now the two renames, the manifest last.
  await data.commit();
  await staged.commit();
  await syncDir(options.out);
  return manifest;
}

/**
 * `mkdir -p dir`; returns the folders it created, deepest first (so that a failed export can
 * remove them and leave no empty folder behind).
 */
async function makeDirs(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let d = resolve(dir);; d = dirname(d)) {
    if (await Deno.stat(d).then(() => true, () => false)) break;
    missing.push(d);
    if (dirname(d) === d) break;
  }
  await Deno.mkdir(dir, { recursive: true });
  return missing;
}

/** Remove folders made by {@linkcode makeDirs}, deepest first, stopping at one not empty. */
async function removeDirs(created: readonly string[]): Promise<void> {
  for (const d of created) {
    try {
      await Deno.remove(d); // not recursive: fails when something else was put there
    } catch {
      return;
    }
  }
}

function manifestOf(
  options: ExportOptions & { format: ExportFormat },
  written: Pick<ExportManifest, "files" | "counts" | "duplicates">,
): ExportManifest {
  const settings = typeof options.settings === "function" ? options.settings() : options.settings;
  return {
    kind: options.kind,
    format: options.format,
    created_at: (options.now?.() ?? new Date()).toISOString(),
    source: options.source,
    seed: options.seed ?? null,
    model_ids: Object.fromEntries(
      Object.entries(options.modelIds ?? {}).map(([k, v]) => [k, v ?? null]),
    ),
    options: settings ?? {},
    ...written,
    arborist_version: ARBORIST_VERSION,
  };
}

/** A file written under a temporary name, to be renamed over its target or removed. */
interface Staged {
  info: { records: number; sha256: string; bytes: number };
  commit(): Promise<void>;
  discard(): Promise<void>;
}

/**
 * Write `lines` to `<path>.tmp-<random>` (hashing them), fsync it. On any error the temporary
 * file is removed and the error rethrown.
 */
async function stage(
  path: string,
  lines: AsyncIterable<string> | Iterable<string>,
  options: { signal?: AbortSignal },
): Promise<Staged> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
  const hash = createHash("sha256"), enc = new TextEncoder();
  let records = 0, bytes = 0, buffered: string[] = [], size = 0;
  const flush = async () => {
    const chunk = enc.encode(buffered.join(""));
    buffered = [];
    size = 0;
    hash.update(chunk);
    bytes += chunk.length;
    for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
  };
  try {
    for await (const line of lines) {
      options.signal?.throwIfAborted();
      buffered.push(line);
      size += line.length;
      records++;
      if (size >= 1 << 20) await flush();
    }
    await flush();
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  return {
    info: { records, sha256: hash.digest("hex"), bytes },
    commit: () => Deno.rename(tmp, path),
    discard: () => Deno.remove(tmp).catch(() => {}),
  };
}

/** Make the renames durable (best effort: not every platform can fsync a directory). */
async function syncDir(dir: string): Promise<void> {
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Directory fsync is not available here; the renames are still atomic.
  }
}
