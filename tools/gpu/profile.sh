#!/usr/bin/env bash
# On the GPU machine: per-kernel GPU time of one batch-1 decode step of the 8B model (ncu, one metric), written as CSV
# to $OUT/decode_profile.csv; tools/gpu/profile_summary.py turns it into a table. Expects the model that
# benchmark.sh writes.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
model=/tmp/llama-3.1-8b-random
[[ -f $model/config.json ]] || .gpu/bin/tessera-model make --preset llama-3.1-8b --out $model --tokenizer .testdata/llama3/tokenizer.json --seed 1 >/dev/null
# Prefill of 128 tokens + 2 decode steps; the CSV holds every kernel, the summary keeps the last decode step.
ncu --metrics gpu__time_duration.sum --csv --log-file /tmp/ncu.log .gpu/bin/tessera-executor-bench --device cuda \
  --model $model --batch 1 --input-len 128 --output-len 3 --warmup 0 --repeat 1 >/dev/null 2>/tmp/ncu.err
cp /tmp/ncu.log "$OUT/decode_profile.csv"
tail -3 /tmp/ncu.err
