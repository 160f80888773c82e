#!/usr/bin/env bash
# The study on a GPU machine (docs/study.md): dump the study preset's corpora with MODEL on CUDA,
# run the study grid on the CPUs, draw the report, and time the dump against a bare forward pass.
#
#   bash scripts/study-gpu.sh [--dry-run | --check] [MODEL]     MODEL defaults to bert-base-uncased
#
# MODEL comes from the local Hugging Face cache when it is there (then nothing is downloaded: such
# machines often cannot reach the hub), else from the hub; with neither the script stops with a
# message before doing anything. --dry-run checks the arguments and prints the commands only;
# --check only looks for the model (cache or hub) with the active Python.
# Outputs go under ${STUDY_OUT:-runs}/study-<model>{,.json,-report} and ${STUDY_OUT:-runs}/dump-benchmark.json.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0
check=0
model=bert-base-uncased
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    --check) check=1 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "study-gpu.sh: error: unknown option $arg (see --help)" >&2; exit 2 ;;
    *) model=$arg ;;
  esac
done
[ $# -le 2 ] || { echo "study-gpu.sh: error: give at most one MODEL (see --help)" >&2; exit 2; }

out=${STUDY_OUT:-runs}
slug=$(printf '%s' "$model" | tr -c 'A-Za-z0-9._-' '-')
store="$out/study-$slug"
commands=(
  "hs dump --preset study --model $model --device cuda --out $store"
  "hs eval $store --preset study --json $store.json"
  "hs report $store.json --out $store-report"
  "python benchmarks/dump.py --random-bert-base --device cuda --precision fp16 --json $out/dump-benchmark.json"
)
if [ "$dry" = 1 ]; then
  echo "model: $model"
  printf '%s\n' "bash scripts/setup.sh" "${commands[@]}"
  exit 0
fi

if [ "$check" = 0 ]; then
  bash scripts/setup.sh
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
status=0
python - "$model" <<'PY' || status=$?
import os, sys

model = sys.argv[1]
if os.path.isdir(model) or model in ("minilm", "mpnet"):
    sys.exit(0)
from huggingface_hub import try_to_load_from_cache

cached = isinstance(try_to_load_from_cache(model, "config.json"), str) and any(
    isinstance(try_to_load_from_cache(model, f), str) for f in ("model.safetensors", "pytorch_model.bin"))
if cached:
    print(f"{model}: found in the local Hugging Face cache")
    sys.exit(10)  # the caller then runs offline
try:
    from huggingface_hub import HfApi

    HfApi().model_info(model, timeout=15)
except Exception as exc:  # no network, hub down, unknown name: say which and stop
    sys.exit(f"study-gpu.sh: error: {model} is not in the local Hugging Face cache "
             f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and the hub cannot be reached "
             f"({type(exc).__name__}); copy its cache folder models--{model.replace('/', '--')} there, "
             f"or run where the hub is reachable")
PY
case "$status" in
  0) ;;
  10) export HF_HUB_OFFLINE=1 ;;
  *) exit 1 ;;
esac
[ "$check" = 0 ] || exit 0
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'study-gpu.sh: error: no CUDA device (torch.cuda.is_available() is False)')"
mkdir -p "$out"
for c in "${commands[@]}"; do
  echo "+ $c"
  time $c
done
