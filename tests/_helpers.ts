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

/**
 * Absolute path of a fixture under `tests/testdata/`.
 *
 * @param rel A path relative to `tests/testdata`, e.g. `"models/decoder-fp32"`.
 * @returns The absolute path.
 */
export function testdataPath(rel: string): string {
  return fileURLToPath(new URL(`./testdata/${rel}`, import.meta.url));
}

/**
 * Copy a fixture directory into a fresh temporary directory (for tests that break it).
 *
 * @param rel The fixture, relative to `tests/testdata`.
 * @returns The copy's path and a function that removes it.
 */
export async function copyFixture(
  rel: string,
): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "arborist-test-" });
  await copyDir(testdataPath(rel), dir);
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

async function copyDir(from: string, to: string): Promise<void> {
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) {
      await Deno.mkdir(`${to}/${e.name}`);
      await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    } else if (e.isFile) {
      await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
    }
  }
}
