# runs 10-11: GPU tests; decode attention with the large-grid pipeline (2 stages, 3 blocks per SM) vs the build
# before it (tessera-attention-bench-base, tessera-executor-bench-base at 744240d), side by side, alternating.
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
bin=.gpu/bin; model=/tmp/llama-3.1-8b-random; res=$OUT/step_ab.jsonl
for t in tessera_kernels_cuda_tests tessera_cuda_executor_tests; do
  timeout 400 $bin/$t > /tmp/$t.log 2>&1; cp /tmp/$t.log $OUT/; echo "=== $t: $(grep -E '^\[  (PASSED|FAILED) ' /tmp/$t.log | tr '\n' ' ')"; grep -E "^\[  FAILED  \]" /tmp/$t.log | head -20
done
PARTS=attention tools/gpu/batch_profile.sh 2>&1 | grep -E "batch (64|256|2048)"
[[ -f $model/config.json ]] || $bin/tessera-model make --preset llama-3.1-8b --out $model --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
rec() { python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[3], "result": json.loads(sys.argv[2])}))' "$1" "$2" "$3" >> $res; }
a=(--device cuda --model $model --batch 256 --input-len 1000 --output-len 32 --warmup 0 --repeat 1)
for round in 1 2; do for exe in tessera-executor-bench tessera-executor-bench-base; do
  o=$($bin/$exe "${a[@]}" 2>/dev/null); rec "${exe}_b256_ctx1000_round$round" "$o" "$exe ${a[*]}"
  echo "round $round $exe b256 ctx1000: step $(echo "$o" | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_step_median_ms"])') ms"
done; done
