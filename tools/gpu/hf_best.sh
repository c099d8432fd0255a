#!/usr/bin/env bash
# On the GPU machine: HF transformers' better settings (static cache; static cache + torch.compile) on the 8B model.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
model=/tmp/llama-3.1-8b-random
[[ -f $model/config.json ]] || .gpu/bin/tessera-model make --preset llama-3.1-8b --out $model --tokenizer .testdata/llama3/tokenizer.json --seed 1 >/dev/null
PYTHONUNBUFFERED=1 timeout 200 python3 tools/gpu/hf_baseline.py --model $model --cache static --runs 1x128x128 64x128x128 \
  >>"$OUT/hf_best.jsonl" 2>/tmp/hf_static.err || { echo "static failed:"; tail -4 /tmp/hf_static.err; }
PYTHONUNBUFFERED=1 timeout 330 python3 tools/gpu/hf_baseline.py --model $model --cache static --compile --runs 1x128x128 64x128x128 \
  >>"$OUT/hf_best.jsonl" 2>/tmp/hf_compile.err || { echo "compile failed:"; tail -6 /tmp/hf_compile.err; cp /tmp/hf_compile.err "$OUT/"; }
# torch.compile without CUDA graphs (the reduce-overhead mode's graphs clash with the static cache's in-place update)
PYTHONUNBUFFERED=1 timeout ${COMPILE_TIMEOUT:-300} python3 tools/gpu/hf_baseline.py --model $model --cache static --compile \
  --compile-mode default --runs ${COMPILE_RUNS:-1x128x128 64x128x128} \
  >>"$OUT/hf_best.jsonl" 2>/tmp/hf_compile_default.err || { echo "compile (default mode) failed:"; tail -6 /tmp/hf_compile_default.err; }
cat "$OUT/hf_best.jsonl"
