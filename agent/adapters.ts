/**
 * Adapters from model backends to the search interfaces: a `PolicyModel` proposes steps
 * (generation cut at the step delimiter), a `RewardModel` scores them.
 *
 * @module
 */
import { ContextLengthError, type PolicyModel } from "../inference/mod.ts";
import type { Proposal, ProposeOptions, StepPolicy, StepReward } from "../mcts/mod.ts";
import { checkScores, type RewardModel } from "../reward/mod.ts";

/** Options of {@linkcode PolicySteps}. */
export interface PolicyStepsOptions {
  /** Text before the first step, from the question (default: "Question: {q}\nAnswer:\n"). */
  prompt?: (question: string) => string;
  /** Step delimiter (default "\n\n"). */
  delimiter?: string;
  /** Per-step token limit: a policy that never emits the delimiter is cut here (default 160). */
  maxStepTokens?: number;
  /** Whether a step ends the solution (default: it states a final answer). */
  isFinal?: (step: string) => boolean;
  /**
   * A question whose prompt alone fills the policy's context: `"dead-end"` (default) gives no
   * proposals, so a run or an evaluation counts the problem as unsolved and goes on; `"error"`
   * throws the {@linkcode ContextLengthError} (a server answers 400 with the length and limit).
   */
  questionOverContext?: "dead-end" | "error";
}

/** The longest step a policy may write when no limit is given ({@linkcode PolicySteps}). */
export const DEFAULT_MAX_STEP_TOKENS = 160;

const FINAL = /(\\boxed\{|[Tt]he (final )?answer is|####)/;

/** The default prompt: a plain question/answer frame. */
export function plainPrompt(question: string): string {
  return `Question: ${question}\nAnswer:\n`;
}

/**
 * Steps from a {@linkcode PolicyModel}: the prompt for a node is the question frame followed
 * by every step and its delimiter, so a child's prompt extends its parent's exactly and the
 * in-process policy reuses the parent's KV cache.
 */
export class PolicySteps implements StepPolicy {
  readonly #policy: PolicyModel;
  readonly #prompt: (q: string) => string;
  readonly #delim: string;
  readonly #max: number;
  readonly #final: (s: string) => boolean;
  readonly #strictRoot: boolean;

  /**
   * @param policy The model.
   * @param options Prompt frame, delimiter, per-step limit, final-step test.
   */
  constructor(policy: PolicyModel, options: PolicyStepsOptions = {}) {
    this.#policy = policy;
    this.#prompt = options.prompt ?? plainPrompt;
    this.#delim = options.delimiter ?? "\n\n";
    this.#max = options.maxStepTokens ?? DEFAULT_MAX_STEP_TOKENS;
    this.#final = options.isFinal ?? ((s) => FINAL.test(s));
    this.#strictRoot = options.questionOverContext === "error";
  }

  /** The prompt of the node after `steps`. */
  promptFor(question: string, steps: readonly string[]): string {
    return this.#prompt(question) + steps.map((s) => s + this.#delim).join("");
  }

  /**
   * {@inheritDoc StepPolicy.propose}
   *
   * A node whose prompt fills the policy's context gets no proposals (the search treats it as
   * a dead end) instead of an error: a search must not fail because one path grew too long. At
   * the root (the question alone) that is an error with `questionOverContext: "error"`.
   */
  async propose(
    question: string,
    steps: readonly string[],
    options: ProposeOptions,
  ): Promise<Proposal[]> {
    let gens;
    try {
      gens = await this.#policy.generate(this.promptFor(question, steps), {
        n: options.k,
        seed: options.seed,
        temperature: options.temperature,
        stop: [this.#delim],
        maxNewTokens: this.#max,
        signal: options.signal,
      });
    } catch (e) {
      if (!(e instanceof ContextLengthError)) throw e;
      if (steps.length === 0 && this.#strictRoot) throw e; // the question alone does not fit
      return [];
    }
    return gens.map((g) => {
      const text = g.text.endsWith(this.#delim) ? g.text.slice(0, -this.#delim.length) : g.text;
      return {
        text,
        logprob: g.logprobs.reduce((a, b) => a + b, 0),
        tokens: g.ids.length,
        // An empty step (the delimiter at once) means the policy has nothing more to say: the
        // solution ends there, and its tokens still count.
        terminal: g.finishReason === "eos" || text.trim() === "" || this.#final(text),
      };
    });
  }
}

/**
 * Step scores from a {@linkcode RewardModel}, checked: NaN or out-of-range is an error. A
 * solution too long for the reward model's context scores 0 at every step (it cannot be judged,
 * and a search prunes it) rather than failing the search.
 */
export class RewardSteps implements StepReward {
  readonly #reward: RewardModel;

  /** @param reward The reward model. */
  constructor(reward: RewardModel) {
    this.#reward = reward;
  }

  /** {@inheritDoc StepReward.score} */
  async score(
    question: string,
    steps: readonly string[],
    options: { signal?: AbortSignal } = {},
  ): Promise<number[]> {
    try {
      return checkScores(await this.#reward.scoreSteps(question, steps, options), this.#reward.id);
    } catch (e) {
      if (e instanceof ContextLengthError) return steps.map(() => 0);
      throw e;
    }
  }

  /** {@inheritDoc StepReward.scoreMany} */
  async scoreMany(
    question: string,
    solutions: readonly (readonly string[])[],
    options: { signal?: AbortSignal } = {},
  ): Promise<number[][]> {
    if (this.#reward.scoreMany) {
      try {
        const out = await this.#reward.scoreMany(question, solutions, options);
        return out.map((s) => checkScores(s, this.#reward.id));
      } catch (e) {
        if (!(e instanceof ContextLengthError)) throw e;
        // one solution too long: score them one by one, so only that one scores 0
      }
    }
    const out: number[][] = [];
    for (const steps of solutions) out.push(await this.score(question, steps, options));
    return out;
  }
}
