#!/usr/bin/env bash
# The demo: Kafka, a worker, the gateway, and one shop: the Home Depot catalog, and simulated
# shoppers who search it, click, add to cart and buy (Amazon Beauty stays the recommender benchmark).
# Search serves the newest fine-tuned checkpoint; without one it serves the pretrained model at
# once and fine-tunes in the background, and the gateway hot-swaps the new version in.
#   scripts/demo.sh         start everything, replay, stay in the foreground (Ctrl-C stops all)
#   scripts/demo.sh stop    stop what a detached demo left running
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export STREAMRANK_STATE_DIR=${STREAMRANK_STATE_DIR:-$root/var}
run=$STREAMRANK_STATE_DIR/demo  # logs and pids: a demo with a state dir of its own keeps its own
mkdir -p "$run"
port=${STREAMRANK_GATEWAY_PORT:-8080}
rate=${DEMO_RATE:-500}  # catalog records per second: x4
sessions=${DEMO_SESSIONS:-20000}  # shopper sessions, at DEMO_SESSION_RATE a second
session_rate=${DEMO_SESSION_RATE:-5}
shoppers=${DEMO_SHOPPERS:-200}  # a small pool: shoppers come back and build histories
# The background fine-tune: a slice of the catalog and capped steps, minutes on 2 cores.
finetune_items=${DEMO_FINETUNE_ITEMS:-4000}
finetune_steps=${DEMO_FINETUNE_STEPS:-200}
# The admin API (manual rollback) needs a token; the demo sets one unless you do.
export STREAMRANK_ADMIN_TOKEN=${STREAMRANK_ADMIN_TOKEN:-demo-token}

stop_all() {
  for name in finetune replay gateway encoder learner worker; do
    if [ -f "$run/$name.pid" ]; then
      pkill -P "$(cat "$run/$name.pid")" 2>/dev/null || true  # the replay runs in a subshell
      kill "$(cat "$run/$name.pid")" 2>/dev/null || true
      rm -f "$run/$name.pid"
    fi
  done
}

if [ "${1:-}" = "stop" ]; then stop_all; scripts/kafka.sh stop; exit 0; fi

scripts/kafka.sh start
.venv/bin/streamrank topics
.venv/bin/faust -A app worker --without-web -l info > "$run/worker.log" 2>&1 &
echo $! > "$run/worker.pid"
# The online learner: one process (a second one started beside it would wait as a hot standby),
# at idle CPU priority (STREAMRANK_LEARNER_CPU_PRIORITY): the event path gets the cores first.
.venv/bin/streamrank learner > "$run/learner.log" 2>&1 &
echo $! > "$run/learner.pid"
# The item vectors for search are computed once, here, and every gateway loads them.
# At low priority: on shared cores, encoding tens of thousands of titles must not delay events.
nice -n 10 .venv/bin/streamrank encoder > "$run/encoder.log" 2>&1 &
echo $! > "$run/encoder.pid"
.venv/bin/streamrank gateway > "$run/gateway.log" 2>&1 &
echo $! > "$run/gateway.pid"
trap 'echo; echo "stopping the demo (Kafka keeps running: scripts/kafka.sh stop)"; stop_all' EXIT INT TERM

for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.5
done
# Catalog first, then shoppers on the live /v1/search: searches, impressions, clicks, carts and
# purchases (the learner trains on them as they come; recommendations and trending follow them).
(.venv/bin/streamrank replay --dataset homedepot --sessions 0 --rate "$((rate * 4))" > "$run/catalog.log" 2>&1;
 # Shoppers start once the worker has the whole catalog: their first events would otherwise
 # wait behind a minute of catalog records (the processing lag the demo reports).
 want=$(sed -n 's/^replayed \([0-9]*\) .*/\1/p' "$run/catalog.log")
 for _ in $(seq 1 600); do
   have=$(curl -s "http://127.0.0.1:$port/readyz" | .venv/bin/python -c \
     'import json, sys; print(json.load(sys.stdin)["records"].get("catalog", 0))' 2>/dev/null || echo 0)
   [ "${have:-0}" -ge "${want:-0}" ] && break
   sleep 1
 done
 .venv/bin/streamrank replay --dataset homedepot --sessions-only --sessions "$sessions" --rate "$session_rate" \
   --users "$shoppers" --run-id "demo-$(date +%s)" > "$run/sessions.log" 2>&1) &
echo $! > "$run/replay.pid"
# No search checkpoint yet: fine-tune one at low priority; the gateway swaps it in when it is saved.
if ls "$STREAMRANK_STATE_DIR/models/search"/v[0-9]* >/dev/null 2>&1; then
  finetune="serving the newest checkpoint of $STREAMRANK_STATE_DIR/models/search"
else
  nice -n 10 .venv/bin/streamrank finetune --max-items "$finetune_items" --max-steps "$finetune_steps" \
    --encoder-epochs 0 > "$run/finetune.log" 2>&1 &
  echo $! > "$run/finetune.pid"
  finetune="pretrained now; fine-tuning in the background ($run/finetune.log), hot-swapped when saved"
fi
read -r user item < <(.venv/bin/python -c "from app.jobs.replay import demo_shopper; from app.settings import Settings
print(*demo_shopper(Settings.from_env(), $shoppers))")
cat <<MSG

streamrank demo is up (logs in $run/):
  Kafka          127.0.0.1:${KAFKA_PORT:-19092}
  worker         faust -A app worker   metrics http://127.0.0.1:${STREAMRANK_WORKER_METRICS_PORT:-9101}/metrics
  gateway        http://127.0.0.1:$port
  pages          storefront http://127.0.0.1:$port/   operations http://127.0.0.1:$port/ops
  encoder        catalog item vectors for search, on the item-vectors topic (readyz: "search")
  replay         Home Depot catalog, then $shoppers shoppers searching, clicking, adding to cart and buying
                 ($session_rate sessions/s; shopper $user is the first)
  search model   $finetune
  learner        streamrank learner: a new online model version every ${STREAMRANK_VERSION_INTERVAL_S:-5} s,
                 metrics http://127.0.0.1:${STREAMRANK_LEARNER_METRICS_PORT:-9102}/metrics

Try:
  curl -s http://127.0.0.1:$port/v1/users/$user
  curl -s 'http://127.0.0.1:$port/v1/items/popular?k=5'
  curl -s 'http://127.0.0.1:$port/v1/recommend?user_id=$user&k=5'
  curl -s 'http://127.0.0.1:$port/v1/search?q=cordless+drill&k=5&user_id=$user'
  curl -s http://127.0.0.1:$port/v1/items/$item
  curl -s 'http://127.0.0.1:$port/v1/items/$item/similar?k=5'
  curl -s http://127.0.0.1:$port/openapi.json
  curl -s http://127.0.0.1:$port/readyz
  curl -s -XPOST -H 'Content-Type: application/json' http://127.0.0.1:$port/v1/events -d '{"event_id":"demo-1","user_id":"$user","type":"add_to_cart","item_id":"$item"}'
  curl -s http://127.0.0.1:$port/metrics | grep ^streamrank_
  curl -s http://127.0.0.1:${STREAMRANK_LEARNER_METRICS_PORT:-9102}/metrics | grep -E '^streamrank_(online|model_decisions|learner|embedding)'
  curl -s -H "Authorization: Bearer $STREAMRANK_ADMIN_TOKEN" http://127.0.0.1:$port/v1/admin/model
  curl -s -XPOST -H "Authorization: Bearer $STREAMRANK_ADMIN_TOKEN" -H 'Content-Type: application/json' http://127.0.0.1:$port/v1/admin/model -d '{"action":"rollback","version":1}'

Ctrl-C stops the worker, learner, encoder, gateway, replay and fine-tune.
MSG
while kill -0 "$(cat "$run/worker.pid")" 2>/dev/null; do
  sleep 10
  counts=$(curl -s "http://127.0.0.1:$port/v1/users/$user" || true)
  search=$(curl -s "http://127.0.0.1:$port/readyz" | .venv/bin/python -c "import json, sys
print(json.load(sys.stdin).get('search', {}).get('model_version'))" 2>/dev/null || true)
  echo "$(date +%T) search model $search; user $user: $counts"
done
echo "worker stopped; see $run/worker.log"
