/**
 * Small helpers shared by the tests.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/**
 * Absolute path of `rel` inside the shared data folder, which lies beside the repository
 * (`<repo>/../shared/data`), wherever the repository is cloned.
 *
 * @param rel A path relative to `shared/data`, e.g. `"tokenizers/gpt2/tokenizer.json"`.
 * @returns The absolute path.
 */
export function sharedDataPath(rel: string): string {
  return fileURLToPath(new URL(`../../shared/data/${rel}`, import.meta.url));
}
