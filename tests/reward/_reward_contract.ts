/**
 * The contract every {@linkcode RewardModel} implementation passes: call
 * {@linkcode rewardContract} from a test file with a factory of the implementation.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { RewardModel } from "../../reward/mod.ts";

/** What a contract factory returns: the model and how to free it and what it depends on. */
export interface RewardUnderTest {
  /** The implementation under test. */
  reward: RewardModel;
  /** Frees the model and everything behind it (servers, sessions). */
  close: () => Promise<void>;
}

/** Options of {@linkcode rewardContract}. */
export interface RewardContractOptions {
  /**
   * Whether a step's score depends only on the question and the steps up to it (true for every
   * format we ship); enables the prefix test. Default true.
   */
  prefixConsistent?: boolean;
}

const QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?";
const STEPS = [
  "Tom starts with 3 apples.",
  "He buys 4 more, so 3 + 4 = 7.",
  "The answer is 7.",
];

/**
 * Register the reward-model contract as Deno tests named `"<name>: ..."`.
 *
 * @param name Names the implementation in the test names.
 * @param make Creates a fresh model for one test.
 * @param options Which optional properties the model has.
 */
export function rewardContract(
  name: string,
  make: () => Promise<RewardUnderTest>,
  options: RewardContractOptions = {},
): void {
  const test = (what: string, fn: (r: RewardModel) => Promise<void>) =>
    Deno.test(`${name}: ${what}`, async () => {
      const { reward, close } = await make();
      try {
        await fn(reward);
      } finally {
        await close();
      }
    });

  test("scoreSteps() gives one score in [0, 1] per step", async (r) => {
    const scores = await r.scoreSteps(QUESTION, STEPS);
    assert.equal(scores.length, STEPS.length);
    for (const s of scores) assert.ok(Number.isFinite(s) && s >= 0 && s <= 1, String(s));
  });

  test("scoreSteps() is deterministic", async (r) => {
    const a = await r.scoreSteps(QUESTION, STEPS);
    const b = await r.scoreSteps(QUESTION, STEPS);
    assert.deepEqual(b, a);
  });

  if (options.prefixConsistent ?? true) {
    test("scoring a prefix of the steps gives the same scores for those steps", async (r) => {
      const whole = await r.scoreSteps(QUESTION, STEPS);
      for (let k = 1; k < STEPS.length; k++) {
        const part = await r.scoreSteps(QUESTION, STEPS.slice(0, k));
        part.forEach((s, i) => assert.ok(Math.abs(s - whole[i]) < 1e-4, `prefix ${k} step ${i}`));
      }
    });
  }

  test("no steps give no scores", async (r) => {
    assert.deepEqual(await r.scoreSteps(QUESTION, []), []);
  });
}
