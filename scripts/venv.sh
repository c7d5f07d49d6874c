#!/usr/bin/env bash
# Make .venv point at a virtualenv with requirements.lock installed. The venv lives under
# ~/.cache/streamrank (keyed by the lock's hash) so a fresh clone reuses the multi-GB torch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${STREAMRANK_CACHE:-$HOME/.cache/streamrank}
key=$(cat "$root/requirements.lock" | sha256sum | cut -c1-12)
venv=$cache/venv-$key
if [ ! -f "$venv/.complete" ]; then
  echo "venv: installing requirements.lock into $venv (first time: several minutes)" >&2
  mkdir -p "$cache"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$root/requirements.lock"
  touch "$venv/.complete"
fi
# The project itself is put on the path with a .pth file: no build, and each clone
# that runs this script points the shared venv at its own checkout.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$root" > "$site/streamrank.pth"
cat > "$venv/bin/streamrank" <<SH
#!/usr/bin/env bash
exec "$venv/bin/python" -m app.cli "\$@"
SH
chmod +x "$venv/bin/streamrank"
ln -sfn "$venv" "$root/.venv"
