#!/usr/bin/env bash
# On the GPU machine, from the repository root, bundle in .gpu/: decode steps of the Llama-3.1-8B-shape BF16 model,
# executor alone with CUDA graphs and without, side by side in one run, plus the served batch-1 ITL.
# JSON lines (name, command, result) go to $OUT/decode_compare.jsonl.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
results=$OUT/decode_compare.jsonl
: >>"$results"
record() {
  local name=$1; shift
  local out
  out=$("$@" 2>"/tmp/$name.err") || { echo "$name failed: $(tail -3 "/tmp/$name.err")"; return 1; }
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[2], "result": json.loads(sys.argv[3])}))' \
    "$name" "$*" "$out" >>"$results"
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); print(sys.argv[1], {k: r[k] for k in r if "decode" in k or "graph" in k or "step" in k})' "$name" "$out"
}
[[ -f $model/config.json ]] || $bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
record roofline $bin/tessera-gpu-roofline
for b in ${BATCHES:-1 64 256}; do
  for g in graphs eager; do
    flag=""; [[ $g == eager ]] && flag=--no-cuda-graphs
    record executor_b${b}_${g} $bin/tessera-executor-bench --device cuda --model $model --batch $b --input-len 128 \
      --output-len 128 --warmup 1 --repeat 2 $flag
  done
done
