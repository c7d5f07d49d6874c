#!/usr/bin/env bash
# Make .venv: a small virtualenv of this checkout whose dependencies come from a shared one.
# The shared venv (requirements.lock installed, torch is several GB) lives under
# ~/.cache/streamrank/venv-<hash of the lock>, so clones and CI runs install it once; each
# checkout's own .venv adds it with a .pth file and puts the checkout itself on the path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${STREAMRANK_CACHE:-$HOME/.cache/streamrank}
key=$(sha256sum "$root/requirements.lock" | cut -c1-12)
deps=$cache/venv-$key
if [ ! -f "$deps/.complete" ]; then
  echo "venv: installing requirements.lock into $deps (first time: several minutes)" >&2
  mkdir -p "$cache"
  rm -rf "$deps"
  python3 -m venv "$deps"
  "$deps/bin/pip" install -q --upgrade pip
  "$deps/bin/pip" install -q -r "$root/requirements.lock"
  touch "$deps/.complete"
fi
rm -f "$deps"/lib/python3*/site-packages/streamrank.pth  # left by an older version of this script

venv=$root/.venv
[ -L "$venv" ] && rm "$venv"  # an older version linked .venv to the shared venv
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.deps" 2>/dev/null)" != "$deps" ]; then
  rm -rf "$venv"
  "$deps/bin/python" -c 'import sys, venv; venv.create(sys.argv[1], with_pip=False, symlinks=True)' "$venv"
  echo "$deps" > "$venv/.deps"
fi
deps_site=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\nimport site; site.addsitedir("%s")\n' "$root" "$deps_site" > "$site/streamrank.pth"
for tool in faust pytest; do
  printf '#!/usr/bin/env bash\nexec "%s/bin/python" -m %s "$@"\n' "$venv" "$tool" > "$venv/bin/$tool"
done
printf '#!/usr/bin/env bash\nexec "%s/bin/python" -m app.cli "$@"\n' "$venv" > "$venv/bin/streamrank"
chmod +x "$venv/bin/faust" "$venv/bin/pytest" "$venv/bin/streamrank"
