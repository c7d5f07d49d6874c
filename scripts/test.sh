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
# tests/browser drives the pages in headless Chromium (Debian's packages; root, as in CI).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "chromium and chromium-driver are missing: tests/browser will skip (fail where CI is set)" >&2
  fi
fi
scripts/lint.sh  # ruff and mypy first: seconds, once their venv and cache exist
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
