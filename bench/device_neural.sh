#!/usr/bin/env bash
# Issue 17's GPU check, as one prepared run for the tool library's `device` machine (one
# NVIDIA H200; its python3 holds torch, numpy and safetensors, but not aiokafka or orjson,
# and nothing can be fetched there). The same script runs here on the CPU, to try it first.
#
#   bench/device_neural.sh prepare   # here, once: Beauty into .devdata/, the wheels the
#                                    # device lacks into .whl/ (both git-ignored locally)
#   device run: command "bash bench/device_neural.sh", carry [".devdata", ".whl"], timeout_s 570
#   SIZE=small bench/device_neural.sh   # here, on .venv: a few minutes
#
# Writes into $OUT (else var/device/): devices.txt, learner.log/.json (bench/learner.py: the
# count learner's and the neural learner's samples/s beside counting alone, shards on every
# CUDA device) and time_split.log/.json (`evaluate online --protocol time-split`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
  mkdir -p .devdata/amazon-beauty .whl
  cp ../shared/data/amazon-beauty/Beauty.txt ../shared/data/amazon-beauty/Beauty_item2attributes.json .devdata/amazon-beauty/
  # Python 3.12 there; versions as requirements.lock pins them.
  pin() { grep -i "^$1==" requirements.lock; }
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$(pin aiokafka)" "$(pin orjson)" "$(pin async-timeout)"
  for path in /.devdata/ /.whl/; do
    grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude
  done
  du -sh .devdata .whl
  exit 0
fi

out=${OUT:-var/device}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=.venv/bin/python
if [ ! -x "$py" ]; then  # the device machine: its python3, plus the carried wheels
  py=python3
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
data=.devdata
[ -d "$data/amazon-beauty" ] || data=../shared/data
export STREAMRANK_DATA_DIR=$data

{ nvidia-smi -L 2>/dev/null || echo "no CUDA device: a CPU run"; "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.device_count())"; } > "$out/devices.txt"
cat "$out/devices.txt"

if [ "${SIZE:-full}" = small ]; then
  learner_args=(--samples 5000 --neural-samples 1000)
  split_args=(--max-events 2000 --epochs 2)
else
  learner_args=(--samples 60000 --neural-samples 20000)
  split_args=(--epochs 20)
fi
"$py" bench/learner.py --data "$data/amazon-beauty/Beauty.txt" --threads 4 "${learner_args[@]}" 2>&1 | tee "$out/learner.log"
tail -n 1 "$out/learner.log" > "$out/learner.json"
# The time split last: the longer of the two, cut off (its log kept) rather than losing the first.
timeout "${SPLIT_TIMEOUT_S:-420}" "$py" -m app evaluate online --protocol time-split --threads 4 \
  --data "$data/amazon-beauty/Beauty.txt" --attributes "$data/amazon-beauty/Beauty_item2attributes.json" \
  "${split_args[@]}" 2>&1 | tee "$out/time_split.log" || echo "time split: exit $? (124: cut off)"
tail -n 1 "$out/time_split.log" > "$out/time_split.json"
