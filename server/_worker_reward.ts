/**
 * A reward model in a worker thread: `OnnxReward` runs its session on the calling thread,
 * which in a server would stall every request during scoring.
 *
 * @module
 */
import { WorkerHost } from "../inference/mod.ts";
import type { RewardLoadOptions, RewardModel, ScoreOptions } from "../reward/mod.ts";

/** A {@linkcode RewardModel} whose ONNX model runs in a worker. */
export class WorkerReward implements RewardModel {
  /** Model id. */
  readonly id: string;
  readonly #host: WorkerHost;

  private constructor(host: WorkerHost) {
    this.#host = host;
    this.id = host.id;
  }

  /**
   * Load a reward model directory in a new worker.
   *
   * @param dir The directory.
   * @param options As for `OnnxReward.load`.
   * @returns The model, once loaded.
   */
  static async load(dir: string, options: RewardLoadOptions = {}): Promise<WorkerReward> {
    const host = await WorkerHost.start({
      module: new URL("../reward/mod.ts", import.meta.url).href,
      factory: "OnnxReward.load",
      args: [dir, options],
    });
    return new WorkerReward(host);
  }

  /** {@inheritDoc RewardModel.scoreSteps} */
  scoreSteps(
    question: string,
    steps: readonly string[],
    options: ScoreOptions = {},
  ): Promise<number[]> {
    return this.#host.call("scoreSteps", [question, steps, options]);
  }

  /** Close the model and stop the worker. */
  close(): Promise<void> {
    return this.#host.close();
  }
}
