#!/usr/bin/env bash
# On the GPU machine: the HF transformers baseline (hf_baseline.py) and the per-kernel decode profile (profile.sh)
# on the 8B model; results in $OUT/hf.jsonl and $OUT/decode_profile.csv.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
model=/tmp/llama-3.1-8b-random
[[ -f $model/config.json ]] || .gpu/bin/tessera-model make --preset llama-3.1-8b --out $model --tokenizer .testdata/llama3/tokenizer.json --seed 1 >/dev/null
tools/gpu/profile.sh
PYTHONUNBUFFERED=1 timeout 360 python3 tools/gpu/hf_baseline.py --model $model \
  --runs 1x128x128 16x128x128 64x128x128 1x2048x128 16x1000x200 >"$OUT/hf.jsonl" 2>/tmp/hf.err || tail -5 /tmp/hf.err
cat "$OUT/hf.jsonl"
