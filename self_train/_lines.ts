/**
 * Streamed reading of text files line by line, and seed mixing (private to this folder).
 *
 * @module
 */

/** One line of a file with its 1-based number. */
export interface Line {
  /** The line's text, without its line break (a trailing `\r` is dropped too). */
  text: string;
  /** 1-based line number. */
  number: number;
}

/**
 * The lines of a UTF-8 file, read in chunks (never the whole file in memory).
 *
 * @param path The file.
 * @param options Cancellation.
 * @throws {Error} `Cannot read <path>: <cause>` when the file cannot be opened.
 */
export async function* readLines(
  path: string,
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<Line, void, undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new Error(`Cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const reader = file.readable.pipeThrough(new TextDecoderStream()).getReader();
  let rest = "", number = 0;
  try {
    for (;;) {
      options.signal?.throwIfAborted();
      const { value, done } = await reader.read();
      if (done) break;
      rest += value;
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const text = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        yield { text: text.endsWith("\r") ? text.slice(0, -1) : text, number: ++number };
      }
    }
    if (rest.length > 0) {
      yield { text: rest.endsWith("\r") ? rest.slice(0, -1) : rest, number: ++number };
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * A 32-bit seed from a base seed and labels (FNV-1a over their text): the same inputs give
 * the same seed, different labels unrelated ones.
 *
 * @param seed The base seed.
 * @param parts Labels, e.g. the problem id and the purpose.
 */
export function mixSeed(seed: number, ...parts: (string | number)[]): number {
  let h = 0x811c9dc5 ^ (Math.trunc(seed) | 0);
  for (const ch of parts.join("\u0000")) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
