import assert from "node:assert/strict";
import {
  externalDataLocations,
  OnnxCausalLM,
  resolveModelDir,
  weightsDigest,
} from "../../inference/mod.ts";
import { copyFixture, sharedDataPath, testdataPath } from "../_helpers.ts";

Deno.test("the ONNX Runtime GenAI layout is rejected with a message that says so", async () => {
  await assert.rejects(
    () => OnnxCausalLM.load(sharedDataPath("models/tiny-random-gpt2-fp32")),
    /past\.onnx: it has the ONNX Runtime GenAI input layout \(past_0.*not supported/,
  );
});

Deno.test("a path that is not a directory is named in the error", async () => {
  await assert.rejects(
    () => resolveModelDir("/nonexistent/model"),
    /\/nonexistent\/model is not a directory/,
  );
});

Deno.test("an empty directory: no .onnx file, and the expected names", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(() => resolveModelDir(dir), /no \.onnx file in .*model\.onnx/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--dtype picks its file under onnx/ and names the missing one", async () => {
  const dir = testdataPath("models/decoder-fp16");
  assert.match((await resolveModelDir(dir, { dtype: "fp16" })).onnxPath, /onnx\/model_fp16\.onnx$/);
  assert.match((await resolveModelDir(dir, { dtype: "fp32" })).onnxPath, /onnx\/model\.onnx$/);
  assert.match((await resolveModelDir(dir)).onnxPath, /onnx\/model\.onnx$/);
  await assert.rejects(
    () => resolveModelDir(dir, { dtype: "q4" }),
    /--dtype q4 expects model_q4\.onnx .*found onnx\/model\.onnx, onnx\/model_fp16\.onnx/,
  );
});

Deno.test("external data locations are read from the graph and a missing file is named", async () => {
  const bytes = await Deno.readFile(testdataPath("models/decoder-external/model.onnx"));
  assert.deepEqual(externalDataLocations(bytes), ["model.onnx.data"]);
  await using copy = await copyFixture("models/decoder-external");
  await Deno.remove(`${copy.dir}/model.onnx.data`);
  await assert.rejects(
    () => resolveModelDir(copy.dir),
    /external data file .*model\.onnx\.data, which is missing/,
  );
});

Deno.test("a config.json that disagrees with the graph is named with both values", async () => {
  await using copy = await copyFixture("models/decoder-fp32");
  const path = `${copy.dir}/config.json`;
  const config = JSON.parse(await Deno.readTextFile(path));
  await Deno.writeTextFile(path, JSON.stringify({ ...config, num_key_value_heads: 7 }));
  await assert.rejects(
    () => OnnxCausalLM.load(copy.dir),
    /config\.json num_key_value_heads is 7 but the graph has 2/,
  );
});

Deno.test("a classification graph is not accepted as a policy", async () => {
  await assert.rejects(
    () => OnnxCausalLM.load(testdataPath("models/reward-paper-2")),
    /expected KV-cache inputs past_key_values/,
  );
});

Deno.test("an invalid config.json is named with the parse error", async () => {
  await using copy = await copyFixture("models/decoder-fp32");
  await Deno.writeTextFile(`${copy.dir}/config.json`, "{ not json");
  await assert.rejects(() => resolveModelDir(copy.dir), /Cannot parse .*config\.json/);
});

Deno.test("a missing tokenizer.json is named", async () => {
  await using copy = await copyFixture("models/decoder-fp32");
  await Deno.remove(`${copy.dir}/tokenizer.json`);
  const { OnnxPolicy } = await import("../../inference/mod.ts");
  await assert.rejects(() => OnnxPolicy.load(copy.dir), /tokenizer\.json does not exist/);
});

/** The digest as the eval journal first computed it: each file read whole, hashed by WebCrypto. */
async function referenceDigest(dir: string): Promise<string> {
  const hex = (b: ArrayBuffer) =>
    [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
  const parts: string[] = [];
  for (const sub of ["", "onnx/"]) {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(`${dir}/${sub}`)) {
        if (e.isFile && /\.onnx(\.data|_data)?$/.test(e.name)) names.push(e.name);
      }
    } catch {
      continue;
    }
    for (const n of names.sort()) {
      parts.push(
        `${sub}${n}:${
          hex(await crypto.subtle.digest("SHA-256", await Deno.readFile(`${dir}/${sub}${n}`)))
        }`,
      );
    }
  }
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\n"))))
    .slice(0, 16);
}

Deno.test("weightsDigest: streamed, equal to the whole-file digest journals hold, and moved by one changed byte", async () => {
  for (const rel of ["models/decoder-external", "models/decoder-fp16"]) {
    assert.equal(await weightsDigest(testdataPath(rel)), await referenceDigest(testdataPath(rel)));
  }
  await using copy = await copyFixture("models/decoder-external");
  const before = await weightsDigest(copy.dir);
  // A copy elsewhere is the same model; the name of the folder does not enter the digest.
  assert.equal(before, await weightsDigest(testdataPath("models/decoder-external")));
  assert.match(before, /^[0-9a-f]{16}$/);
  // One weight changed in the external data file: another digest.
  const path = `${copy.dir}/model.onnx.data`;
  const bytes = await Deno.readFile(path);
  bytes[bytes.length >> 1] ^= 1;
  await Deno.writeFile(path, bytes);
  assert.notEqual(await weightsDigest(copy.dir), before);
  // Tokenizer and config files are not weights.
  await Deno.writeTextFile(`${copy.dir}/notes.txt`, "x");
  assert.equal(await weightsDigest(copy.dir), await referenceDigest(copy.dir));
});

Deno.test("weightsDigest: a server URL, or a folder with no ONNX file, stands for itself", async () => {
  assert.equal(await weightsDigest("http://127.0.0.1:8000/"), "http://127.0.0.1:8000/");
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await weightsDigest(dir), dir);
  } finally {
    await Deno.remove(dir);
  }
});
