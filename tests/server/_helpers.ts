/**
 * Helpers of the server tests: real tiny models in workers, scripted doubles, a loopback
 * server, an SSE reader and a metrics reader.
 *
 * @module
 */
import type { Hono } from "hono";
import type { GenerateOptions, Generation, PolicyModel } from "../../inference/mod.ts";
import type { RewardModel } from "../../reward/mod.ts";
import { ServedPolicy, WorkerReward } from "../../server/mod.ts";
import { testdataPath } from "../_helpers.ts";

/** The tiny policy fixture. */
export const POLICY_DIR = testdataPath("models/decoder-fp32");
/** The tiny reward fixture. */
export const REWARD_DIR = testdataPath("models/reward-paper-2");

/** The real tiny models, each in its worker. */
export async function loadModels(): Promise<{
  policy: ServedPolicy;
  reward: WorkerReward;
  close: () => Promise<void>;
}> {
  const [policy, reward] = await Promise.all([
    ServedPolicy.load(POLICY_DIR, { threads: 1 }),
    WorkerReward.load(REWARD_DIR, { threads: 1 }),
  ]);
  return {
    policy,
    reward,
    close: async () => {
      await Promise.all([policy.close(), reward.close()]);
    },
  };
}

/** A running loopback server. */
export interface Served {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Stop it (waits for requests in flight). */
  close: () => Promise<void>;
}

/** Serve `app` on a free loopback port. */
export function serve(app: Hono): Served {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/** A policy double: `n` short steps, the third one final, after `delayMs` (abortable). */
export class ScriptedPolicy implements PolicyModel {
  /** Model id. */
  readonly id = "scripted-policy";
  /** generate() calls started. */
  calls = 0;

  /** @param delayMs Time each generate() takes. */
  constructor(readonly delayMs = 0) {}

  /** Steps "step d.i"; depth 3 says "The answer is 42". */
  async generate(prompt: string, options: GenerateOptions = {}): Promise<Generation[]> {
    this.calls++;
    const n = options.n ?? 1;
    if (this.delayMs > 0) await sleep(this.delayMs, options.signal);
    options.signal?.throwIfAborted();
    const depth = prompt.split("\n\n").length;
    return Array.from({ length: n }, (_, i) => ({
      text: depth >= 3 ? `The answer is 42.\n\n` : `step ${depth}.${i}\n\n`,
      ids: [1, 2, 3],
      logprobs: [-0.1, -0.2, -0.3 - i * 0.1],
      finishReason: "stop" as const,
    }));
  }

  /** Not used by the server's search. */
  score(): Promise<never> {
    return Promise.reject(new Error("not scripted"));
  }

  /** Nothing to free. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A reward double: 0.9 for the first child, less for later ones. */
export class ScriptedReward implements RewardModel {
  /** Model id. */
  readonly id = "scripted-reward";

  /** One score per step. */
  scoreSteps(_q: string, steps: readonly string[]): Promise<number[]> {
    return Promise.resolve(steps.map((s) => (/\.0$/.test(s) || /answer/.test(s) ? 0.9 : 0.3)));
  }

  /** Nothing to free. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Resolve after `ms`, or reject when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** One Server-Sent Event. */
export interface SseEvent {
  /** Its `event:` (default "message"). */
  event: string;
  /** Its `data:` lines joined. */
  data: string;
}

/** Read SSE events from a response body as they arrive. */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let at;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) yield { event, data: data.join("\n") };
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** The value of one metric series in Prometheus text (0 when absent). */
export function metric(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return 0;
}

/** JSON POST init. */
export function post(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string"
      ? body
      : body instanceof Uint8Array
      ? new Uint8Array(body)
      : JSON.stringify(body),
  };
}
