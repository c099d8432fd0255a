#!/usr/bin/env bash
# On the GPU machine: HF transformers on the same GPU and random Llama-3.1-8B-shape weights as serving_matrix.sh, the
# side-by-side baseline (greedy, exact output lengths). Eager with the dynamic cache (HF's fastest setting measured in
# the first session: its static cache was slower and torch.compile's CUDA-graph mode failed), then one attempt at
# torch.compile without CUDA graphs. HF's generate is about 100 ms per step here, so the long workloads use fewer
# output tokens (the per-step time, hence tokens/s at that batch, is what compares). Lines in $OUT/hf.jsonl.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
model=/tmp/llama-3.1-8b-random
[[ -f $model/config.json ]] || .gpu/bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 >/dev/null
PYTHONUNBUFFERED=1 timeout ${EAGER_TIMEOUT:-330} python3 tools/gpu/hf_baseline.py --model $model \
  --runs ${EAGER_RUNS:-1x128x128 16x128x128 64x128x128 256x128x64 1x2048x128 16x2048x64 1x1000x200 16x1000x200 64x1000x100} \
  >>"$OUT/hf.jsonl" 2>/tmp/hf_eager.err || { echo "eager failed:"; tail -4 /tmp/hf_eager.err; }
PYTHONUNBUFFERED=1 timeout ${COMPILE_TIMEOUT:-240} python3 tools/gpu/hf_baseline.py --model $model --cache static \
  --compile --compile-mode default --runs 1x128x128 \
  >>"$OUT/hf.jsonl" 2>/tmp/hf_compile.err || { echo "compile (default mode) failed:"; tail -6 /tmp/hf_compile.err; \
  tail -40 /tmp/hf_compile.err >"$OUT/hf_compile_error.txt"; }
cat "$OUT/hf.jsonl"
