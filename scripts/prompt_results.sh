#!/bin/bash
# The prompt and Ditto tables of docs/results.md, from a MiniLM store holding the 7 STS tasks plain
# (with attention diagonals) and wrapped in PromptBERT's template:
#   T="-t sts12 -t sts13 -t sts14 -t sts15 -t sts16 -t stsb -t sickr"
#   hs dump --model minilm $T --attention-diagonals --out STORE
#   hs dump --model minilm $T --template promptbert --out STORE
# usage: bash scripts/prompt_results.sh STORE OUTDIR
set -euo pipefail
STORE=$1; OUT=$2; mkdir -p "$OUT"
T="-t sts12 -t sts13 -t sts14 -t sts15 -t sts16 -t stsb -t sickr"
# read-outs, each without and with quantile (fitted on the task's own sentences)
hs eval "$STORE" $T -q --post none --post quantile --csv "$OUT/readouts.csv" \
  -r 'pool=mean' -r 'pool=mean;weights=idf' \
  -r 'view=prompt:template=promptbert;pool=mask' -r 'view=prompt:template=promptbert;pool=mask:denoise=yes' \
  -r 'view=prompt:template=promptbert;pool=mean' -r 'view=prompt:template=promptbert;pool=mean;weights=idf' \
  -r 'view=prompt:template=promptbert;drop=special+template' \
  -r 'view=prompt:template=promptbert;drop=special+template;weights=idf'
# Ditto: last-layer states weighted by a_ii, every attention layer and head (one layer per run keeps memory low)
for L in 1 2 3 4 5 6; do
  hs eval "$STORE" $T -q --no-cache --csv "$OUT/ditto-L$L.csv" $(for H in $(seq 0 11); do echo --weights ditto:layer=$L:head=$H; done)
done
