#!/usr/bin/env bash
# make load-test: `bitnet serve` with 4 workers under 32 concurrent streaming
# clients for 60 s on the shipped model, then a shorter run on the synthetic
# 2B-shaped model when it is there and can serve (openresty/test/load.mjs
# checks every stream and reports). Loopback only, bounded in time; not in CI.
# Settings: LOAD_SECONDS (60), LOAD_CONCURRENCY (32), LOAD_QUEUE (per-worker
# queue, 2: small enough that the bounded queue refuses some with 503),
# SYNTH_2B (bench/cache/synth-2b-i2_s-f16.gguf), SYNTH_SECONDS (20),
# MIX_SECONDS (30: the mix of plain, JSON-schema and tool requests).
set -euo pipefail
cd "$(dirname "$0")/.."
unset LD_PRELOAD
seconds=${LOAD_SECONDS:-60}
concurrency=${LOAD_CONCURRENCY:-32}
queue=${LOAD_QUEUE:-2}
synth=${SYNTH_2B:-bench/cache/synth-2b-i2_s-f16.gguf}
[ -d openresty/test/node_modules/openai ] && [ -d openresty/test/node_modules/ai ] || npm install --prefix openresty/test --no-audit --no-fund --silent

port=$(( 20000 + RANDOM % 20000 ))
prefix=$(mktemp -d)
trap '[ -f "$prefix/logs/nginx.pid" ] && kill -TERM "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null; rm -rf "$prefix"' EXIT

# serve MODEL_ARGS...: starts the server; returns once /health answers
serve() {
  luajit bin/bitnet serve "$@" --port "$port" --prefix "$prefix" --workers 4 --threads 1 --slots 4 \
    --queue "$queue" --queue-timeout 10 > "$prefix.log" 2>&1 &
  for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    [ "$code" = 200 ] || [ "$code" = 503 ] && return 0
    sleep 0.1
  done
  cat "$prefix.log"; return 1
}
stop() {
  local pid; pid=$(cat "$prefix/logs/nginx.pid")
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$prefix/logs/nginx.pid"
}

status=0
echo "== shipped model: $concurrency streams for ${seconds}s, 4 workers" >&2
serve -n 64
node openresty/test/load.mjs --base "http://127.0.0.1:$port" --prefix "$prefix" --concurrency "$concurrency" \
  --duration "$seconds" --max-tokens 64 --label shipped || status=1
stop

echo "== shipped model: plain, JSON-schema and tool requests, $concurrency streams for ${MIX_SECONDS:-30}s" >&2
serve -n 64 -c 1024
node openresty/test/load.mjs --base "http://127.0.0.1:$port" --prefix "$prefix" --concurrency "$concurrency" \
  --duration "${MIX_SECONDS:-30}" --max-tokens 64 --label shipped-mix --mix plain,schema,tools || status=1
stop

if [ -f "$synth" ]; then
  echo "== synthetic 2B-shaped model ($synth)" >&2
  serve "$synth" -c 512 -n 32
  if curl -s "http://127.0.0.1:$port/health" | grep -q '"status":"ok"'; then
    node openresty/test/load.mjs --base "http://127.0.0.1:$port" --prefix "$prefix" --concurrency 8 \
      --duration "${SYNTH_SECONDS:-20}" --max-tokens 32 --label synth-2b || status=1
  else
    echo "skipped: the server cannot serve $synth:" >&2
    curl -s "http://127.0.0.1:$port/health" >&2; echo >&2
  fi
  stop
else
  echo "skipped the 2B-shaped run: $synth is not there (make bench writes it)" >&2
fi
exit $status
