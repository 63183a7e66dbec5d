/**
 * Backends in a Web Worker. `session.run` of onnxruntime-node blocks the thread that calls
 * it, so a server that ran models on its own thread would stop answering (health checks
 * included) during every forward pass. A {@linkcode WorkerHost} runs the backend in a worker
 * and forwards calls as messages; {@linkcode WorkerPolicy} is a {@linkcode PolicyModel} built
 * on it. Cancellation crosses the boundary: aborting the caller's signal aborts the call in
 * the worker, which stops between forward passes.
 *
 * @module
 */
import {
  ContextLengthError,
  type GenerateOptions,
  type Generation,
  type PolicyModel,
  type ScoredContinuation,
} from "./types.ts";
import type { PolicyLoadOptions } from "./policy.ts";

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

const ERROR_CLASSES: Record<string, new (message: string) => Error> = {
  ContextLengthError,
  RangeError,
  TypeError,
  SyntaxError,
};

/** Rebuild an error that crossed the worker boundary, with its class where it is built in. */
function revive(e: { name: string; message: string }): Error {
  if (e.name === "AbortError") return new DOMException(e.message, "AbortError");
  const Cls = ERROR_CLASSES[e.name];
  return Cls ? new Cls(e.message) : Object.assign(new Error(e.message), { name: e.name });
}

/** Options of {@linkcode WorkerHost.start}. */
export interface WorkerHostOptions {
  /** URL of the module that exports the factory. */
  module: string;
  /** Export path of an async factory, e.g. "OnnxPolicy.load". */
  factory: string;
  /** Arguments of the factory (structured-cloneable). */
  args: unknown[];
}

/** A backend object living in a worker; call its methods by name. */
export class WorkerHost {
  /** The backend's `id`, as it reported it. */
  readonly id: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #closed = false;

  private constructor(worker: Worker, id: string) {
    this.#worker = worker;
    this.id = id;
    worker.onmessage = (e) => this.#onResult(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#failAll(new Error(`Backend worker crashed: ${e.message}`));
    };
  }

  /**
   * Start a worker and build the backend in it.
   *
   * @param options Module, factory and its arguments.
   * @returns The host, once the backend is ready.
   * @throws The factory's error (same message) when the backend cannot be built.
   */
  static start(options: WorkerHostOptions): Promise<WorkerHost> {
    const worker = new Worker(new URL("./_worker_entry.ts", import.meta.url), { type: "module" });
    return new Promise((resolve, reject) => {
      worker.onmessage = (e) => {
        const m = e.data;
        if (m.kind !== "ready") return;
        if (m.error) {
          worker.terminate();
          reject(revive(m.error));
        } else resolve(new WorkerHost(worker, m.id ?? "worker"));
      };
      worker.onerror = (e) => {
        e.preventDefault();
        worker.terminate();
        reject(new Error(`Backend worker failed to start: ${e.message}`));
      };
      worker.postMessage({ kind: "init", ...options });
    });
  }

  /**
   * Call `method(...args)` on the backend. When the last argument is an options object, its
   * `signal` stays here and aborting it aborts the call there.
   */
  call<T>(method: string, args: unknown[]): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`Backend ${this.id} is closed`));
    const id = this.#next++;
    const last = args[args.length - 1] as { signal?: AbortSignal } | undefined;
    const signal = last && typeof last === "object" ? last.signal : undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const sent = signal ? [...args.slice(0, -1), { ...last, signal: undefined }] : args;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        this.#worker.postMessage({ kind: "abort", id });
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(v as T);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(signal?.aborted ? signal.reason : e);
        },
      });
      this.#worker.postMessage({ kind: "call", id, method, args: sent });
    });
  }

  /** Close the backend (its `close()` method) and stop the worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.call("close", []);
    } finally {
      this.#closed = true;
      this.#worker.terminate();
      this.#failAll(new Error(`Backend ${this.id} is closed`));
    }
  }

  #onResult(
    m: { kind: string; id: number; value?: unknown; error?: { name: string; message: string } },
  ) {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (m.error) p.reject(revive(m.error));
    else p.resolve(m.value);
  }

  #failAll(e: Error): void {
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }
}

/** A {@linkcode PolicyModel} whose ONNX model runs in a worker thread. */
export class WorkerPolicy implements PolicyModel {
  /** Model id. */
  readonly id: string;
  readonly #host: WorkerHost;

  private constructor(host: WorkerHost) {
    this.#host = host;
    this.id = host.id;
  }

  /**
   * Load an ONNX policy directory in a new worker.
   *
   * @param dir The model directory.
   * @param options As for `OnnxPolicy.load`.
   */
  static async load(dir: string, options: PolicyLoadOptions = {}): Promise<WorkerPolicy> {
    const host = await WorkerHost.start({
      module: new URL("./policy.ts", import.meta.url).href,
      factory: "OnnxPolicy.load",
      args: [dir, options],
    });
    return new WorkerPolicy(host);
  }

  /** {@inheritDoc PolicyModel.generate} */
  generate(prompt: string, options: GenerateOptions = {}): Promise<Generation[]> {
    return this.#host.call("generate", [prompt, options]);
  }

  /** {@inheritDoc PolicyModel.score} */
  score(
    prompt: string,
    continuation: string,
    options: { topK?: number; signal?: AbortSignal } = {},
  ): Promise<ScoredContinuation> {
    return this.#host.call("score", [prompt, continuation, options]);
  }

  /** Close the model and the worker. */
  close(): Promise<void> {
    return this.#host.close();
  }
}
