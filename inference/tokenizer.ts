/**
 * The Hugging Face tokenizer of a model directory: `tokenizer.json` through
 * `@huggingface/tokenizers`, special tokens from `tokenizer_config.json`, EOS ids merged from
 * `generation_config.json` and `config.json`, and the chat template (`chat_template.jinja`
 * or `tokenizer_config.json`'s `chat_template`) rendered with `@huggingface/jinja`.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer as LibTokenizer } from "@huggingface/tokenizers";
import { z } from "zod";
import type { ChatMessage, Tokenizer } from "./types.ts";

/** Options of {@linkcode HfTokenizer.fromJson}. */
export interface HfTokenizerOptions {
  /** A chat template that replaces the `chat_template` of the tokenizer config. */
  chatTemplate?: string;
  /** The parsed `generation_config.json`; its `eos_token_id` joins `eosTokenIds`. */
  generationConfig?: object;
  /** The parsed `config.json`; its `eos_token_id` joins `eosTokenIds`. */
  modelConfig?: object;
  /** The directory the files came from; error messages name files inside it. */
  source?: string;
}

const tokenSchema = z.union([z.string(), z.looseObject({ content: z.string() })]).nullish();

const tokenizerConfigSchema = z.looseObject({
  bos_token: tokenSchema,
  eos_token: tokenSchema,
  pad_token: tokenSchema,
  unk_token: tokenSchema,
  add_bos_token: z.boolean().nullish(),
  add_eos_token: z.boolean().nullish(),
  additional_special_tokens: z.array(tokenSchema).nullish(),
  extra_special_tokens: z.union([z.array(tokenSchema), z.record(z.string(), tokenSchema)])
    .nullish(),
  chat_template: z.union([
    z.string(),
    z.array(z.looseObject({ name: z.string(), template: z.string() })),
  ]).nullish(),
});

const tokenIdsSchema = z.union([z.number().int(), z.array(z.number().int())]).nullish();
const eosConfigSchema = z.looseObject({ eos_token_id: tokenIdsSchema });

const tokenizerJsonSchema = z.looseObject({
  model: z.looseObject({ type: z.string().optional() }),
  added_tokens: z.array(z.looseObject({ id: z.number().int(), content: z.string() })).nullish(),
});

type TokenizerConfig = z.infer<typeof tokenizerConfigSchema>;
type TokenValue = z.infer<typeof tokenSchema>;

/** Where each input came from, for error messages. */
interface Labels {
  /** True when the inputs came from fromJson rather than a directory. */
  inMemory: boolean;
  source: string;
  tokenizerJson: string;
  tokenizerConfig: string;
  generationConfig: string;
  modelConfig: string;
}

function labelsOf(source: string | undefined): Labels {
  if (source === undefined) {
    const arg = (name: string) => `the ${name} given to HfTokenizer.fromJson`;
    return {
      inMemory: true,
      source: "the tokenizer given to HfTokenizer.fromJson",
      tokenizerJson: arg("tokenizerJson"),
      tokenizerConfig: arg("tokenizerConfig"),
      generationConfig: arg("generationConfig"),
      modelConfig: arg("modelConfig"),
    };
  }
  return {
    inMemory: false,
    source,
    tokenizerJson: join(source, "tokenizer.json"),
    tokenizerConfig: join(source, "tokenizer_config.json"),
    generationConfig: join(source, "generation_config.json"),
    modelConfig: join(source, "config.json"),
  };
}

function parseWith<T extends z.ZodType>(schema: T, value: unknown, label: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new TypeError(
      `Cannot load tokenizer as ${label} is invalid: ${z.prettifyError(result.error)}`,
    );
  }
  return result.data;
}

function contentOf(token: TokenValue): string | undefined {
  return typeof token === "string" ? token : token?.content;
}

function idList(value: number | number[] | null | undefined): number[] {
  if (value === null || value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Strings of `additional_special_tokens` and `extra_special_tokens` (transformers 5). */
function extraSpecialTokens(config: TokenizerConfig): string[] {
  const extra = config.extra_special_tokens ?? [];
  const all = [
    ...(config.additional_special_tokens ?? []),
    ...(Array.isArray(extra) ? extra : Object.values(extra)),
  ];
  return [...new Set(all.map(contentOf).filter((t): t is string => t !== undefined))];
}

/** The chat template source, or a sentence that says why there is none. */
function pickChatTemplate(
  config: TokenizerConfig,
  override: string | undefined,
  labels: Labels,
): { template?: string; missing?: string } {
  if (override !== undefined) return { template: override };
  const value = config.chat_template;
  if (typeof value === "string") return { template: value };
  if (Array.isArray(value)) {
    const found = value.find((t) => t.name === "default");
    if (found) return { template: found.template };
    const names = value.map((t) => `'${t.name}'`).join(", ");
    return {
      missing:
        `${labels.tokenizerConfig} has chat templates named ${names} but none named 'default'`,
    };
  }
  const missing = labels.inMemory
    ? `${labels.source} has no chat template`
    : `${labels.source} has no chat template (neither chat_template.jinja nor a chat_template in tokenizer_config.json)`;
  return { missing };
}

function buildLibTokenizer(json: unknown, config: TokenizerConfig, labels: Labels): LibTokenizer {
  const parsed = parseWith(tokenizerJsonSchema, json, labels.tokenizerJson);
  const complete = {
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    ...parsed,
    added_tokens: parsed.added_tokens ?? [],
  };
  // The library reads special tokens from the config as plain strings.
  const libConfig = {
    ...config,
    bos_token: contentOf(config.bos_token),
    eos_token: contentOf(config.eos_token),
    pad_token: contentOf(config.pad_token),
    unk_token: contentOf(config.unk_token),
    additional_special_tokens: extraSpecialTokens(config),
  };
  try {
    return new LibTokenizer(complete, libConfig);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot load tokenizer from ${labels.tokenizerJson}: ${message}`, {
      cause: error,
    });
  }
}

/**
 * A {@linkcode Tokenizer} backed by a Hugging Face `tokenizer.json`.
 *
 * Special tokens follow the tokenizer config: when it has `add_bos_token` or `add_eos_token`
 * (Llama style), those flags decide what `encode` adds; otherwise the `post_processor` of
 * `tokenizer.json` does (GPT-2's adds nothing). `decode` never applies
 * `clean_up_tokenization_spaces`, so it is the exact inverse of `encode` on byte-level models.
 *
 * @example
 * ```ts
 * const tokenizer = await loadTokenizer("models/tiny");
 * const ids = tokenizer.encode("Hello world");
 * tokenizer.decode(ids); // "Hello world"
 * ```
 */
export class HfTokenizer implements Tokenizer {
  /** Ids that end generation: `eos_token`, then the generation config's and the model config's `eos_token_id`. */
  readonly eosTokenIds: readonly number[];
  /** The id of `bos_token`, if the tokenizer config names one. */
  readonly bosTokenId: number | undefined;
  /** The id of `pad_token`, if the tokenizer config names one. */
  readonly padTokenId: number | undefined;
  /** Number of token ids (the vocabulary and the added tokens). */
  readonly vocabSize: number;
  /** The chat template source, if the model has one. */
  readonly chatTemplate: string | undefined;

  #lib: LibTokenizer;
  #labels: Labels;
  /** Whether to add BOS/EOS ourselves; undefined when the post-processor decides. */
  #flags: { bos: boolean; eos: boolean } | undefined;
  #missingTemplate: string | undefined;
  #compiled: Template | undefined;
  #templateVars: Record<string, unknown>;

  private constructor(
    lib: LibTokenizer,
    parts: { config: TokenizerConfig; labels: Labels; options: HfTokenizerOptions },
  ) {
    const { config, labels, options } = parts;
    this.#lib = lib;
    this.#labels = labels;
    this.vocabSize = lib.model?.vocab.length ?? 0;
    this.bosTokenId = this.#specialId(config, "bos_token");
    this.padTokenId = this.#specialId(config, "pad_token");
    this.eosTokenIds = this.#eosIds(config, options);
    this.#flags = this.#addFlags(config);
    const picked = pickChatTemplate(config, options.chatTemplate, labels);
    this.chatTemplate = picked.template;
    this.#missingTemplate = picked.missing;
    this.#templateVars = templateVars(config);
  }

  /**
   * Builds a tokenizer from parsed files.
   *
   * @param tokenizerJson The parsed `tokenizer.json`.
   * @param tokenizerConfig The parsed `tokenizer_config.json` (`{}` if the model has none).
   * @param options Chat template override, generation and model configs, and the source directory.
   * @returns The tokenizer.
   * @throws {TypeError} If a file does not have the expected shape.
   * @throws {Error} If a special token of the config is not in the vocabulary.
   */
  static fromJson(
    tokenizerJson: object,
    tokenizerConfig: object,
    options: HfTokenizerOptions = {},
  ): HfTokenizer {
    const labels = labelsOf(options.source);
    const config = parseWith(tokenizerConfigSchema, tokenizerConfig, labels.tokenizerConfig);
    const lib = buildLibTokenizer(tokenizerJson, config, labels);
    return new HfTokenizer(lib, { config, labels, options });
  }

  /**
   * Token ids of `text`.
   *
   * @param text The text to encode.
   * @param options `addSpecialTokens` (default true): add BOS/EOS as the tokenizer config says.
   * @returns The ids.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") {
      throw new TypeError(
        `Cannot encode as 'text' must be a string: current type is ${typeof text}`,
      );
    }
    const add = options.addSpecialTokens ?? true;
    const flags = this.#flags;
    const encoding = this.#lib.encode(text, { add_special_tokens: flags ? false : add });
    const ids = encoding.ids;
    const unknown = ids.findIndex((id) => id === undefined);
    if (unknown >= 0) {
      throw new Error(
        `Cannot encode: token '${
          encoding.tokens[unknown]
        }' is not in the vocabulary of ${this.#labels.tokenizerJson}, which has no unk_token`,
      );
    }
    if (flags && add) {
      if (flags.bos) ids.unshift(this.bosTokenId!);
      if (flags.eos) ids.push(this.eosTokenIds[0]);
    }
    return ids;
  }

  /**
   * Text of `ids`. Ids without a token (past the vocabulary, e.g. padding rows of the
   * embedding) are dropped, as Hugging Face tokenizers do.
   *
   * @param ids Token ids.
   * @param options `skipSpecialTokens` (default true): drop special tokens.
   * @returns The text.
   */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id)) {
        throw new TypeError(
          `Cannot decode as ids[${i}] must be an integer: current value is ${id}`,
        );
      }
      if (this.#lib.id_to_token(id) !== undefined) known.push(id);
    }
    if (known.length === 0) return "";
    return this.#lib.decode(known, {
      skip_special_tokens: options.skipSpecialTokens ?? true,
      clean_up_tokenization_spaces: false,
    });
  }

  /**
   * Id of one token (vocabulary or added token).
   *
   * @param token The token string, as stored in `tokenizer.json` (e.g. `"Ġworld"` for byte-level BPE).
   * @returns Its id, or undefined.
   */
  tokenToId(token: string): number | undefined {
    return this.#lib.token_to_id(token);
  }

  /**
   * Token string of one id.
   *
   * @param id The token id.
   * @returns The token as stored in `tokenizer.json`, or undefined if no token has this id.
   */
  idToToken(id: number): string | undefined {
    return this.#lib.id_to_token(id);
  }

  /**
   * Renders `messages` with the chat template, as transformers' `apply_chat_template` does
   * with `tokenize=False`; the special tokens of the config are template variables.
   *
   * @param messages The chat.
   * @param options `addGenerationPrompt` (default false): end with the assistant's turn header.
   * @returns The prompt text.
   * @throws {Error} If the model has no chat template or the template fails.
   */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: { addGenerationPrompt?: boolean } = {},
  ): string {
    const template = this.#template();
    try {
      return template.render({
        ...this.#templateVars,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`Cannot apply the chat template of ${this.#labels.source}: ${message}`, {
        cause: error,
      });
    }
  }

  #template(): Template {
    if (this.#compiled) return this.#compiled;
    if (this.chatTemplate === undefined) {
      throw new Error(`Cannot apply chat template: ${this.#missingTemplate}`);
    }
    try {
      this.#compiled = new Template(this.chatTemplate);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`Cannot parse the chat template of ${this.#labels.source}: ${message}`, {
        cause: error,
      });
    }
    return this.#compiled;
  }

  #specialId(
    config: TokenizerConfig,
    field: "bos_token" | "eos_token" | "pad_token",
  ): number | undefined {
    const content = contentOf(config[field]);
    if (content === undefined) return undefined;
    const id = this.#lib.token_to_id(content);
    if (id === undefined) {
      throw new Error(
        `Cannot load tokenizer: ${field} '${content}' of ${this.#labels.tokenizerConfig} is not in the vocabulary of ${this.#labels.tokenizerJson}`,
      );
    }
    return id;
  }

  #eosIds(config: TokenizerConfig, options: HfTokenizerOptions): number[] {
    const { generationConfig = {}, modelConfig = {} } = options;
    const generation = parseWith(eosConfigSchema, generationConfig, this.#labels.generationConfig);
    const model = parseWith(eosConfigSchema, modelConfig, this.#labels.modelConfig);
    const ids = [
      ...idList(this.#specialId(config, "eos_token")),
      ...idList(generation.eos_token_id),
      ...idList(model.eos_token_id),
    ];
    return [...new Set(ids)];
  }

  #addFlags(config: TokenizerConfig): { bos: boolean; eos: boolean } | undefined {
    const bos = config.add_bos_token;
    const eos = config.add_eos_token;
    if (typeof bos !== "boolean" && typeof eos !== "boolean") return undefined;
    if (bos && this.bosTokenId === undefined) {
      throw new Error(
        `Cannot load tokenizer: ${this.#labels.tokenizerConfig} sets add_bos_token but has no bos_token`,
      );
    }
    if (eos && contentOf(config.eos_token) === undefined) {
      throw new Error(
        `Cannot load tokenizer: ${this.#labels.tokenizerConfig} sets add_eos_token but has no eos_token`,
      );
    }
    return { bos: bos ?? false, eos: eos ?? false };
  }
}

/** The special tokens that transformers passes to chat templates. */
function templateVars(config: TokenizerConfig): Record<string, unknown> {
  const vars: Record<string, unknown> = {};
  for (const field of ["bos_token", "eos_token", "pad_token", "unk_token"] as const) {
    const content = contentOf(config[field]);
    if (content !== undefined) vars[field] = content;
  }
  const extra = extraSpecialTokens(config);
  if (extra.length > 0) vars.additional_special_tokens = extra;
  return vars;
}

/** Reads a file; undefined if it does not exist and is optional. */
async function readText(path: string, required = false): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      if (required) throw new Error(`Cannot load tokenizer: ${path} does not exist`);
      return undefined;
    }
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot load tokenizer: cannot read ${path}: ${message}`, { cause: error });
  }
}

async function readJson(path: string, required = false): Promise<object | undefined> {
  const text = await readText(path, required);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new SyntaxError(`Cannot load tokenizer: ${path} is not valid JSON: ${message}`, {
      cause: error,
    });
  }
}

/**
 * Loads the tokenizer of a model directory: `tokenizer.json` (required),
 * `tokenizer_config.json`, `chat_template.jinja` (wins over the config's `chat_template`),
 * `generation_config.json` and `config.json` (their `eos_token_id` joins `eosTokenIds`).
 *
 * @param dir The model directory.
 * @returns The tokenizer.
 * @throws {Error} If `tokenizer.json` is missing, a file is not valid JSON or has the wrong shape.
 *
 * @example
 * ```ts
 * const tokenizer = await loadTokenizer("models/tiny");
 * const prompt = tokenizer.applyChatTemplate([{ role: "user", content: "2+2?" }], {
 *   addGenerationPrompt: true,
 * });
 * ```
 */
export async function loadTokenizer(dir: string): Promise<HfTokenizer> {
  const root = resolve(dir);
  const [tokenizerJson, tokenizerConfig, generationConfig, modelConfig, chatTemplate] =
    await Promise
      .all([
        readJson(join(root, "tokenizer.json"), true),
        readJson(join(root, "tokenizer_config.json")),
        readJson(join(root, "generation_config.json")),
        readJson(join(root, "config.json")),
        readText(join(root, "chat_template.jinja")),
      ]);
  return HfTokenizer.fromJson(tokenizerJson!, tokenizerConfig ?? {}, {
    chatTemplate,
    generationConfig,
    modelConfig,
    source: root,
  });
}
