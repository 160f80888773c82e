#!/usr/bin/env bash
# Set up, dump all-MiniLM-L6-v2 over the 7 classic STS test sets and WikiText-2 (a few minutes on
# 2 CPU cores, about 2.5 GB), then evaluate a handful of recipes from the stored states.
# Idempotent: a second run reuses the store and the pooled-matrix cache.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
store=${HS_DEMO_STORE:-runs/minilm}
hs dump --model minilm --out "$store" \
  --task sts12 --task sts13 --task sts14 --task sts15 --task sts16 --task stsb --task sickr --task wikitext2
hs eval "$store" --task sts12 --task sts13 --task sts14 --task sts15 --task sts16 --task stsb --task sickr \
  --recipe 'layers=last;pool=mean' \
  --recipe 'layers=first-last;pool=mean' \
  --recipe 'layers=last;pool=cls' \
  --recipe 'layers=last;pool=max' \
  --recipe 'layers=last;drop=special;weights=idf@wikitext2' \
  --recipe 'layers=last;post=whiten@wikitext2' \
  --recipe 'layers=last;post=abtt:d=3@wikitext2' \
  --recipe 'layers=first-last;drop=special;post=zscore@wikitext2' \
  --csv "$store-demo.csv" --plot "$store-demo.png"
