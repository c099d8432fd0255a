#!/usr/bin/env bash
# On the GPU machine, from the repository root, bundle in .gpu/: the Llama-3.1-8B-shape BF16 benchmarks.
#   tools/gpu/benchmark.sh short   ceilings, executor alone, server: batch-1 ITL, TTFT at 2048, 128/128 and 2048/128
#   tools/gpu/benchmark.sh long    server: 1000/1000 at concurrency 1, 16, 64, 256
# Every number is written as JSON lines to $OUT/<mode>.jsonl with the command that made it.
set -uo pipefail
mode=${1:-short}
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
results=$OUT/$mode.jsonl
: >"$results"
record() {  # record NAME COMMAND...: runs it, appends {"name", "command", "result"} to the results
  local name=$1; shift
  local out
  out=$("$@" 2>"/tmp/$name.err") || { echo "$name failed: $(tail -3 "/tmp/$name.err")"; return 1; }
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[2], "result": json.loads(sys.argv[3])}))' \
    "$name" "$*" "$out" >>"$results"
  echo "$name done"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[[ -f $model/config.json ]] || /usr/bin/time -f "make 8B: %e s" $bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -2
start_server() {
  $bin/tessera-server --model $model --device cuda --listen ipc:///tmp/tessera-bench.sock --max-num-seqs 256 \
    --max-num-batched-tokens 2048 --max-waiting-requests 4096 --metrics-port 0 --log-level warn >/tmp/tessera-server.log 2>&1 &
  server=$!
  for _ in $(seq 600); do grep -q "^ready " /tmp/tessera-server.log && return 0; sleep 0.2; done
  echo "server did not start"; cat /tmp/tessera-server.log; return 1
}
sb() { $bin/tessera-serving-bench --server ipc:///tmp/tessera-bench.sock "$@"; }
if [[ $mode == short ]]; then
  record roofline $bin/tessera-gpu-roofline
  record executor_b1_128_128 $bin/tessera-executor-bench --device cuda --model $model --batch 1 --input-len 128 --output-len 128 --warmup 1 --repeat 2
  record executor_b64_128_128 $bin/tessera-executor-bench --device cuda --model $model --batch 64 --input-len 128 --output-len 128 --warmup 1 --repeat 2
  record executor_b256_128_128 $bin/tessera-executor-bench --device cuda --model $model --batch 256 --input-len 128 --output-len 128 --warmup 1 --repeat 1
  start_server || exit 1
  record served_ttft_2048 sb --concurrency 1 --num-requests 5 --input-len 2048 --output-len 1
  for c in 1 16 64 256; do
    record served_c${c}_128_128 sb --concurrency $c --num-requests $((2 * c)) --input-len 128 --output-len 128
  done
  for c in 1 16 64 256; do
    record served_c${c}_2048_128 sb --concurrency $c --num-requests $c --input-len 2048 --output-len 128
  done
else
  start_server || exit 1
  for c in 1 16 64 256; do
    record served_c${c}_1000_1000 sb --concurrency $c --num-requests $c --input-len 1000 --output-len 1000
  done
fi
kill -TERM $server; wait $server
echo "server exit: $?"
cp /tmp/tessera-server.log "$OUT/server-$mode.log"
