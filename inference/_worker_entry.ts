/**
 * Worker side of {@linkcode WorkerHost}: builds one backend object from a module export and
 * answers method calls on it. Model inference blocks the thread it runs on; here it blocks
 * this worker, not the caller's event loop.
 *
 * @module
 */

type Msg =
  | { kind: "init"; module: string; factory: string; args: unknown[] }
  | { kind: "call"; id: number; method: string; args: unknown[] }
  | { kind: "abort"; id: number };

// deno-lint-ignore no-explicit-any
let target: any;
const controllers = new Map<number, AbortController>();
const self_ = self as unknown as {
  postMessage(m: unknown): void;
  onmessage: ((e: MessageEvent<Msg>) => void) | null;
};

function errorOf(e: unknown): { name: string; message: string } {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message };
}

async function init(m: Extract<Msg, { kind: "init" }>): Promise<void> {
  try {
    const mod = await import(m.module);
    const path = m.factory.split(".");
    // deno-lint-ignore no-explicit-any
    let owner: any = mod;
    for (const p of path.slice(0, -1)) owner = owner[p];
    target = await owner[path[path.length - 1]](...m.args);
    const id = (target as { id?: string }).id;
    self_.postMessage({ kind: "ready", id });
  } catch (e) {
    self_.postMessage({ kind: "ready", error: errorOf(e) });
  }
}

async function call(m: Extract<Msg, { kind: "call" }>): Promise<void> {
  const ac = new AbortController();
  controllers.set(m.id, ac);
  try {
    const args = [...m.args];
    const last = args[args.length - 1];
    if (last && typeof last === "object" && !Array.isArray(last)) {
      args[args.length - 1] = { ...last, signal: ac.signal };
    }
    const value = await target[m.method](...args);
    self_.postMessage({ kind: "result", id: m.id, value });
  } catch (e) {
    self_.postMessage({ kind: "result", id: m.id, error: errorOf(e) });
  } finally {
    controllers.delete(m.id);
  }
}

// Calls run one at a time in arrival order: the model is one session.
let queue: Promise<void> = Promise.resolve();
self_.onmessage = (e: MessageEvent<Msg>) => {
  const m = e.data;
  if (m.kind === "init") queue = queue.then(() => init(m));
  else if (m.kind === "abort") {
    controllers.get(m.id)?.abort(new DOMException("aborted", "AbortError"));
  } else queue = queue.then(() => call(m));
};
