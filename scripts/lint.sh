#!/usr/bin/env bash
# ruff over the tree, then mypy (strict on models/ and tables/; config in pyproject.toml).
# The linters live in their own venv, ~/.cache/streamrank/lint-<hash of requirements-lint.lock>,
# so they never touch the torch venv; mypy reads .venv's packages and keeps its cache beside
# the tools (a first run reads torch's stubs, minutes on a busy machine; later ones, seconds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${STREAMRANK_CACHE:-$HOME/.cache/streamrank}
key=$(sha256sum requirements-lint.lock | cut -c1-12)
tools=$cache/lint-$key
if [ ! -f "$tools/.complete" ]; then
  echo "lint: installing requirements-lint.lock into $tools" >&2
  mkdir -p "$cache"
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q -r requirements-lint.lock
  touch "$tools/.complete"
fi
"$tools/bin/ruff" check app agents tables models tests bench scripts
"$tools/bin/mypy" --python-executable .venv/bin/python --cache-dir "$tools/mypy-cache"
