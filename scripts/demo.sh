#!/usr/bin/env bash
# The demo: Kafka, a worker, the gateway, and the Amazon Beauty events streaming in.
#   scripts/demo.sh         start everything, replay, stay in the foreground (Ctrl-C stops all)
#   scripts/demo.sh stop    stop what a detached demo left running
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
run=$root/var/demo
mkdir -p "$run"
export STREAMRANK_STATE_DIR=${STREAMRANK_STATE_DIR:-$root/var}
port=${STREAMRANK_GATEWAY_PORT:-8080}
rate=${DEMO_RATE:-500}
# The admin API (manual rollback) needs a token; the demo sets one unless you do.
export STREAMRANK_ADMIN_TOKEN=${STREAMRANK_ADMIN_TOKEN:-demo-token}

stop_all() {
  for name in replay gateway encoder learner worker; do
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
# The online learner: one process (a second one started beside it would wait as a hot standby).
.venv/bin/streamrank learner > "$run/learner.log" 2>&1 &
echo $! > "$run/learner.pid"
# The item vectors for search are computed once, here, and every gateway loads them.
.venv/bin/streamrank encoder > "$run/encoder.log" 2>&1 &
echo $! > "$run/encoder.pid"
.venv/bin/streamrank gateway > "$run/gateway.log" 2>&1 &
echo $! > "$run/gateway.pid"
trap 'echo; echo "stopping the demo (Kafka keeps running: scripts/kafka.sh stop)"; stop_all' EXIT INT TERM

for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.5
done
# Catalog first, then the Beauty events (the learner trains on them as they come), then
# simulated search sessions on the live /v1/search (impressions and clicks for the click model).
(.venv/bin/streamrank replay --dataset homedepot --sessions 0 --rate "$((rate * 4))" > "$run/catalog.log" 2>&1;
 .venv/bin/streamrank replay --rate "$rate" --run-id "demo-$(date +%s)" > "$run/replay.log" 2>&1;
 .venv/bin/streamrank replay --dataset homedepot --sessions-only --sessions 2000 --rate 5 \
   --run-id "demo-$(date +%s)" > "$run/sessions.log" 2>&1) &
echo $! > "$run/replay.pid"
user=$(.venv/bin/python -c "from app.replay_data import first_user; from app.settings import Settings
print(first_user(Settings.from_env().data_dir / 'amazon-beauty' / 'Beauty.txt'))")
cat <<MSG

streamrank demo is up (logs in $run/):
  Kafka          127.0.0.1:${KAFKA_PORT:-19092}
  worker         faust -A app worker   metrics http://127.0.0.1:${STREAMRANK_WORKER_METRICS_PORT:-9101}/metrics
  gateway        http://127.0.0.1:$port
  encoder        catalog item vectors for search, on the item-vectors topic (readyz: "search")
  replay         Home Depot catalog, then Amazon Beauty events at $rate records/s, then search sessions
  learner        streamrank learner: a new online model version every ${STREAMRANK_VERSION_INTERVAL_S:-5} s,
                 metrics http://127.0.0.1:${STREAMRANK_LEARNER_METRICS_PORT:-9102}/metrics

Try:
  curl -s http://127.0.0.1:$port/v1/users/$user
  curl -s 'http://127.0.0.1:$port/v1/items/popular?k=5'
  curl -s 'http://127.0.0.1:$port/v1/recommend?user_id=$user&k=5'
  curl -s 'http://127.0.0.1:$port/v1/search?q=cordless+drill&k=5'
  curl -s http://127.0.0.1:$port/openapi.json
  curl -s http://127.0.0.1:$port/readyz
  curl -s -XPOST -H 'Content-Type: application/json' http://127.0.0.1:$port/v1/events -d '{"event_id":"demo-1","user_id":"$user","type":"click","item_id":"1"}'
  curl -s http://127.0.0.1:$port/metrics | grep ^streamrank_
  curl -s http://127.0.0.1:${STREAMRANK_LEARNER_METRICS_PORT:-9102}/metrics | grep -E '^streamrank_(online|model_decisions|learner|embedding)'
  curl -s -H "Authorization: Bearer $STREAMRANK_ADMIN_TOKEN" http://127.0.0.1:$port/v1/admin/model
  curl -s -XPOST -H "Authorization: Bearer $STREAMRANK_ADMIN_TOKEN" -H 'Content-Type: application/json' http://127.0.0.1:$port/v1/admin/model -d '{"action":"rollback","version":1}'

Ctrl-C stops the worker, learner, encoder, gateway and replay.
MSG
while kill -0 "$(cat "$run/worker.pid")" 2>/dev/null; do
  sleep 10
  counts=$(curl -s "http://127.0.0.1:$port/v1/users/$user" || true)
  echo "$(date +%T) user $user: $counts"
done
echo "worker stopped; see $run/worker.log"
