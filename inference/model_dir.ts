/**
 * Model directories as Hugging Face optimum and transformers.js lay them out: which ONNX file
 * to open, its external data, and the JSON configs beside it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** Weight formats a directory may hold. */
export type Dtype = "fp32" | "fp16" | "q4" | "q8";

/** File name of each dtype (transformers.js naming). */
export const DTYPE_FILES: Readonly<Record<Dtype, string>> = {
  fp32: "model.onnx",
  fp16: "model_fp16.onnx",
  q4: "model_q4.onnx",
  q8: "model_quantized.onnx",
};

/** The optimum merged decoder (with a `use_cache_branch` input). */
export const MERGED_DECODER = "decoder_model_merged.onnx";

/** What {@linkcode resolveModelDir} found. */
export interface ModelFiles {
  /** The directory given. */
  dir: string;
  /** The ONNX graph to open. */
  onnxPath: string;
  /** External-data files the graph names (all exist). */
  externalData: string[];
  /** Parsed `config.json`, if present. */
  config?: Record<string, unknown>;
  /** Parsed `genai_config.json` (ONNX Runtime GenAI), if present. */
  genaiConfig?: Record<string, unknown>;
  /** Parsed `generation_config.json`, if present. */
  generationConfig?: Record<string, unknown>;
}

/**
 * Pick the ONNX file of a model directory and check that what it needs is there.
 *
 * Looks at the root and under `onnx/`. With `dtype`, takes that dtype's file; without, takes
 * the only ONNX file there is, else `model.onnx`.
 *
 * @param dir The model directory.
 * @param options `dtype` to choose among several files.
 * @returns The files, configs parsed.
 * @throws Error naming the directory and what was expected when something is missing.
 */
export async function resolveModelDir(
  dir: string,
  options: { dtype?: Dtype } = {},
): Promise<ModelFiles> {
  const stat = await Deno.stat(dir).catch(() => undefined);
  if (!stat?.isDirectory) {
    throw new Error(`Cannot load model: ${dir} is not a directory`);
  }
  const found = [...await listOnnx(dir), ...await listOnnx(join(dir, "onnx"))];
  const onnxPath = pickOnnx(dir, found, options.dtype);
  const externalData = await checkExternalData(onnxPath);
  return {
    dir,
    onnxPath,
    externalData,
    config: await readJsonIfAny(join(dir, "config.json")),
    genaiConfig: await readJsonIfAny(join(dir, "genai_config.json")),
    generationConfig: await readJsonIfAny(join(dir, "generation_config.json")),
  };
}

/** A model's context: the most positions (tokens) one sequence may take, and where it was read. */
export interface ContextLength {
  /** Tokens. */
  tokens: number;
  /** The config field it came from, e.g. "config.json max_position_embeddings". */
  source: string;
}

/** config.json fields that declare the context, in the order they are tried. */
const CONTEXT_FIELDS = ["max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"];

/**
 * The context a model directory's configs declare (`config.json` as transformers writes it,
 * else `genai_config.json` `model.context_length`).
 *
 * @param files The resolved directory.
 * @returns The context, or undefined when no config declares one (then nothing is enforced).
 * @throws RangeError When a config declares it as something other than a positive integer.
 */
export function contextLengthOf(files: ModelFiles): ContextLength | undefined {
  const positive = (v: unknown, where: string): v is number => {
    if (v === undefined || v === null) return false;
    if (typeof v === "number" && Number.isInteger(v) && v > 0) return true;
    throw new RangeError(
      `Cannot load model ${files.dir}: ${where} must be a positive integer (the context in tokens): got ${
        JSON.stringify(v)
      }`,
    );
  };
  for (const field of CONTEXT_FIELDS) {
    const v = files.config?.[field];
    if (positive(v, `config.json '${field}'`)) return { tokens: v, source: `config.json ${field}` };
  }
  const model = files.genaiConfig?.model as Record<string, unknown> | undefined;
  const g = model?.context_length;
  if (positive(g, "genai_config.json 'model.context_length'")) {
    return { tokens: g, source: "genai_config.json model.context_length" };
  }
  return undefined;
}

async function listOnnx(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".onnx")) out.push(join(dir, e.name));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

function pickOnnx(dir: string, found: string[], dtype: Dtype | undefined): string {
  const names = found.map((p) => p.slice(dir.length + 1));
  if (dtype !== undefined) {
    if (!(dtype in DTYPE_FILES)) {
      throw new RangeError(
        `Cannot load model as 'dtype' must be one of ${
          Object.keys(DTYPE_FILES).join(", ")
        }: current value is ${dtype}`,
      );
    }
    const want = DTYPE_FILES[dtype];
    const hit = found.find((p) => p.endsWith(`/${want}`));
    if (!hit) {
      throw new Error(
        `Cannot load model: --dtype ${dtype} expects ${want} in ${dir} or ${
          join(dir, "onnx")
        }; found ${names.length ? names.join(", ") : "no .onnx file"}`,
      );
    }
    return hit;
  }
  if (found.length === 1) return found[0];
  const preferred = [DTYPE_FILES.fp32, MERGED_DECODER];
  for (const want of preferred) {
    const hit = found.find((p) => p.endsWith(`/${want}`));
    if (hit) return hit;
  }
  if (found.length === 0) {
    throw new Error(
      `Cannot load model: no .onnx file in ${dir} or ${join(dir, "onnx")} (expected ${
        Object.values(DTYPE_FILES).join(", ")
      } or ${MERGED_DECODER})`,
    );
  }
  throw new Error(
    `Cannot load model: ${dir} holds several ONNX files (${
      names.join(", ")
    }) and none is model.onnx; choose one with --dtype fp32|fp16|q4|q8`,
  );
}

/**
 * External-data file names referenced by an ONNX graph: the `location` entries of its
 * tensors' `external_data`, read straight from the protobuf bytes.
 *
 * @param bytes The `.onnx` file's bytes.
 * @returns Distinct locations, in order of appearance.
 */
export function externalDataLocations(bytes: Uint8Array): string[] {
  // StringStringEntryProto { key = 1: "location", value = 2: <path> }:
  // 0x0a 0x08 "location" 0x12 <varint len> <path bytes>
  const key = [0x0a, 0x08, ...new TextEncoder().encode("location"), 0x12];
  const out = new Set<string>();
  const dec = new TextDecoder();
  outer: for (let i = 0; i + key.length < bytes.length; i++) {
    for (let j = 0; j < key.length; j++) if (bytes[i + j] !== key[j]) continue outer;
    let p = i + key.length;
    let len = 0;
    let shift = 0;
    while (p < bytes.length) {
      const b = bytes[p++];
      len |= (b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    if (len > 0 && p + len <= bytes.length) out.add(dec.decode(bytes.subarray(p, p + len)));
  }
  return [...out];
}

const EXTERNAL_SCAN_LIMIT = 256 * 1024 * 1024;

async function checkExternalData(onnxPath: string): Promise<string[]> {
  const { size } = await Deno.stat(onnxPath);
  if (size > EXTERNAL_SCAN_LIMIT) return []; // weights inside the graph: nothing external
  const locations = externalDataLocations(await Deno.readFile(onnxPath));
  const base = onnxPath.slice(0, onnxPath.lastIndexOf("/"));
  const paths = locations.map((loc) => join(base, loc));
  for (const p of paths) {
    const st = await Deno.stat(p).catch(() => undefined);
    if (!st?.isFile) {
      throw new Error(
        `Cannot load model ${onnxPath}: its weights are in external data file ${p}, which is missing`,
      );
    }
  }
  return paths;
}

/**
 * Read and parse a JSON file, or undefined if it does not exist.
 *
 * @throws SyntaxError naming the file when it is not valid JSON.
 */
export async function readJsonIfAny(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Cannot parse ${path}: ${(e as Error).message}`);
  }
}

/**
 * A short digest of a model directory's weights: SHA-256 over every `.onnx`, `.onnx.data` and
 * `.onnx_data` file at its root and under `onnx/` (each file hashed whole, streamed, so a
 * model of several GB is never held in memory), first 8 bytes in hex. Runs and evaluation
 * journals store it, so that other weights under the same directory name (a model retrained
 * in place) are not taken for the ones a stored result came from. A URL (a remote backend,
 * whose weights cannot be read) is returned as it is, as is a location with no ONNX file.
 *
 * About 0.5 s per GB here (SHA-NI; the files are usually in the page cache after loading).
 *
 * @param location A model directory or a server URL.
 * @returns 16 hex digits, or `location` itself.
 */
export async function weightsDigest(location: string): Promise<string> {
  if (/^https?:\/\//i.test(location)) return location;
  const parts: string[] = [];
  for (const sub of ["", "onnx/"]) {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(join(location, sub))) {
        if (e.isFile && /\.onnx(\.data|_data)?$/.test(e.name)) names.push(e.name);
      }
    } catch {
      continue; // no such folder
    }
    for (const name of names.sort()) {
      parts.push(`${sub}${name}:${await fileSha256(join(location, sub, name))}`);
    }
  }
  if (!parts.length) return location;
  return createHash("sha256").update(parts.join("\n")).digest("hex").slice(0, 16);
}

/**
 * SHA-256 of a file in hex, read in 4 MiB pieces (never the whole file in memory).
 *
 * @param path The file.
 * @returns 64 hex digits.
 */
export async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  const buf = new Uint8Array(4 << 20);
  for (let n = await f.read(buf); n !== null; n = await f.read(buf)) h.update(buf.subarray(0, n));
  return h.digest("hex");
}
