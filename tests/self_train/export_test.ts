import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { z } from "zod";
import { paperPrompt } from "../../reward/mod.ts";
import {
  ARBORIST_VERSION,
  type ExportManifest,
  exportRewardSamples,
  readPrm800k,
  type RewardSample,
  toOpenRlhf,
  toPaper,
  toTrl,
  treeSamples,
} from "../../self_train/mod.ts";
import { sharedDataPath } from "../_helpers.ts";
import { scriptedAnnotation } from "./_fixtures.ts";

const PHASE1 = sharedDataPath("prm800k/phase1_test.jsonl");

const trlLine = z.strictObject({
  prompt: z.string().min(1),
  completions: z.array(z.string()).min(1),
  labels: z.array(z.boolean()).min(1),
}).refine((r) => r.completions.length === r.labels.length, "one label per completion");

const trlSoftLine = z.strictObject({
  prompt: z.string(),
  completions: z.array(z.string()).min(1),
  labels: z.array(z.number().min(0).max(1)).min(1),
}).refine((r) => r.completions.length === r.labels.length, "one label per completion");

const placeholders = (s: string) => s.split(" ки").length - 1;
const openrlhfLine = z.strictObject({
  input: z.string(),
  label: z.union([z.array(z.enum(["+", "-"])).min(1), z.array(z.number().min(0).max(1)).min(1)]),
}).refine((r) => placeholders(r.input) === r.label.length, "one label per placeholder");

const paperLine = z.strictObject({
  input: z.string().startsWith("Question:\n"),
  label: z.number().min(0).max(1),
});

const manifestSchema = z.strictObject({
  kind: z.string(),
  format: z.enum(["trl", "openrlhf", "paper", "sft"]),
  created_at: z.iso.datetime(),
  source: z.string(),
  seed: z.number().nullable(),
  model_ids: z.record(z.string(), z.string().nullable()),
  options: z.record(z.string(), z.unknown()),
  files: z.array(z.strictObject({
    name: z.string(),
    records: z.int(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    bytes: z.int(),
  })).length(1),
  counts: z.record(z.string(), z.record(z.string(), z.int())),
  duplicates: z.int(),
  arborist_version: z.string(),
});

/** Read an export folder: the manifest (checked) and the data lines. */
async function readExport(
  dir: string,
): Promise<{ manifest: ExportManifest; lines: unknown[]; raw: Uint8Array }> {
  const manifest = manifestSchema.parse(
    JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`)),
  ) as ExportManifest;
  const raw = await Deno.readFile(`${dir}/${manifest.files[0].name}`);
  const text = new TextDecoder().decode(raw);
  assert.ok(text.endsWith("\n") || text === "");
  const lines = text.split("\n").slice(0, -1).map((l) => JSON.parse(l));
  return { manifest, lines, raw };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Validate every line against `schema`, naming the line that fails. */
function validateLines(lines: unknown[], schema: z.ZodType): void {
  lines.forEach((l, i) => {
    const r = schema.safeParse(l);
    if (!r.success) assert.fail(`line ${i + 1}: ${z.prettifyError(r.error)}`);
  });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arborist-export-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const SAMPLE: RewardSample = {
  question: "What is 2+3?",
  previous: ["We add.", "2+3 is 6."],
  previousLabels: [1, 0],
  current: "No, 2+3=5.",
  label: 1,
  kind: "prm",
  source: "hand",
};

Deno.test("toTrl() maps a sample to prompt, completions and one label per completion", () => {
  assert.deepEqual(toTrl(SAMPLE), {
    prompt: "What is 2+3?",
    completions: ["We add.", "2+3 is 6.", "No, 2+3=5."],
    labels: [true, false, true],
  });
  const mc = { ...SAMPLE, previousLabels: [0.75, 0.4], label: 0.5 };
  assert.deepEqual(toTrl(mc).labels, [true, false, true]); // hard: >= 0.5
  assert.deepEqual(toTrl(mc, { labels: "soft" }).labels, [0.75, 0.4, 0.5]);
  const orm = { ...SAMPLE, previousLabels: undefined, kind: "orm" as const, label: 0 };
  assert.deepEqual(toTrl(orm), {
    prompt: "What is 2+3?",
    completions: ["We add.\n\n2+3 is 6.\n\nNo, 2+3=5."],
    labels: [false],
  });
});

Deno.test("toOpenRlhf() writes the Math-Shepherd layout with one label per placeholder", () => {
  assert.deepEqual(toOpenRlhf(SAMPLE), {
    input: "What is 2+3? We add. ки\n2+3 is 6. ки\nNo, 2+3=5. ки",
    label: ["+", "-", "+"],
  });
  assert.deepEqual(toOpenRlhf({ ...SAMPLE, label: 0.25 }, { labels: "soft" }).label, [1, 0, 0.25]);
  assert.deepEqual(
    toOpenRlhf(SAMPLE, { placeholder: "<s>", rewardTokens: ["good", "bad"] }),
    {
      input: "What is 2+3? We add. <s>\n2+3 is 6. <s>\nNo, 2+3=5. <s>",
      label: ["good", "bad", "good"],
    },
  );
  assert.throws(
    () => toOpenRlhf({ ...SAMPLE, current: "x ки y" }),
    /its text contains the placeholder 'ки'/,
  );
});

Deno.test("toPaper() is exactly the reference prompt", () => {
  assert.deepEqual(toPaper(SAMPLE), {
    input:
      "Question:\nWhat is 2+3?\n\nLet's break it down step by step!\n\nPrevious reasoning:\nWe add.\n\n2+3 is 6.\n\nNow, let's focus on the current step:\nNo, 2+3=5.",
    label: 1,
  });
  assert.equal(
    toPaper({ ...SAMPLE, previous: [], previousLabels: [] }).input,
    "Question:\nWhat is 2+3?\n\nLet's break it down step by step!\n\nNow, let's focus on the current step:\nNo, 2+3=5.\n",
  );
});

Deno.test("exportRewardSamples() PRM800K HRM in every format: valid lines, manifest matches", async () => {
  const samples = await collect(readPrm800k(PHASE1, { kind: "hrm" }));
  for (
    const [format, schema] of [["trl", trlLine], ["openrlhf", openrlhfLine], [
      "paper",
      paperLine,
    ]] as const
  ) {
    await withTempDir(async (dir) => {
      const m = await exportRewardSamples(samples, {
        out: dir,
        format,
        kind: "hrm",
        source: PHASE1,
        now: () => new Date("2025-01-02T03:04:05Z"),
      });
      const { manifest, lines, raw } = await readExport(dir);
      assert.deepEqual(manifest, m);
      validateLines(lines, schema);
      const f = manifest.files[0];
      assert.equal(f.name, "data.jsonl");
      assert.equal(f.sha256, createHash("sha256").update(raw).digest("hex"));
      assert.equal(f.bytes, raw.length);
      assert.equal(f.records, lines.length);
      assert.equal(lines.length + manifest.duplicates, samples.length);
      assert.equal(manifest.created_at, "2025-01-02T03:04:05.000Z");
      assert.equal(manifest.arborist_version, ARBORIST_VERSION);
      const byKind = manifest.counts.kind;
      assert.equal(byKind.prm + byKind["hrm-merged"], lines.length);
      assert.equal(manifest.counts.label["0"] + manifest.counts.label["1"], lines.length);
      assert.equal((await Array.fromAsync(Deno.readDir(dir))).length, 2); // no temp files
      if (format === "paper") {
        const first = samples[0];
        assert.deepEqual(lines[0], {
          input: paperPrompt(first.question, first.previous, first.current),
          label: first.label,
        });
      }
    });
  }
});

Deno.test("exportRewardSamples() drops repeated lines and counts them", async () => {
  await withTempDir(async (dir) => {
    const other = { ...SAMPLE, label: 0 };
    const m = await exportRewardSamples([SAMPLE, other, SAMPLE, SAMPLE, other], {
      out: dir,
      format: "paper",
      kind: "prm",
      source: "hand",
    });
    assert.equal(m.files[0].records, 2);
    assert.equal(m.duplicates, 3);
    assert.deepEqual(m.counts.label, { "1": 1, "0": 1 });
    const kept = await exportRewardSamples([SAMPLE, SAMPLE], {
      out: dir,
      format: "paper",
      kind: "prm",
      source: "hand",
      dedupe: false,
    });
    assert.equal(kept.files[0].records, 2);
  });
});

Deno.test("a half-written export never replaces a good one, and leaves no temp files", async () => {
  await withTempDir(async (dir) => {
    const good = await exportRewardSamples(readPrm800k(PHASE1, { kind: "prm" }), {
      out: dir,
      format: "trl",
      kind: "prm",
      source: PHASE1,
    });
    const before = {
      data: await Deno.readFile(`${dir}/data.jsonl`),
      manifest: await Deno.readTextFile(`${dir}/manifest.json`),
    };
    async function* failing(): AsyncGenerator<RewardSample> {
      let n = 0;
      for await (const s of readPrm800k(PHASE1, { kind: "hrm" })) {
        if (++n === 2500) throw new Error("disk on fire");
        yield s;
      }
    }
    await assert.rejects(
      exportRewardSamples(failing(), { out: dir, format: "trl", kind: "hrm", source: PHASE1 }),
      /disk on fire/,
    );
    const ac = new AbortController();
    let n = 0;
    await assert.rejects(
      exportRewardSamples(readPrm800k(PHASE1, { kind: "hrm" }), {
        out: dir,
        format: "paper",
        kind: "hrm",
        source: PHASE1,
        signal: ac.signal,
        onRecord: () => ++n === 100 && ac.abort(new Error("interrupted (Ctrl-C)")),
      }),
      /interrupted/,
    );
    assert.deepEqual(await Deno.readFile(`${dir}/data.jsonl`), before.data);
    assert.equal(await Deno.readTextFile(`${dir}/manifest.json`), before.manifest);
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(names, ["data.jsonl", "manifest.json"]);
    assert.equal(good.files[0].sha256, createHash("sha256").update(before.data).digest("hex"));
  });
});

Deno.test("a failed export removes the folders it created, and only those", async () => {
  await withTempDir(async (dir) => {
    // deno-lint-ignore require-yield -- a stream that fails before its first sample
    async function* failing(): AsyncGenerator<RewardSample> {
      throw new Error("disk on fire");
    }
    const opts = { format: "trl", kind: "prm", source: "x" } as const;
    await assert.rejects(exportRewardSamples(failing(), { ...opts, out: `${dir}/a/b` }), /fire/);
    await assert.rejects(Deno.stat(`${dir}/a`), Deno.errors.NotFound);
    await Deno.mkdir(`${dir}/kept`);
    await assert.rejects(exportRewardSamples(failing(), { ...opts, out: `${dir}/kept` }), /fire/);
    assert.ok((await Deno.stat(`${dir}/kept`)).isDirectory);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/kept`)), []);
  });
});

Deno.test("exportRewardSamples() of tree samples: soft labels in openrlhf and trl", async () => {
  const tree = await scriptedAnnotation();
  const samples = treeSamples(tree, { question: "What is 3 + 4?", merged: true, seed: 5 });
  assert.ok(samples.some((s) => s.label > 0 && s.label < 1));
  await withTempDir(async (dir) => {
    await exportRewardSamples(samples, {
      out: dir,
      format: "openrlhf",
      kind: "hrm",
      source: "t",
      labels: "soft",
    });
    const { manifest, lines } = await readExport(dir);
    validateLines(lines, openrlhfLine);
    assert.ok(
      lines.every((l) => (l as { label: unknown[] }).label.every((x) => typeof x === "number")),
    );
    assert.deepEqual(manifest.options, {
      labels: "soft",
      placeholder: "ки",
      reward_tokens: ["+", "-"],
    });
  });
  await withTempDir(async (dir) => {
    await exportRewardSamples(samples, {
      out: dir,
      format: "trl",
      kind: "hrm",
      source: "t",
      labels: "soft",
    });
    validateLines((await readExport(dir)).lines, trlSoftLine);
  });
});

Deno.test("exportRewardSamples() refuses an unknown format and a bad file name", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      exportRewardSamples([], { out: dir, format: "csv" as "trl", kind: "prm", source: "x" }),
      /'format' must be one of trl, openrlhf, paper: got 'csv'/,
    );
    await assert.rejects(
      exportRewardSamples([], {
        out: dir,
        format: "trl",
        kind: "prm",
        source: "x",
        fileName: "manifest.json",
      }),
      /choose a plain name other than manifest.json/,
    );
  });
});
