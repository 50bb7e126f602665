#!/usr/bin/env bash
# `make bench-pull`: bitnet pull of a 1 GiB file from the stand-in Hub
# (tests/hub/standin_hub.py, on 127.0.0.1) against curl fetching the same
# file from the same server (the resolve URL, following the redirect to the
# storage port, as pull does), three runs each, interleaved; the best of
# each is compared. Also the peak memory (max RSS) of the pull. Not CI.
# Results: bench/cache/pull-results.md (and stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
LUA=${LUA:-lua5.4}
CACHE=bench/cache/pull
FILE=$CACHE/synthetic-1g.gguf
mkdir -p "$CACHE"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne 1073741824 ]; then
  head -c 1073741824 /dev/urandom > "$FILE"   # random: no compression anywhere helps either side
fi
cat > "$CACHE/config.json" <<JSON
{"repos": {"bench/synthetic-1g": {"files": {"synthetic-1g.gguf": "$PWD/$FILE"}}}}
JSON
python3 tests/hub/standin_hub.py "$CACHE/config.json" > "$CACHE/ports.json" 2> "$CACHE/hub.log" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null; rm -rf "$CACHE/hf" "$CACHE/curl.out" "$CACHE/time"' EXIT
for _ in $(seq 1 300); do grep -q '}' "$CACHE/ports.json" 2>/dev/null && break; sleep 0.1; done
PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hub"])' "$CACHE/ports.json")
URL="http://127.0.0.1:$PORT/bench/synthetic-1g/resolve/main/synthetic-1g.gguf"
export HF_ENDPOINT="http://127.0.0.1:$PORT"

best_curl=0; best_pull=0; max_rss=0
for run in 1 2 3; do
  rm -f "$CACHE/curl.out"; sync
  /usr/bin/time -o "$CACHE/time" -f '%e' curl -sfL -o "$CACHE/curl.out" "$URL"
  t=$(cat "$CACHE/time")
  curl_mbs=$(python3 -c "print(1024 / $t)")
  rm -rf "$CACHE/hf"; sync
  HF_HUB_CACHE="$CACHE/hf" /usr/bin/time -o "$CACHE/time" -f '%e %M' $LUA bin/bitnet pull bench/synthetic-1g > /dev/null
  read -r pt rss < "$CACHE/time"
  pull_mbs=$(python3 -c "print(1024 / $pt)")
  echo "run $run: curl $t s ($curl_mbs MiB/s), pull $pt s ($pull_mbs MiB/s), pull max RSS $rss KiB"
  best_curl=$(python3 -c "print(max($best_curl, $curl_mbs))")
  best_pull=$(python3 -c "print(max($best_pull, $pull_mbs))")
  max_rss=$(( rss > max_rss ? rss : max_rss ))
done
# the pulled file is the file
want=$(sha256sum "$FILE" | cut -d' ' -f1)
got=$(sha256sum "$CACHE"/hf/models--bench--synthetic-1g/snapshots/*/synthetic-1g.gguf | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "the pulled file differs: $got, not $want"; exit 1; }
ratio=$(python3 -c "print(round(100 * $best_pull / $best_curl, 1))")
{
  echo "| | best of 3 | "
  echo "|---|---|"
  echo "| curl -L (resolve URL, redirect, write) | $(python3 -c "print(round($best_curl))") MiB/s |"
  echo "| bitnet pull (API, HEAD, redirect, write, SHA-256) | $(python3 -c "print(round($best_pull))") MiB/s ($ratio% of curl) |"
  echo "| bitnet pull, peak memory (max RSS of the 3 runs) | $((max_rss / 1024)) MiB |"
} | tee bench/cache/pull-results.md
python3 -c "import sys; sys.exit(0 if $ratio >= 80 and $max_rss < 32768 else 1)" \
  || { echo "below the bar: >= 80% of curl and < 32 MiB"; exit 1; }
