/**
 * The OpenAPI 3.1 document of the API, built from the same zod schemas that validate the
 * requests, and a self-contained page at `/docs` that renders it (no external assets).
 *
 * @module
 */
import { z } from "zod";
import type { Limits } from "./_config.ts";
import { chatSchema, completionsSchema } from "./_openai.ts";
import { reasonSchema } from "./_reason.ts";
import { rewardsSchema } from "./_rewards.ts";

type Json = Record<string, unknown>;

function schemaOf(s: z.ZodType): Json {
  const out = z.toJSONSchema(s, { io: "input", unrepresentable: "any" }) as Json;
  delete out.$schema;
  return out;
}

const errorSchema: Json = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: { type: { type: "string" }, message: { type: "string" } },
      required: ["type", "message"],
    },
  },
  required: ["error"],
};

function errors(...codes: number[]): Json {
  const text: Record<number, string> = {
    400: "Invalid request (the message names the field)",
    401: "Missing or wrong bearer token",
    404: "Not found",
    405: "The path exists with another method (see Allow)",
    413: "Body too large",
    415: "The body is not declared as JSON (a missing Content-Type is read as JSON)",
    429: "Queue full (see Retry-After)",
    503: "Models loading, or shutting down",
    504: "Time limit reached",
  };
  return Object.fromEntries(codes.map((c) => [String(c), {
    description: text[c] ?? "Error",
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  }]));
}

function post(summary: string, body: Json, ok: string, extra: Json = {}): Json {
  return {
    post: {
      summary,
      requestBody: { required: true, content: { "application/json": { schema: body } } },
      responses: {
        "200": { description: ok, ...extra },
        ...errors(400, 401, 405, 413, 415, 429, 503, 504),
      },
    },
  };
}

function get(summary: string, ok: string, params: Json[] = [], type = "application/json"): Json {
  return {
    get: {
      summary,
      parameters: params,
      responses: {
        "200": { description: ok, content: { [type]: {} } },
        ...errors(...(params.some((p) => p.in === "query") ? [400] : []), 401, 404, 405),
      },
    },
  };
}

const qp = (name: string, description: string, type = "string"): Json => ({
  name,
  in: "query",
  required: false,
  description,
  schema: { type },
});
const pp = (name: string): Json => ({
  name,
  in: "path",
  required: true,
  schema: { type: "string" },
});

/**
 * The OpenAPI document.
 *
 * @param limits The caps the schemas carry.
 * @param version The server's version.
 */
export function openApiDocument(limits: Limits, version: string): Json {
  const sse = { content: { "text/event-stream": {}, "application/json": {} } };
  return {
    openapi: "3.1.0",
    info: {
      title: "arborist",
      version,
      description:
        "Reward-guided reasoning: a policy model proposes steps, an MCTS guided by a step reward model picks the solution. Model routes need `Authorization: Bearer <token>` when the server has a token.",
    },
    components: {
      schemas: { Error: errorSchema },
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    security: [{ bearer: [] }],
    paths: {
      "/v1/reason": post(
        "Solve one question with guided search; `stream: true` gives Server-Sent Events (start, node, pruned, best, score, result, error)",
        schemaOf(reasonSchema(limits)),
        "The answer, or an event stream",
        sse,
      ),
      "/v1/chat/completions": post(
        "OpenAI chat completions; the last user message is the question; steps and rewards in `arborist`",
        schemaOf(chatSchema(limits)),
        "chat.completion, or chat.completion.chunk events ending with [DONE]",
        sse,
      ),
      "/v1/completions": post(
        "OpenAI (legacy) completions: raw sampling with vLLM extensions (include_stop_str_in_output, return_tokens_as_token_ids, echo with max_tokens 0)",
        schemaOf(completionsSchema(limits)),
        "text_completion",
        sse,
      ),
      "/v1/rewards": post(
        "Score every step of a solution with the reward model",
        schemaOf(rewardsSchema(limits)),
        "{model, scores}",
      ),
      "/v1/models": get("The served policy, in the OpenAI list format", "list"),
      "/v1/runs": get("Stored runs, newest first", "list", [
        qp("limit", "runs to return, 1 to 1000 (default 100); a plain decimal integer", "integer"),
        qp("offset", "runs to skip (default 0); a plain decimal integer", "integer"),
      ]),
      "/v1/runs/{id}": get("A run with its summary and problems", "run", [
        pp("id"),
        qp("limit", "problems to return, 1 to 1000 (default 100)", "integer"),
        qp("offset", "problems to skip (default 0)", "integer"),
      ]),
      "/v1/runs/{id}/tree": get("Search trees of a run", "trees", [
        pp("id"),
        qp("problem", "one problem's trees (limit and offset do not apply)"),
        qp("limit", "trees to return, 1 to 1000 (default 50)", "integer"),
        qp("offset", "trees to skip (default 0)", "integer"),
      ]),
      "/v1/exports/{kind}": get(
        "Stream records as JSON lines: trajectories or trees (of one run or all), or reward samples of one run (prm, hrm, hnc, orm; ?format=raw|trl|openrlhf|paper)",
        "JSONL",
        [
          pp("kind"),
          qp("run", "the run (required for prm, hrm, hnc, orm)"),
          qp(
            "format",
            "raw (default), trl, openrlhf or paper; trajectories and trees are raw only (anything else: 400)",
          ),
        ],
        "application/x-ndjson",
      ),
      "/health": {
        get: {
          summary: "Liveness (no auth)",
          security: [],
          responses: { "200": { description: "ok" } },
        },
      },
      "/ready": {
        get: {
          summary: "Readiness: 503 until the models are loaded (no auth)",
          security: [],
          responses: { "200": { description: "ready" }, "503": { description: "loading" } },
        },
      },
      "/metrics": get("Prometheus metrics", "text", [], "text/plain"),
    },
  };
}

/** The `/docs` page: renders `/openapi.json` with a few lines of script, no external assets. */
export const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>arborist API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:0}.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.m{display:inline-block;min-width:4rem;font-weight:600;color:#fff;border-radius:4px;padding:0 .4rem;text-align:center}
.get{background:#2f7d32}.post{background:#1565c0}code,pre{background:#f5f5f5;border-radius:4px}
pre{padding:.5rem;overflow:auto;max-height:24rem}details{margin:.3rem 0}
</style></head><body>
<h1>arborist API</h1><p id="desc"></p><p><a href="/openapi.json">openapi.json</a> · <a href="/">live search page</a></p>
<div id="ops">loading…</div>
<script>
fetch("/openapi.json").then(r=>r.json()).then(doc=>{
  document.getElementById("desc").textContent=doc.info.description+" (version "+doc.info.version+")";
  const ops=document.getElementById("ops"); ops.textContent="";
  for(const [path,item] of Object.entries(doc.paths)){
    for(const [method,op] of Object.entries(item)){
      const d=document.createElement("div"); d.className="op";
      const h=document.createElement("div");
      const m=document.createElement("span"); m.className="m "+method; m.textContent=method.toUpperCase();
      const p=document.createElement("code"); p.textContent=" "+path+" ";
      h.append(m,p,document.createTextNode(op.summary||"")); d.append(h);
      const body=op.requestBody&&op.requestBody.content["application/json"];
      if(body){const det=document.createElement("details");const s=document.createElement("summary");
        s.textContent="request body schema";const pre=document.createElement("pre");
        pre.textContent=JSON.stringify(body.schema,null,2);det.append(s,pre);d.append(det);}
      const codes=Object.entries(op.responses||{}).map(([c,r])=>c+" "+r.description).join(" · ");
      const r=document.createElement("div"); r.textContent="responses: "+codes; d.append(r);
      ops.append(d);
    }
  }
}).catch(e=>{document.getElementById("ops").textContent="could not load /openapi.json: "+e});
</script></body></html>
`;
