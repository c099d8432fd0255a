#!/usr/bin/env bash
# On the GPU machine, from the repository root, bundle in .gpu/: the attention kernels' launch shapes side by side
# (kernels/attention_tuning.hpp), from the kernel alone to the served 1000/1000 workload:
#   TESSERA_DECODE_LARGE_GRID      decode attention for large batches: 4 = 4 warps x 3 blocks per SM (default),
#                                  2 = 2 warps x 6, auto = by the card's DRAM bandwidth per SM
#   TESSERA_PREFILL_BLOCKS_PER_SM  the tensor-core prefill kernel: 2 blocks per SM (default) or 3
# PARTS (default "tests attention step prefill") picks the parts; "served" takes ~2.5 min per entry on an H200, so
# run it in a call of its own:
#   tests      the paged-attention GPU tests (every shape and occupancy against the CPU reference; the executor's own
#              GPU tests never reach a large grid: they run at most 16 sequences)
#   attention  tessera-attention-bench: its 256-sequence decode cases in both shapes, its prefill cases at both
#              occupancies (TFLOP/s of the prefill kernel)
#   step       tessera-executor-bench at 256 x INPUT_LEN (default 1000, 64 decode steps), TESSERA_DECODE_LARGE_GRID
#              of SETTINGS (default "4 2") alternating for ROUNDS rounds (default 2)
#   prefill    tessera-executor-bench's 2048-token prefill (the TTFT case, batch 1), TESSERA_PREFILL_BLOCKS_PER_SM
#              2 and 3 alternating for ROUNDS rounds
#   served     tessera-server + tessera-bench, 1000/1000 at concurrency 256 (1,024 requests) per entry of SERVED
#              (default "4:2048:2 2:2048:2 2:2048:3": large-grid setting:max-num-batched-tokens:prefill blocks per
#              SM[:capacity policy, default max_utilization]; the matrix's budget is 2048), as
#              tools/gpu/serving_matrix.sh runs it;
#              tools/gpu/step_timeline.py splits each run's time into steps
#   $OUT/attention_tuning_ab.jsonl   one line per measurement: name, command, result
#   $OUT/tests.log                   the GPU tests' output
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
if [[ $PWD != /work/main ]]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
results=$OUT/attention_tuning_ab.jsonl
parts=" ${PARTS:-tests attention step prefill} "
settings=${SETTINGS:-"4 2"}
record() {  # record NAME JSON COMMAND
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[3], "result": json.loads(sys.argv[2])}))' \
    "$1" "$2" "$3" >>"$results"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
if [[ $parts == *" tests "* ]]; then
  timeout 300 $bin/tessera_kernels_cuda_tests --gtest_filter='PagedAttention*' >/tmp/kernels.log 2>&1
  cat /tmp/kernels.log >>"$OUT/tests.log"
  echo "=== kernel tests: $(grep -E '^\[  (PASSED|FAILED) ' /tmp/kernels.log | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" /tmp/kernels.log | head -20
fi
[[ -f $model/config.json ]] || $bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
roof=$($bin/tessera-gpu-roofline 2>/dev/null) && record roofline "$roof" "tessera-gpu-roofline"
if [[ $parts == *" attention "* ]]; then
  $bin/tessera-attention-bench >/tmp/attention.jsonl 2>/tmp/attention.err || tail -3 /tmp/attention.err
  while read -r line; do record attention "$line" "tessera-attention-bench"; done </tmp/attention.jsonl
  python3 - /tmp/attention.jsonl <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["bench"] == "paged_attention_prefill":
        print(f"prefill attention {[(s['query_len'], s['context_len']) for s in r['sequences']]}: {r['ms']*1e3:.1f} us, "
              f"{r['tflop_per_s']:.0f} TFLOP/s")
    elif r["batch"] == 256:
        print(f"attention 256 x {r['context']} ({r['large_grid_warps']} warps): {r['ms']*1e3:.1f} us "
              f"({r['tb_per_s']:.2f} TB/s), chain with PDL {r['chain_pdl_ms']*1e3:.1f} us per launch")
EOF
fi
if [[ $parts == *" step "* ]]; then
  input_len=${INPUT_LEN:-1000}
  step_args=(--device cuda --model $model --batch 256 --input-len $input_len --output-len 64 --warmup 0 --repeat 1)
  for round in $(seq ${ROUNDS:-2}); do
    for setting in $settings; do
      out=$(TESSERA_DECODE_LARGE_GRID=$setting $bin/tessera-executor-bench "${step_args[@]}" 2>/tmp/step.err) ||
        { echo "step $setting failed: $(tail -3 /tmp/step.err)"; continue; }
      record "executor_b256_ctx${input_len}_grid${setting}_round$round" "$out" \
        "TESSERA_DECODE_LARGE_GRID=$setting tessera-executor-bench ${step_args[*]}"
      echo "round $round setting $setting: decode step $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["decode_step_median_ms"])' "$out") ms"
    done
  done
fi
if [[ $parts == *" prefill "* ]]; then
  prefill_args=(--device cuda --model $model --batch 1 --input-len 2048 --output-len 2 --warmup 1 --repeat 3)
  for round in $(seq ${ROUNDS:-2}); do
    for blocks in 2 3; do
      out=$(TESSERA_PREFILL_BLOCKS_PER_SM=$blocks $bin/tessera-executor-bench "${prefill_args[@]}" 2>/tmp/prefill.err) ||
        { echo "prefill $blocks failed: $(tail -3 /tmp/prefill.err)"; continue; }
      record "executor_prefill_2048_blocks${blocks}_round$round" "$out" \
        "TESSERA_PREFILL_BLOCKS_PER_SM=$blocks tessera-executor-bench ${prefill_args[*]}"
      echo "round $round prefill blocks/SM $blocks: 2048-token prefill $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["prefill_ms"])' "$out") ms"
    done
  done
fi
if [[ $parts == *" served "* ]]; then
  runs=/tmp/bench_runs; rm -rf "$runs"; mkdir -p "$runs"
  for entry in ${SERVED:-"4:2048:2 2:2048:2 2:2048:3"}; do
    IFS=: read -r setting budget prefill_blocks policy <<<"$entry"
    policy=${policy:-max_utilization}
    TESSERA_DECODE_LARGE_GRID=$setting TESSERA_PREFILL_BLOCKS_PER_SM=$prefill_blocks $bin/tessera-server --model $model --device cuda \
      --listen ipc:///tmp/tessera-ab.sock --max-num-seqs 256 --max-num-batched-tokens $budget --max-waiting-requests 4096 \
      --capacity-policy $policy --metrics-port 19466 --log-level warn >/tmp/server.log 2>&1 &
    server=$!
    for _ in $(seq 600); do grep -q "^ready " /tmp/server.log && break; sleep 0.2; done
    grep -q "^ready " /tmp/server.log || { echo "server did not start"; cat /tmp/server.log; exit 1; }
    name=served_c256_1000_1000_grid${setting}_budget${budget}_prefill${prefill_blocks}_$policy
    cmd=($bin/tessera-bench --server ipc:///tmp/tessera-ab.sock --concurrency 256 --num-requests 1024
      --warmup-requests 4 --input-len 1000 --output-len 1000 --tokenizer $model --seed 1 --slo ttft=1s,itl=50ms
      --label "$name" --quiet --output "$runs/$name")
    if "${cmd[@]}" >"$runs/$name.console.txt" 2>&1; then
      summary=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["runs"][0]["summary"]))' \
        "$runs/$name/bench.json")
      record "$name" "$summary" "TESSERA_DECODE_LARGE_GRID=$setting TESSERA_PREFILL_BLOCKS_PER_SM=$prefill_blocks tessera-server --max-num-batched-tokens $budget --capacity-policy $policy ...; ${cmd[*]}"
      python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(sys.argv[2], round(s["output_tokens_per_s"]), "tok/s, ITL p50", s["itl_ms"]["p50"], "ms")' "$summary" "$name"
      python3 tools/gpu/step_timeline.py "$runs/$name" | head -6
    else
      echo "$name failed: $(tail -3 "$runs/$name.console.txt")"
    fi
    counters=$(python3 -c '
import json, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:19466/metrics", timeout=10).read().decode()
print(json.dumps([l for l in text.splitlines() if l.startswith(("tessera_preemptions_total", "tessera_requests_total"))]))')
    record "server_counters_$name" "$counters" "GET /metrics"
    kill -TERM $server; wait $server; echo "server exit ($entry): $?"
    cp /tmp/server.log "$runs/server_$name.log"
  done
  tar -czf "$OUT/bench_runs.tgz" -C "$runs" .
fi
