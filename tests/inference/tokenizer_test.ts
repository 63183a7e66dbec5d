import assert from "node:assert/strict";
import { join } from "node:path";
import { HfTokenizer, loadTokenizer } from "../../inference/tokenizer.ts";
import { sharedDataPath } from "../_helpers.ts";

const GPT2_DIR = sharedDataPath("tokenizers/gpt2");
const ENDOFTEXT = 50256;

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

const gpt2Json = await readJson(join(GPT2_DIR, "tokenizer.json"));
const gpt2Config = await readJson(join(GPT2_DIR, "tokenizer_config.json"));

interface ConformanceInput {
  id: string;
  text: string;
}

interface ConformanceReference {
  id: string;
  input_ids: number[];
  tokens: string[];
  decoded_with_special: string;
  decoded_skip_special: string;
}

/** The conformance inputs joined with their HF transformers references, by id. */
async function conformanceCases(): Promise<(ConformanceInput & ConformanceReference)[]> {
  const inputs = await readJson(sharedDataPath("tokenizers/conformance/inputs.json")) as unknown;
  const reference = await readJson(sharedDataPath("tokenizers/conformance/gpt2_multilingual.json"));
  const byId = new Map(
    (reference.entries as ConformanceReference[]).map((entry) => [entry.id, entry]),
  );
  return (inputs as ConformanceInput[]).map((input) => {
    const ref = byId.get(input.id);
    assert.ok(ref, `no reference for conformance input ${input.id}`);
    return { ...input, ...ref };
  });
}

const CHATML = "{% for message in messages %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const CHAT = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "What is 2+2?" },
];

const CHATML_PROMPT = "<|im_start|>system\nYou are terse.<|im_end|>\n" +
  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n" +
  "<|im_start|>assistant\n";

/** A tiny BPE tokenizer.json: <s>=0, </s>=1, <pad>=2, h=3, i=4, hi=5. */
function tinyTokenizerJson(postProcessor: object | null): object {
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    added_tokens: [special(0, "<s>"), special(1, "</s>"), special(2, "<pad>")],
    normalizer: null,
    pre_tokenizer: { type: "WhitespaceSplit" },
    post_processor: postProcessor,
    decoder: null,
    model: {
      type: "BPE",
      vocab: { "<s>": 0, "</s>": 1, "<pad>": 2, h: 3, i: 4, hi: 5 },
      merges: ["h i"],
    },
  };
}

/** A TemplateProcessing post-processor that puts <s> before the sequence. */
const BOS_TEMPLATE = {
  type: "TemplateProcessing",
  single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
  pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, {
    Sequence: { id: "B", type_id: 1 },
  }],
  special_tokens: { "<s>": { id: "<s>", ids: [0], tokens: ["<s>"] } },
};

const TINY_CONFIG = { bos_token: "<s>", eos_token: "</s>", pad_token: "<pad>" };

/** Runs `fn` on a fresh temporary directory holding gpt2's tokenizer.json, then removes it. */
async function withGpt2Dir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tokenizer_test_" });
  try {
    await Deno.copyFile(join(GPT2_DIR, "tokenizer.json"), join(dir, "tokenizer.json"));
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(value));
}

Deno.test("HfTokenizer matches the 83 GPT-2 conformance ids", async () => {
  const tokenizer = await loadTokenizer(GPT2_DIR);
  const cases = await conformanceCases();
  assert.equal(cases.length, 83);
  let matched = 0;
  for (const c of cases) {
    const ids = tokenizer.encode(c.text);
    assert.deepEqual(ids, c.input_ids, `ids of ${c.id}`);
    assert.deepEqual(ids.map((id) => tokenizer.idToToken(id)), c.tokens, `tokens of ${c.id}`);
    matched++;
  }
  assert.equal(matched, 83);
});

Deno.test("HfTokenizer decodes the 83 GPT-2 conformance ids back to the reference text", async () => {
  const tokenizer = await loadTokenizer(GPT2_DIR);
  const cases = await conformanceCases();
  assert.equal(cases.length, 83);
  for (const c of cases) {
    const withSpecial = tokenizer.decode(c.input_ids, { skipSpecialTokens: false });
    assert.equal(withSpecial, c.decoded_with_special, `decode of ${c.id}`);
    assert.equal(tokenizer.decode(c.input_ids), c.decoded_skip_special, `skip decode of ${c.id}`);
    assert.equal(withSpecial, c.text, `round trip of ${c.id}`);
  }
});

Deno.test("loadTokenizer on gpt2 adds no BOS and takes BOS and EOS from <|endoftext|>", async () => {
  const tokenizer = await loadTokenizer(GPT2_DIR);
  assert.deepEqual(tokenizer.encode("Hello world"), [15496, 995]);
  assert.equal(tokenizer.bosTokenId, ENDOFTEXT);
  assert.deepEqual(tokenizer.eosTokenIds, [ENDOFTEXT]);
  assert.equal(tokenizer.padTokenId, undefined);
  assert.equal(tokenizer.vocabSize, 50257);
  assert.equal(tokenizer.chatTemplate, undefined);
});

Deno.test("tokenToId finds vocabulary and added tokens, and undefined otherwise", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, gpt2Config);
  assert.equal(tokenizer.tokenToId("Ġworld"), 995);
  assert.equal(tokenizer.tokenToId("<|endoftext|>"), ENDOFTEXT);
  assert.equal(tokenizer.tokenToId("not a token at all"), undefined);
});

Deno.test("an added token inside the text encodes to its single id", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, gpt2Config);
  assert.deepEqual(tokenizer.encode("Hello<|endoftext|> world"), [15496, ENDOFTEXT, 995]);
});

Deno.test("decode drops special tokens unless skipSpecialTokens is false", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, gpt2Config);
  const ids = [15496, ENDOFTEXT, 995];
  assert.equal(tokenizer.decode(ids), "Hello world");
  assert.equal(tokenizer.decode(ids, { skipSpecialTokens: false }), "Hello<|endoftext|> world");
});

Deno.test("decode keeps spaces before punctuation (no clean_up_tokenization_spaces)", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, gpt2Config);
  const text = "x != y , and I 'm here .";
  assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
});

Deno.test("decode of no ids is empty and ids without a token are dropped", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, gpt2Config);
  assert.equal(tokenizer.decode([]), "");
  assert.equal(tokenizer.decode([15496, 50300, 995]), "Hello world");
  assert.throws(() => tokenizer.decode([15496, 1.5]), /ids\[1\] must be an integer/);
});

Deno.test("encode adds BOS when add_bos_token is true, unless addSpecialTokens is false", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, { ...gpt2Config, add_bos_token: true });
  assert.deepEqual(tokenizer.encode("Hello world"), [ENDOFTEXT, 15496, 995]);
  assert.deepEqual(tokenizer.encode("Hello world", { addSpecialTokens: false }), [15496, 995]);
});

Deno.test("the post-processor adds BOS when the config has no add_bos_token", () => {
  const tokenizer = HfTokenizer.fromJson(tinyTokenizerJson(BOS_TEMPLATE), TINY_CONFIG);
  assert.deepEqual(tokenizer.encode("hi h"), [0, 5, 3]);
  assert.deepEqual(tokenizer.encode("hi h", { addSpecialTokens: false }), [5, 3]);
  assert.equal(tokenizer.bosTokenId, 0);
  assert.equal(tokenizer.padTokenId, 2);
  assert.deepEqual(tokenizer.eosTokenIds, [1]);
});

Deno.test("add_bos_token: false overrides a post-processor that adds BOS", () => {
  const config = { ...TINY_CONFIG, add_bos_token: false };
  const tokenizer = HfTokenizer.fromJson(tinyTokenizerJson(BOS_TEMPLATE), config);
  assert.deepEqual(tokenizer.encode("hi"), [5]);
});

Deno.test("add_bos_token and add_eos_token add BOS once and EOS at the end", () => {
  const config = { ...TINY_CONFIG, add_bos_token: true, add_eos_token: true };
  const tokenizer = HfTokenizer.fromJson(tinyTokenizerJson(BOS_TEMPLATE), config);
  assert.deepEqual(tokenizer.encode("hi"), [0, 5, 1]);
  assert.deepEqual(tokenizer.encode("hi", { addSpecialTokens: false }), [5]);
});

Deno.test("special tokens in AddedToken form ({content}) resolve to their ids", () => {
  const config = {
    bos_token: { content: "<s>", lstrip: false, rstrip: false, special: true },
    eos_token: { content: "</s>" },
    pad_token: null,
    add_bos_token: true,
  };
  const tokenizer = HfTokenizer.fromJson(tinyTokenizerJson(null), config);
  assert.equal(tokenizer.bosTokenId, 0);
  assert.deepEqual(tokenizer.eosTokenIds, [1]);
  assert.equal(tokenizer.padTokenId, undefined);
  assert.deepEqual(tokenizer.encode("hi"), [0, 5]);
});

Deno.test("eosTokenIds merges eos_token with generation and model configs, without repeats", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, gpt2Config, {
    generationConfig: { eos_token_id: [ENDOFTEXT, 198] },
    modelConfig: { eos_token_id: 13 },
  });
  assert.deepEqual(tokenizer.eosTokenIds, [ENDOFTEXT, 198, 13]);
});

Deno.test("loadTokenizer merges eos_token_id from generation_config.json and config.json", async () => {
  await withGpt2Dir(async (dir) => {
    await writeJson(join(dir, "tokenizer_config.json"), gpt2Config);
    await writeJson(join(dir, "generation_config.json"), { eos_token_id: 198 });
    await writeJson(join(dir, "config.json"), { eos_token_id: [13, ENDOFTEXT] });
    const tokenizer = await loadTokenizer(dir);
    assert.deepEqual(tokenizer.eosTokenIds, [ENDOFTEXT, 198, 13]);
  });
});

Deno.test("applyChatTemplate renders a ChatML chat with the generation prompt", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, { ...gpt2Config, chat_template: CHATML });
  assert.equal(tokenizer.applyChatTemplate(CHAT, { addGenerationPrompt: true }), CHATML_PROMPT);
  assert.equal(
    tokenizer.applyChatTemplate(CHAT),
    CHATML_PROMPT.slice(0, -"<|im_start|>assistant\n".length),
  );
});

Deno.test("applyChatTemplate passes the special tokens to the template", () => {
  const template =
    "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}";
  const tokenizer = HfTokenizer.fromJson(tinyTokenizerJson(null), {
    ...TINY_CONFIG,
    chat_template: template,
  });
  assert.equal(tokenizer.applyChatTemplate([{ role: "user", content: "hi" }]), "<s>hi</s>");
});

Deno.test("a chat_template list uses the template named 'default'", () => {
  const tokenizer = HfTokenizer.fromJson(gpt2Json, {
    ...gpt2Config,
    chat_template: [
      { name: "tool_use", template: "tools" },
      { name: "default", template: CHATML },
    ],
  });
  assert.equal(tokenizer.applyChatTemplate(CHAT, { addGenerationPrompt: true }), CHATML_PROMPT);
});

Deno.test("chat_template.jinja takes precedence over tokenizer_config.json's chat_template", async () => {
  await withGpt2Dir(async (dir) => {
    await writeJson(join(dir, "tokenizer_config.json"), {
      ...gpt2Config,
      chat_template: "from tokenizer_config",
    });
    const tokenizer = await loadTokenizer(dir);
    assert.equal(tokenizer.applyChatTemplate(CHAT), "from tokenizer_config");
    await Deno.writeTextFile(join(dir, "chat_template.jinja"), CHATML);
    const withFile = await loadTokenizer(dir);
    assert.equal(withFile.applyChatTemplate(CHAT, { addGenerationPrompt: true }), CHATML_PROMPT);
  });
});

Deno.test("loadTokenizer names the missing tokenizer.json by its full path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tokenizer_test_" });
  try {
    await assert.rejects(
      () => loadTokenizer(dir),
      (error: Error) => {
        assert.equal(
          error.message,
          `Cannot load tokenizer: ${join(dir, "tokenizer.json")} does not exist`,
        );
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTokenizer names the file that is not valid JSON", async () => {
  await withGpt2Dir(async (dir) => {
    const path = join(dir, "tokenizer_config.json");
    await Deno.writeTextFile(path, "{ not json");
    await assert.rejects(() => loadTokenizer(dir), (error: Error) => {
      assert.ok(error.message.startsWith(`Cannot load tokenizer: ${path} is not valid JSON: `));
      return true;
    });
  });
});

Deno.test("loadTokenizer names the config whose bos_token is not in the vocabulary", async () => {
  await withGpt2Dir(async (dir) => {
    await writeJson(join(dir, "tokenizer_config.json"), { bos_token: "<nope>" });
    await assert.rejects(() => loadTokenizer(dir), (error: Error) => {
      assert.match(error.message, /bos_token '<nope>'/);
      assert.ok(error.message.includes(join(dir, "tokenizer_config.json")));
      return true;
    });
  });
});

Deno.test("applyChatTemplate without a template names the model directory", async () => {
  await withGpt2Dir(async (dir) => {
    const tokenizer = await loadTokenizer(dir);
    assert.throws(() => tokenizer.applyChatTemplate(CHAT), (error: Error) => {
      assert.ok(
        error.message.startsWith(`Cannot apply chat template: ${dir} has no chat template`),
      );
      return true;
    });
  });
});

Deno.test("a chat template that fails names the model directory and the template's message", async () => {
  await withGpt2Dir(async (dir) => {
    await Deno.writeTextFile(
      join(dir, "chat_template.jinja"),
      "{{ raise_exception('roles must alternate') }}",
    );
    const tokenizer = await loadTokenizer(dir);
    assert.throws(
      () => tokenizer.applyChatTemplate(CHAT),
      (error: Error) =>
        error.message.includes(dir) && error.message.includes("roles must alternate"),
    );
  });
});
