/**
 * Input texts of process reward models, shared by the in-process heads and the remote
 * reward client.
 *
 * @module
 */

const QWEN_PRM_SYSTEM_PROMPT =
  "Please reason step by step, and put your final answer within \\boxed{}.";

/**
 * The paper's PRM input for one step: the question, the steps before it, and the step to score.
 *
 * With previous steps (joined by `"\n\n"`) the text ends right after the current step; for the
 * first step the "Previous reasoning" block is left out and the text ends with one `"\n"`.
 *
 * @param question The problem statement.
 * @param previousSteps The steps before the current one, in order (may be empty).
 * @param currentStep The step to score.
 * @returns The model input.
 * @example
 * ```ts
 * paperPrompt("1+1?", [], "1+1=2");
 * // "Question:\n1+1?\n\nLet's break it down step by step!\n\nNow, let's focus on the current step:\n1+1=2\n"
 * ```
 */
export function paperPrompt(
  question: string,
  previousSteps: readonly string[],
  currentStep: string,
): string {
  const head = `Question:\n${question}\n\nLet's break it down step by step!\n\n`;
  if (previousSteps.length === 0) {
    return `${head}Now, let's focus on the current step:\n${currentStep}\n`;
  }
  return `${head}Previous reasoning:\n${previousSteps.join("\n\n")}\n\n` +
    `Now, let's focus on the current step:\n${currentStep}`;
}

/** Options of {@linkcode qwenPrmPrompt}. */
export interface QwenPrmPromptOptions {
  /** The system message (default: Qwen2.5-Math-PRM's, "Please reason step by step, ..."). */
  systemPrompt?: string;
  /** The separator token after every step (default `"<extra_0>"`). */
  stepToken?: string;
}

/**
 * Qwen2.5-Math-PRM's input for a whole solution, rendered as its ChatML template does:
 * system, user (the question), and assistant (every step followed by the step token).
 * The model scores each step at its step token.
 *
 * @param question The problem statement.
 * @param steps The solution steps.
 * @param options System prompt and step token.
 * @returns The model input text.
 * @example
 * ```ts
 * qwenPrmPrompt("1+1?", ["1+1=2", "So 2."]);
 * // "<|im_start|>system\n...<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n1+1=2<extra_0>So 2.<extra_0><|im_end|>\n"
 * ```
 */
export function qwenPrmPrompt(
  question: string,
  steps: readonly string[],
  options: QwenPrmPromptOptions = {},
): string {
  const system = options.systemPrompt ?? QWEN_PRM_SYSTEM_PROMPT;
  const tag = options.stepToken ?? "<extra_0>";
  const answer = steps.map((s) => s + tag).join("");
  return `<|im_start|>system\n${system}<|im_end|>\n<|im_start|>user\n${question}<|im_end|>\n` +
    `<|im_start|>assistant\n${answer}<|im_end|>\n`;
}
