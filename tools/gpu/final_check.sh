#!/usr/bin/env bash
# On the GPU machine, bundle in .gpu/ (executor bench, server, tessera-bench, model, roofline): the batch-1 decode step
# (graphs vs eager; PDL and fused norms switched off in turn), then the served batch-1 ITL, 128/128 at 64 and
# 1000/1000 at 256 through tessera-bench, all in one run. $OUT/final.jsonl, $OUT/final_runs.tgz.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
[[ -f $model/config.json ]] || $bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
BATCHES=${BATCHES:-1 64 256} timeout 330 tools/gpu/decode_compare.sh | tail -7
SKIP_DECODE=1 SERVED=0 bin=$bin tools/gpu/quick_check.sh 2>/dev/null | grep -E "^TESSERA_"
mv "$OUT/decode_compare.jsonl" "$OUT/final.jsonl" 2>/dev/null; rm -f "$OUT/tests.log"
$bin/tessera-server --model $model --device cuda --listen ipc:///tmp/tessera-final.sock --max-num-seqs 256 \
  --max-num-batched-tokens 2048 --max-waiting-requests 4096 --metrics-port 19464 --log-level warn >/tmp/server.log 2>&1 &
server=$!
for _ in $(seq 600); do grep -q "^ready " /tmp/server.log && break; sleep 0.2; done
mkdir -p /tmp/final_runs
for spec in "c1_128_128 1 8 128 128" "c64_128_128 64 128 128 128" "c256_1000_1000 256 384 1000 1000"; do
  read -r name c n isl osl <<<"$spec"
  cmd=($bin/tessera-bench --server ipc:///tmp/tessera-final.sock --concurrency $c --num-requests $n
    --warmup-requests $(( c < 4 ? c : 4 )) --input-len $isl --output-len $osl --tokenizer $model --seed 1 --quiet
    --output /tmp/final_runs/$name)
  "${cmd[@]}" >/tmp/final_runs/$name.txt 2>&1 || { echo "$name failed"; tail -3 /tmp/final_runs/$name.txt; continue; }
  python3 - "served_$name" "${cmd[*]}" /tmp/final_runs/$name/bench.json >>"$OUT/final.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[3]))["runs"][0]["summary"]
print(json.dumps({"name": sys.argv[1], "command": sys.argv[2], "result": s}))
print(sys.argv[1], round(s["output_tokens_per_s"]), "tok/s; TTFT p50", s["ttft_ms"]["p50"], "ITL p50", s["itl_ms"]["p50"], file=sys.stderr)
PY
done
curl -s http://127.0.0.1:19464/metrics | grep -E "^tessera_(requests_total|generation_tokens_total|step_duration_seconds_count)" | head -8
kill -TERM $server; wait $server; echo "server exit: $?"
cp /tmp/server.log /tmp/final_runs/
tar -czf "$OUT/final_runs.tgz" -C /tmp/final_runs .
