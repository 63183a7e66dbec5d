# arborist on the edge: the HTTP server with the bundled models baked in, no network needed
# at run time.
#
#   docker build -t arborist .
#   docker run -p 8787:8787 -e ARBORIST_TOKEN=change-me arborist
#   docker run -p 8787:8787 -e ARBORIST_TOKEN=change-me -v /srv/models:/models arborist \
#     --policy /models/policy --reward /models/hrm
#
# The server listens on 0.0.0.0 in the container, so it refuses to start without a token
# (ARBORIST_TOKEN or --token). /health, /ready, / and /docs answer without one.
ARG DENO_VERSION=2.9.6
FROM denoland/deno:${DENO_VERSION}

ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1
WORKDIR /app

# Dependencies first (a layer that changes only with deno.json / deno.lock).
COPY deno.json deno.lock ./
RUN deno install --frozen

# The code and the bundled models.
COPY . .
# Cache every module the server loads, the ones its model workers import at run time included,
# so that `--cached-only` below never reaches for the network. onnxruntime-node's install
# script (a CUDA download) is not run: Deno runs no lifecycle scripts unless asked.
RUN deno install --frozen --entrypoint main.ts server/mod.ts server/_policy_target.ts \
      inference/_worker_entry.ts inference/policy.ts reward/mod.ts \
 && mkdir -p /app/data \
 && chown -R deno:deno /app/data "$DENO_DIR"

USER deno
EXPOSE 8787
VOLUME ["/app/data"]

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["deno", "eval", "--cached-only", "const r = await fetch('http://127.0.0.1:8787/health'); if (!r.ok) Deno.exit(1);"]

ENTRYPOINT ["deno", "run", "--cached-only", "--frozen", "--unstable-no-legacy-abort", "-A", \
  "main.ts", "serve", "--cached-only", "--host", "0.0.0.0", "--port", "8787", \
  "--db", "/app/data/arborist.db"]
# The bundled models (override with your own directories).
CMD ["--policy", "models/policy", "--reward", "models/hrm"]
