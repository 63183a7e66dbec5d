/**
 * The benchmark model: random weights in the exact Qwen2.5-0.5B geometry, fp32, built by
 * `scripts/build_bench_model.py` into `.bench/` (ignored by git) when it is missing.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { progress } from "./_stats.ts";

/** Directory of the bench model (ONNX under `onnx/`). */
export const BENCH_MODEL_DIR = fileURLToPath(
  new URL("../.bench/qwen2.5-0.5b-geometry", import.meta.url),
);

/** The graph file. */
export const BENCH_MODEL_ONNX = `${BENCH_MODEL_DIR}/onnx/model.onnx`;

/** The external weight file. */
export const BENCH_MODEL_DATA = `${BENCH_MODEL_DIR}/onnx/model.onnx_data`;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Build the bench model unless it is there (about 3 minutes and 7 GB of RAM).
 *
 * @returns The model directory.
 * @throws Error when the build script fails.
 */
export async function ensureBenchModel(): Promise<string> {
  const files = [BENCH_MODEL_ONNX, BENCH_MODEL_DATA, `${BENCH_MODEL_DIR}/tokenizer.json`];
  if ((await Promise.all(files.map(exists))).every(Boolean)) {
    if (await builtAttention() === BENCH_ATTENTION) return BENCH_MODEL_DIR;
    progress(
      `bench model in ${BENCH_MODEL_DIR} was exported with another attention layout: rebuilding`,
    );
  }
  const script = fileURLToPath(new URL("../scripts/build_bench_model.py", import.meta.url));
  progress(
    `bench model missing: building ${BENCH_MODEL_DIR} with ${script} (about 3 minutes, 7 GB RAM)`,
  );
  const child = new Deno.Command("/usr/bin/python3", {
    args: [script, "--out", BENCH_MODEL_DIR],
    stdout: "piped", // to our stderr: stdout carries only the result tables
    stderr: "inherit",
  }).spawn();
  await child.stdout.pipeTo(Deno.stderr.writable, { preventClose: true });
  const out = await child.status;
  if (!out.success) {
    throw new Error(`Cannot build the bench model: ${script} exited with code ${out.code}`);
  }
  return BENCH_MODEL_DIR;
}

/**
 * The exporter's attention layout the bench model must have ("grouped": each KV head read
 * once; models built before it repeated K and V per query head, and their batched steps
 * cost twice as much). Matches BENCH_ATTENTION in scripts/build_bench_model.py.
 */
const BENCH_ATTENTION = "grouped";

async function builtAttention(): Promise<string | undefined> {
  try {
    const info = JSON.parse(await Deno.readTextFile(`${BENCH_MODEL_DIR}/build_info.json`));
    return typeof info.attention === "string" ? info.attention : undefined;
  } catch {
    return undefined;
  }
}

/** Bytes of the weight file (what one decode step reads, see BENCHMARKS.md). */
export async function weightBytes(): Promise<number> {
  return (await Deno.stat(BENCH_MODEL_DATA)).size;
}
