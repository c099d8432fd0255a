#!/usr/bin/env bash
# On the GPU machine, from the repository root, bundle in .gpu/: where the time of a large-batch decode step goes.
#   1. tessera-gemm-bench: the step's GEMMs through cuBLAS (the executor's call) vs the best cuBLASLt algorithm;
#   2. tessera-attention-bench: the decode-attention launch alone;
#   3. tessera-executor-bench at BATCH x INPUT_LEN (default 256 x 1000): prefill, then OUTPUT_LEN decode steps (median
#      step time), and an ncu profile of the last decode step alone (--profile-last-step, ncu --profile-from-start
#      off, card clocks): one row per kernel of one real decode step, without the prefill before it.
#   4. (PARTS=prefill_profile, not in the default) ncu of one 2048-token prefill (batch 1, eager, one decode step
#      after it): where the TTFT case's time goes, GEMMs against attention and the rest.
#   $OUT/batch_profile.jsonl   one line per measurement: name, command, result
#   $OUT/step_profile_b<BATCH>_ctx<INPUT_LEN>.csv   the ncu rows (tools/gpu/profile_summary.py makes a table)
#   $OUT/prefill_profile_2048.csv   the prefill's ncu rows
# PARTS (default "gemm attention step profile") picks the parts.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
results=$OUT/batch_profile.jsonl
batch=${BATCH:-256}
input_len=${INPUT_LEN:-1000}
parts=" ${PARTS:-gemm attention step profile} "
record() {  # record NAME JSON COMMAND
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[3], "result": json.loads(sys.argv[2])}))' \
    "$1" "$2" "$3" >>"$results"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
[[ -f $model/config.json ]] || $bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
if [[ $parts == *" gemm "* && -x $bin/tessera-gemm-bench ]]; then
  $bin/tessera-gemm-bench --rows ${GEMM_ROWS:-64,128,256,512,2048} >/tmp/gemm.jsonl 2>/tmp/gemm.err || tail -3 /tmp/gemm.err
  while read -r line; do record gemm "$line" "tessera-gemm-bench --rows ${GEMM_ROWS:-64,128,256,512,2048}"; done </tmp/gemm.jsonl
  python3 - /tmp/gemm.jsonl <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("summary"):
        print(f"rows {r['rows']}: step GEMMs default {r['step_gemm_default_ms']:.2f} ms, cuBLASLt best {r['step_gemm_lt_best_ms']:.2f} ms")
    else:
        print(f"  {r['shape']:8s} rows {r['rows']:5d}: default {r['default_ms']:.4f} ms ({r['default_tflops']:.0f} TFLOP/s), "
              f"best {r['lt_best_ms']} (#{r['lt_best_index']} of {r['num_algos']})")
EOF
fi
if [[ $parts == *" attention "* ]]; then
  for exe in tessera-attention-bench tessera-attention-bench-base; do
    [[ -x $bin/$exe ]] || continue
    $bin/$exe >/tmp/attention.jsonl 2>/dev/null
    while read -r line; do record "$exe" "$line" "$exe"; done </tmp/attention.jsonl
    python3 - "$exe" /tmp/attention.jsonl <<'EOF'
import json, sys
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["bench"] == "paged_attention_prefill":
        print(f"{sys.argv[1]} prefill {[(s['query_len'], s['context_len']) for s in r['sequences']]}: "
              f"{r['ms']*1e3:.1f} us, {r['tflop_per_s']:.0f} TFLOP/s")
        continue
    print(f"{sys.argv[1]} batch {r['batch']} ctx {r['context']} ({r.get('large_grid_warps', '4')} warps for large grids): "
          f"{r['ms']*1e3:.1f} us ({r['tb_per_s']:.2f} TB/s), "
          f"chain with PDL {r['chain_pdl_ms']*1e3:.1f} us per launch")
EOF
  done
fi
step_args=(--device cuda --model $model --batch $batch --input-len $input_len --warmup 0 --repeat 1)
if [[ $parts == *" step "* ]]; then
  out=$($bin/tessera-executor-bench "${step_args[@]}" --output-len ${OUTPUT_LEN:-64} 2>/tmp/step.err) &&
    record "executor_b${batch}_ctx${input_len}" "$out" "tessera-executor-bench ${step_args[*]} --output-len ${OUTPUT_LEN:-64}" &&
    echo "batch $batch ctx $input_len: decode step $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["decode_step_median_ms"])' "$out") ms" ||
    tail -3 /tmp/step.err
fi
if [[ $parts == *" profile "* ]]; then
  csv=$OUT/step_profile_b${batch}_ctx${input_len}.csv
  ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv --log-file "$csv" \
    $bin/tessera-executor-bench "${step_args[@]}" --output-len 3 --profile-last-step >/dev/null 2>/tmp/ncu.err ||
    tail -3 /tmp/ncu.err
  python3 tools/gpu/profile_summary.py "$csv" 2>/dev/null | head -30
fi
if [[ $parts == *" prefill_profile "* ]]; then
  csv=$OUT/prefill_profile_2048.csv
  ncu --clock-control none --metrics gpu__time_duration.sum --csv --log-file "$csv" \
    $bin/tessera-executor-bench --device cuda --model $model --batch 1 --input-len 2048 --output-len 2 --warmup 0 \
    --repeat 1 --no-cuda-graphs --max-step-tokens 2048 >/dev/null 2>/tmp/ncu.err || tail -3 /tmp/ncu.err
  python3 tools/gpu/profile_summary.py "$csv" 2>/dev/null | head -30
fi
