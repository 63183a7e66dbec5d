/**
 * A bounded work queue: at most `concurrency` jobs run, at most `maxQueue` wait, and a job
 * past that is refused at once (the caller answers 429), so the server never hangs on load.
 *
 * @module
 */

/** Thrown by {@linkcode WorkQueue.reserve} when the queue is full. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
  /** Seconds after which trying again is sensible. */
  readonly retryAfter: number;

  /**
   * @param message What is full.
   * @param retryAfter Seconds to wait.
   */
  constructor(message: string, retryAfter: number) {
    super(message);
    this.retryAfter = retryAfter;
  }
}

/** A place in the queue: wait for `ready`, then call `release` exactly once. */
export interface Ticket {
  /** Resolves when the job may run; rejects with the signal's reason when it aborts first. */
  readonly ready: Promise<void>;
  /** Give the slot back (or leave the queue). Idempotent. */
  release(): void;
}

interface Waiter {
  start: () => void;
}

/** The bounded queue. */
export class WorkQueue {
  readonly #concurrency: number;
  readonly #maxQueue: number;
  readonly #waiting: Waiter[] = [];
  #running = 0;
  #meanSeconds = 5;

  /**
   * @param options Jobs running at once and jobs waiting at most.
   */
  constructor(options: { concurrency: number; maxQueue: number }) {
    this.#concurrency = options.concurrency;
    this.#maxQueue = options.maxQueue;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /** Jobs waiting now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Take a place, or throw {@linkcode QueueFullError} at once when there is none.
   *
   * @param signal Leaving the queue (or the slot) when it aborts.
   * @returns The ticket.
   */
  reserve(signal?: AbortSignal): Ticket {
    signal?.throwIfAborted();
    if (this.#running < this.#concurrency) {
      this.#running++;
      return this.#ticket(Promise.resolve(), undefined);
    }
    if (this.#waiting.length >= this.#maxQueue) {
      const wait = Math.ceil(this.#meanSeconds * (1 + this.#waiting.length) / this.#concurrency);
      throw new QueueFullError(
        `The server is busy: ${this.#running} requests running and ${this.#waiting.length} waiting (the limit); try again in ${wait} s`,
        Math.max(1, wait),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const waiter: Waiter = { start: resolve };
    this.#waiting.push(waiter);
    const onAbort = () => {
      const at = this.#waiting.indexOf(waiter);
      if (at >= 0) {
        this.#waiting.splice(at, 1);
        reject(signal!.reason);
      }
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.catch(() => {}).finally(() => signal?.removeEventListener("abort", onAbort));
    return this.#ticket(promise, waiter);
  }

  /**
   * Run `job` when a slot frees; refuse at once when the queue is full.
   *
   * @param job The work.
   * @param signal Cancels the wait.
   */
  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const t = this.reserve(signal);
    try {
      await t.ready;
      return await job();
    } finally {
      t.release();
    }
  }

  #ticket(ready: Promise<void>, waiter: Waiter | undefined): Ticket {
    let done = false;
    let started = waiter === undefined;
    let t0 = performance.now();
    if (waiter) {
      const start = waiter.start;
      waiter.start = () => {
        started = true;
        t0 = performance.now();
        start();
      };
    }
    return {
      ready,
      release: () => {
        if (done) return;
        done = true;
        if (!started) {
          const at = this.#waiting.indexOf(waiter!);
          if (at >= 0) this.#waiting.splice(at, 1);
          return;
        }
        const secs = (performance.now() - t0) / 1000;
        this.#meanSeconds = 0.8 * this.#meanSeconds + 0.2 * secs;
        this.#running--;
        this.#next();
      },
    };
  }

  #next(): void {
    while (this.#running < this.#concurrency && this.#waiting.length) {
      this.#running++;
      this.#waiting.shift()!.start();
    }
  }
}
