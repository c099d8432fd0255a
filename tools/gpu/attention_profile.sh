#!/usr/bin/env bash
# On the GPU machine: decode attention at high concurrency and long context (batch 256, contexts ~1000): ncu time and
# DRAM bytes of the 32 decode_kernel launches of one decode step, and the executor's decode step time.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
model=/tmp/llama-3.1-8b-random
[[ -f $model/config.json ]] || .gpu/bin/tessera-model make --preset llama-3.1-8b --out $model --tokenizer .testdata/llama3/tokenizer.json --seed 1 >/dev/null
.gpu/bin/tessera-executor-bench --device cuda --model $model --batch 256 --input-len 1000 --output-len 8 --repeat 1 >"$OUT/executor_b256_1000.json"
# 256 one-sequence prefill steps launch decode_kernel 32 times each (it returns at once for prefill rows): skip them.
ncu -k regex:decode_kernel --launch-skip 8192 --launch-count 32 --metrics gpu__time_duration.sum,dram__bytes_read.sum \
  --csv --log-file "$OUT/attention_profile.csv" .gpu/bin/tessera-executor-bench --device cuda --model $model --batch 256 \
  --input-len 1000 --output-len 3 --repeat 1 >/dev/null 2>/tmp/ncu.err || tail -3 /tmp/ncu.err
cat "$OUT/executor_b256_1000.json"
