/**
 * Deterministic, plausible text of a given token length: prompts, questions and reasoning
 * steps for the benchmarks.
 *
 * @module
 */
import type { Tokenizer } from "../inference/mod.ts";

const WORDS = (
  "the a number of apples each basket holds and if we multiply by two then add three to both " +
  "sides so that x equals seven hence total cost price per item is divided among four friends " +
  "which gives remaining amount after subtracting twelve from forty so answer must be positive " +
  "because area length width rectangle perimeter triangle angle sum degrees ratio percent speed " +
  "distance time hours minutes train leaves station at noon travels miles"
).split(" ");

/** A small seeded generator (LCG), enough for picking words. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

/**
 * Text of exactly `tokens` tokens under `tok` when possible (words are added one at a time;
 * a word that would overshoot is skipped), else as close as it gets from below.
 *
 * @param tok The tokenizer that will encode it.
 * @param tokens Target length.
 * @param options Seed of the word choice, a fixed start, whether special tokens count.
 * @returns The text and its actual token count.
 */
export function textOfTokens(
  tok: Tokenizer,
  tokens: number,
  options: { seed?: number; start?: string; special?: boolean } = {},
): { text: string; tokens: number } {
  const rand = lcg(options.seed ?? 1);
  const count = (t: string) => tok.encode(t, { addSpecialTokens: options.special ?? true }).length;
  let text = options.start ?? "";
  let n = count(text);
  for (let misses = 0; n < tokens && misses < 50;) {
    let word = WORDS[Math.floor(rand() * WORDS.length)];
    if (rand() < 0.08) word += rand() < 0.5 ? "." : ",";
    const next = text.length ? `${text} ${word}` : word;
    const m = count(next);
    if (m > tokens) {
      misses++;
      continue;
    }
    text = next;
    n = m;
  }
  return { text, tokens: n };
}

/**
 * A math question of about `qTokens` tokens and `steps` reasoning steps of 30-40 tokens each
 * (lengths vary by step, deterministically). The round number makes each round's texts new.
 */
export function trajectory(
  tok: Tokenizer,
  options: { round: number; qTokens: number; steps: number },
): { question: string; steps: string[] } {
  const { round, qTokens, steps } = options;
  const question = textOfTokens(tok, qTokens, {
    seed: 1000 + round,
    start: `Problem ${round + 1}: a train leaves the station at noon and`,
  }).text + "?";
  const out: string[] = [];
  for (let k = 0; k < steps; k++) {
    const len = 30 + ((k * 7 + round * 3) % 11); // 30..40
    out.push(
      textOfTokens(tok, len, {
        seed: 7 * round + k + 1,
        start: `Step ${k + 1}: we know that`,
        special: false,
      }).text + ".",
    );
  }
  return { question, steps: out };
}
