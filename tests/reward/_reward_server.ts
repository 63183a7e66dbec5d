/**
 * A small vLLM-like pooling server for tests: `POST /classify` and `POST /pooling` answered by
 * functions the test supplies (real ONNX models or scripted scorers), `GET /v1/models`.
 *
 * @module
 */
import { loadOnnxModel, loadTokenizer, OnnxSequenceModel } from "../../inference/mod.ts";

/** What answers the endpoints. */
export interface RewardBackends {
  /** `/classify`: class probabilities per input text. */
  classify?: (texts: string[]) => Promise<number[][]>;
  /** `/pooling`: the pooled rows of one input text. */
  pooling?: (text: string) => Promise<number[][]>;
}

/** A running loopback server. */
export interface RewardServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Bodies of the POST requests received, in order. */
  bodies: Record<string, unknown>[];
  /** Shut the server down. */
  close: () => Promise<void>;
}

/**
 * Serve `backends` as model `model` on a free loopback port.
 *
 * @param model The model name the server lists and accepts.
 * @param backends The functions answering `/classify` and `/pooling`.
 * @returns The server.
 */
export function startRewardServer(model: string, backends: RewardBackends): RewardServer {
  const bodies: Record<string, unknown>[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/v1/models") {
      return Response.json({ object: "list", data: [{ id: model, object: "model" }] });
    }
    const body = await req.json().catch(() => ({}));
    bodies.push(body);
    if (body.model !== model) return error(404, `The model \`${body.model}\` does not exist.`);
    const inputs: unknown[] = Array.isArray(body.input) ? body.input : [body.input];
    if (!inputs.every((t) => typeof t === "string")) return error(400, "input must be text");
    const texts = inputs as string[];
    if (path === "/classify" && backends.classify) {
      const probs = await backends.classify(texts);
      const data = probs.map((p, index) => ({
        index,
        label: "x",
        probs: p,
        num_classes: p.length,
      }));
      return Response.json({ object: "list", model, data });
    }
    if (path === "/pooling" && backends.pooling) {
      const data = [];
      for (const [index, t] of texts.entries()) {
        data.push({ index, object: "pooling", data: await backends.pooling(t) });
      }
      return Response.json({ object: "list", model, data });
    }
    return error(404, `Not Found: ${path}`);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    bodies,
    close: () => server.shutdown(),
  };
}

/** A backend over a real ONNX model directory, and how to close it. */
export interface ModelBackend {
  /** The backend function. */
  fn: (texts: string[]) => Promise<number[][]>;
  /** Releases the session. */
  close: () => Promise<void>;
}

/**
 * `/classify` over a sequence-classification model, as vLLM's classify pooler: softmax for 2+
 * labels; the raw output for 1 label (vLLM with its activation turned off, which a regression
 * head trained with MSE needs).
 *
 * @param dir The model directory.
 * @returns The backend.
 */
export async function classifierBackend(dir: string): Promise<ModelBackend> {
  const tok = await loadTokenizer(dir);
  const model = await loadOnnxModel(dir, { threads: 1 });
  if (!(model instanceof OnnxSequenceModel)) throw new Error(`${dir} is not a sequence model`);
  const fn = async (texts: string[]) => {
    const out = await model.run(texts.map((t) => tok.encode(t)), { padId: tok.padTokenId });
    const labels = out.dims[1];
    return texts.map((_, i) =>
      activate(Array.from(out.data.subarray(i * labels, (i + 1) * labels)))
    );
  };
  return { fn, close: () => model.close() };
}

/**
 * `/pooling` over a token-classification model with vLLM's STEP pooler: the softmax rows at
 * the positions of `stepToken`.
 *
 * @param dir The model directory.
 * @param stepToken The step tag token (e.g. `<extra_0>`).
 * @returns The backend (one text per call).
 */
export async function stepPoolerBackend(dir: string, stepToken: string): Promise<ModelBackend> {
  const tok = await loadTokenizer(dir);
  const tag = tok.tokenToId(stepToken);
  if (tag === undefined) throw new Error(`${dir} has no token ${stepToken}`);
  const model = await loadOnnxModel(dir, { threads: 1 });
  if (!(model instanceof OnnxSequenceModel)) throw new Error(`${dir} is not a sequence model`);
  const fn = async ([text]: string[]) => {
    const ids = tok.encode(text);
    const out = await model.run([ids]);
    const labels = out.dims[2];
    return ids.flatMap((id, p) =>
      id === tag ? [activate(Array.from(out.data.subarray(p * labels, (p + 1) * labels)))] : []
    );
  };
  return { fn, close: () => model.close() };
}

function activate(logits: number[]): number[] {
  if (logits.length === 1) return logits;
  const m = Math.max(...logits);
  const e = logits.map((x) => Math.exp(x - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

function error(status: number, message: string): Response {
  return Response.json({ object: "error", message, type: "BadRequestError", code: status }, {
    status,
  });
}
