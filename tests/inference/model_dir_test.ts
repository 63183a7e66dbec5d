import assert from "node:assert/strict";
import { externalDataLocations, OnnxCausalLM, resolveModelDir } from "../../inference/mod.ts";
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
