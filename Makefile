# The two entry points (see README.md): `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: venv kafka-start kafka-stop demo demo-stop test test-unit lint bench

venv:
	@scripts/venv.sh

kafka-start:
	@scripts/kafka.sh start

kafka-stop:
	@scripts/kafka.sh stop

demo: venv
	@scripts/demo.sh

demo-stop:
	@scripts/demo.sh stop

# Starts the project's Kafka unless KAFKA_BROKER names another, runs every test, stops
# the broker again if this target started it.
test: venv
	@scripts/test.sh

# ruff and mypy (also the first step of `make test`), in their own venv: scripts/lint.sh.
lint: venv
	@scripts/lint.sh

test-unit: venv
	@$(PY) -m pytest tests/unit tests/agents tests/gateway -q

bench: venv
	@$(PY) bench/ingest.py
