#!/usr/bin/env bash
# The whole test suite against a real broker: ours (started and stopped here) or KAFKA_BROKER's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=0
if [ -z "${KAFKA_BROKER:-}" ]; then
  if ! scripts/kafka.sh status >/dev/null 2>&1; then
    scripts/kafka.sh start
    started=1
  fi
fi
stop() { if [ $started = 1 ]; then scripts/kafka.sh stop; fi; }
trap stop EXIT
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
