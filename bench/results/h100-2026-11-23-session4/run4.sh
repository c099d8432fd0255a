# run 4: GPU tests with cuBLASLt; cuBLASLt vs cublasGemmEx (TESSERA_CUBLASLT=0) at batch 256 ctx 1000 and for the 2048-token prefill; ncu of one batch-256 decode step
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
bin=.gpu/bin; model=/tmp/llama-3.1-8b-random; res=$OUT/run4.jsonl
for t in tessera_kernels_cuda_tests tessera_cuda_executor_tests; do
  timeout 400 $bin/$t > /tmp/$t.log 2>&1; cp /tmp/$t.log $OUT/; echo "=== $t: $(grep -E '^\[  (PASSED|FAILED) ' /tmp/$t.log | tr '\n' ' ')"; grep -E "^\[  FAILED  \]|NOTE" /tmp/$t.log | head -20
done
$bin/tessera-model make --preset llama-3.1-8b --out $model --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
rec() { python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[3], "result": json.loads(sys.argv[2])}))' "$1" "$2" "$3" >> $res; }
for round in 1 2; do for lt in 1 0; do
  a=(--device cuda --model $model --batch 256 --input-len 1000 --output-len 32 --warmup 0 --repeat 1)
  o=$(TESSERA_CUBLASLT=$lt $bin/tessera-executor-bench "${a[@]}" 2>/dev/null); rec "b256_ctx1000_lt$lt" "$o" "TESSERA_CUBLASLT=$lt tessera-executor-bench ${a[*]}"
  echo "round $round cublaslt=$lt b256 ctx1000: step $(echo "$o" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["decode_step_median_ms"], "prefill(256 x 1000 in 1000-token chunks) ms", r["prefill_ms"])')"
  a=(--device cuda --model $model --batch 1 --input-len 2048 --output-len 2 --warmup 2 --repeat 5)
  o=$(TESSERA_CUBLASLT=$lt $bin/tessera-executor-bench "${a[@]}" 2>/dev/null); rec "prefill2048_lt$lt" "$o" "TESSERA_CUBLASLT=$lt tessera-executor-bench ${a[*]}"
  echo "round $round cublaslt=$lt prefill 2048: $(echo "$o" | python3 -c 'import json,sys; print(json.load(sys.stdin)["prefill_ms"])') ms"
done; done
PARTS="profile" tools/gpu/batch_profile.sh 2>&1 | tail -14
