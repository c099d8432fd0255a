#!/usr/bin/env bash
# On the GPU machine, from the repository root, bundle in .gpu/: every GPU test, the decode-attention microbenchmark,
# decode steps of the 8B model (CUDA graphs vs eager; PDL on vs off) and the served batch-1 ITL through
# tessera-bench. Logs and JSON lines into $OUT (few files: the device tool returns at most 8).
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
if [[ $PWD != /work/main ]]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
status=0
for t in tessera_kernels_cuda_tests tessera_cuda_executor_tests tessera_step_inputs_tests; do
  timeout 300 $bin/$t >"/tmp/$t.log" 2>&1 || status=1
  cat "/tmp/$t.log" >>"$OUT/tests.log"
  echo "=== $t: $(grep -E '^\[  (PASSED|FAILED) ' "/tmp/$t.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "/tmp/$t.log" | head -20
done
[[ -x $bin/tessera-attention-bench ]] && timeout 180 $bin/tessera-attention-bench >"$OUT/attention_bench.jsonl" 2>&1
tail -12 "$OUT/attention_bench.jsonl" 2>/dev/null
[[ ${SKIP_DECODE:-0} == 1 ]] || BATCHES=${BATCHES:-1 64 256} timeout 330 tools/gpu/decode_compare.sh
if [[ ${PDL_COMPARE:-1} == 1 ]]; then
  # Batch-1 decode step with each diagnostic switch off in turn (same binary, same run).
  for env in "TESSERA_PDL=1" "TESSERA_PDL=0" "TESSERA_FUSED_NORM=1"; do
    out=$(env $env $bin/tessera-executor-bench --device cuda --model $model --batch 1 --input-len 128 \
      --output-len 128 --warmup 1 --repeat 2 2>/dev/null)
    python3 -c 'import json,sys; print(json.dumps({"name": "executor_b1_" + sys.argv[1], "command": sys.argv[1] + " tessera-executor-bench --device cuda --batch 1 --input-len 128 --output-len 128 --warmup 1 --repeat 2", "result": json.loads(sys.argv[2])}))' "$env" "$out" >>"$OUT/decode_compare.jsonl"
    echo "$env: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["decode_step_median_ms"])' "$out")"
  done
fi
if [[ ${SERVED:-1} == 1 ]]; then
  $bin/tessera-server --model $model --device cuda --listen ipc:///tmp/tessera-check.sock --max-num-seqs 256 \
    --max-num-batched-tokens 2048 --metrics-port 0 --log-level warn >/tmp/server.log 2>&1 &
  server=$!
  for _ in $(seq 600); do grep -q "^ready " /tmp/server.log && break; sleep 0.2; done
  for c in 1 64; do
    out=$($bin/tessera-serving-bench --server ipc:///tmp/tessera-check.sock --concurrency $c --num-requests $((2 * c)) \
      --input-len 128 --output-len 128 2>/dev/null)
    python3 -c 'import json,sys; print(json.dumps({"name": "served_c" + sys.argv[1] + "_128_128", "command": "tessera-serving-bench --concurrency " + sys.argv[1] + " --num-requests 2c --input-len 128 --output-len 128", "result": json.loads(sys.argv[2])}))' "$c" "$out" >>"$OUT/decode_compare.jsonl"
    echo "served c=$c: $out" | cut -c1-400
  done
  kill -TERM $server; wait $server; echo "server exit $?"
  cp /tmp/server.log "$OUT/server.log"
fi
exit $status
