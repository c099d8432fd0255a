#!/usr/bin/env bash
# On the GPU machine, from the repository root, bundle in .gpu/: the batch-1 decode ITL against its roofline in one
# run, for a kernel change. The GPU tests (GTEST_FILTER narrows them), the ceilings (tessera-gpu-roofline), the
# batch-1 decode step of this build and, side by side, of other builds or settings (VARIANTS; by default a baseline
# build bundled as .gpu/bin/tessera-executor-bench-base) in alternating rounds, the served batch-1 ITL through
# tessera-bench, and an ncu profile of one batch-1 decode step at the card's own clocks (--clock-control none).
#   $OUT/itl.jsonl            one line per measurement: name, command, result
#   $OUT/tests.log            the GPU tests' output
#   $OUT/decode_profile.csv   ncu, one row per kernel of a prefill + 2 decode steps (batch PROFILE_BATCH, default 1)
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
if [[ $PWD != /work/main ]]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
results=$OUT/itl.jsonl
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
record() {  # record NAME JSON COMMAND
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[3], "result": json.loads(sys.argv[2])}))' \
    "$1" "$2" "$3" >>"$results"
}
if [[ ${TESTS:-1} == 1 ]]; then
  for t in tessera_kernels_cuda_tests tessera_cuda_executor_tests; do
    [[ -x $bin/$t ]] || continue
    timeout 400 $bin/$t --gtest_filter="${GTEST_FILTER:-*}" >"/tmp/$t.log" 2>&1
    cat "/tmp/$t.log" >>"$OUT/tests.log"
    echo "=== $t: $(grep -E '^\[  (PASSED|FAILED) ' "/tmp/$t.log" | tr '\n' ' ')"
    grep -E "^\[  FAILED  \]" "/tmp/$t.log" | head -20
  done
fi
[[ -f $model/config.json ]] || $bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
roof=$($bin/tessera-gpu-roofline 2>/dev/null) && record roofline "$roof" "tessera-gpu-roofline"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print({k: v for k, v in r.items() if not isinstance(v, (dict, list))})' "$roof"
step_args=(--device cuda --model $model --batch 1 --input-len 128 --output-len 128 --warmup 1 --repeat 2)
# VARIANTS: space-separated NAME|BINARY|ENV (ENV may be empty or VAR=value,VAR=value), measured in turn each round.
variants=${VARIANTS:-"this|tessera-executor-bench| base|tessera-executor-bench-base|"}
for round in $(seq ${ROUNDS:-3}); do
  for spec in $variants; do
    IFS='|' read -r name exe env_list <<<"$spec"
    [[ -x $bin/$exe ]] || continue
    envs=(); [[ -n $env_list ]] && IFS=',' read -r -a envs <<<"$env_list"
    out=$(env "${envs[@]}" $bin/$exe "${step_args[@]}" 2>/dev/null) || { echo "$name failed"; continue; }
    record "executor_b1_${name}_round$round" "$out" "${envs[*]} $exe ${step_args[*]}"
    echo "round $round $name: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["decode_step_median_ms"])' "$out") ms"
  done
done
if [[ ${SERVED:-1} == 1 ]]; then
  $bin/tessera-server --model $model --device cuda --listen ipc:///tmp/tessera-itl.sock --max-num-seqs 256 \
    --max-num-batched-tokens 2048 --metrics-port 0 --log-level warn >/tmp/server.log 2>&1 &
  server=$!
  for _ in $(seq 600); do grep -q "^ready " /tmp/server.log && break; sleep 0.2; done
  cmd=($bin/tessera-bench --server ipc:///tmp/tessera-itl.sock --concurrency 1 --num-requests 8 --warmup-requests 1
    --input-len 128 --output-len 128 --tokenizer $model --seed 1 --quiet --output /tmp/itl_served)
  if "${cmd[@]}" >/tmp/itl_served.txt 2>&1; then
    summary=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["runs"][0]["summary"]))' \
      /tmp/itl_served/bench.json)
    record served_c1_128_128 "$summary" "${cmd[*]}"
    python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print("served batch 1: ITL p50", s["itl_ms"]["p50"], "ms, TTFT p50", s["ttft_ms"]["p50"], "ms")' "$summary"
  else
    echo "served run failed"; tail -3 /tmp/itl_served.txt
  fi
  kill -TERM $server; wait $server
fi
if [[ ${PROFILE:-1} == 1 ]]; then
  ncu --clock-control none --metrics gpu__time_duration.sum --csv --log-file /tmp/ncu.log $bin/tessera-executor-bench \
    --device cuda --model $model --batch ${PROFILE_BATCH:-1} --input-len 128 --output-len 3 --warmup 0 --repeat 1 \
    >/dev/null 2>/tmp/ncu.err
  cp /tmp/ncu.log "$OUT/decode_profile.csv"
  python3 tools/gpu/profile_summary.py "$OUT/decode_profile.csv" 2>/dev/null | head -20
fi
