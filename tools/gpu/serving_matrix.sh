#!/usr/bin/env bash
# On the GPU machine, from the repository root, bundle in .gpu/: the issue's serving matrix on the Llama-3.1-8B-shape
# BF16 model through the full server, measured by tessera-bench (client-side monotonic clock, exact lengths with
# ignore_eos, greedy): ISL/OSL 128/128, 1000/1000 and 2048/128 at concurrency 1, 16, 64 and 256, plus the ceilings
# (tessera-gpu-roofline) and the executor alone at batch 1/64/256, all in one run.
#   $OUT/matrix.jsonl      one line per run: name, command, the tessera-bench summary (or the tool's JSON)
#   $OUT/bench_runs.tgz    every tessera-bench output folder (bench.json with per-request records, CSVs)
# PARTS (default "ceilings short long") splits the matrix over calls that fit the device tool's 10 minutes:
# ceilings = roofline + executor alone; short = TTFT at 2048, 128/128 and 2048/128; long = 1000/1000. 1000/1000 at
# concurrency 256 runs 1024 requests (4 x the concurrency: with equal lengths the first wave starts together, the
# later ones are staggered, and the last 256 requests end with a drain at falling concurrency). The server's
# Prometheus counters (requests, preemptions, steps) are appended to $OUT/matrix.jsonl at the end of each call.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.gpu/lib:${LD_LIBRARY_PATH:-}
bin=.gpu/bin
model=/tmp/llama-3.1-8b-random
runs=/tmp/bench_runs
results=$OUT/matrix.jsonl
rm -rf "$runs"; mkdir -p "$runs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[[ -f $model/config.json ]] || $bin/tessera-model make --preset llama-3.1-8b --out $model \
  --tokenizer .testdata/llama3/tokenizer.json --seed 1 | tail -1
record_json() {  # record_json NAME COMMAND...: a tool that prints one JSON object
  local name=$1; shift
  local out
  out=$("$@" 2>"/tmp/$name.err") || { echo "$name failed: $(tail -3 "/tmp/$name.err")"; return 1; }
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[2], "result": json.loads(sys.argv[3])}))' \
    "$name" "$*" "$out" >>"$results"
  echo "$name done"
}
parts=" ${PARTS:-ceilings short long} "
record_json roofline $bin/tessera-gpu-roofline
if [[ $parts == *" ceilings "* ]]; then
  for b in 1 64 256; do
    record_json executor_b${b}_128_128 $bin/tessera-executor-bench --device cuda --model $model --batch $b \
      --input-len 128 --output-len 128 --warmup 1 --repeat 2
  done
fi
[[ $parts == *" short "* || $parts == *" long "* ]] || exit 0
$bin/tessera-server --model $model --device cuda --listen ipc:///tmp/tessera-matrix.sock --max-num-seqs 256 \
  --max-num-batched-tokens 2048 --max-waiting-requests 4096 --metrics-port 19465 --log-level warn >/tmp/server.log 2>&1 &
server=$!
for _ in $(seq 600); do grep -q "^ready " /tmp/server.log && break; sleep 0.2; done
grep -q "^ready " /tmp/server.log || { echo "server did not start"; cat /tmp/server.log; exit 1; }
bench() {  # bench NAME ISL OSL CONCURRENCY REQUESTS
  local name=$1 isl=$2 osl=$3 c=$4 n=$5
  local cmd=($bin/tessera-bench --server ipc:///tmp/tessera-matrix.sock --concurrency "$c" --num-requests "$n"
    --warmup-requests "$(( c < 4 ? c : 4 ))" --input-len "$isl" --output-len "$osl" --tokenizer $model --seed 1
    --slo ttft=1s,itl=50ms --label "$name" --quiet --output "$runs/$name")
  "${cmd[@]}" >"$runs/$name.console.txt" 2>&1 || { echo "$name failed: $(tail -3 "$runs/$name.console.txt")"; return 1; }
  python3 - "$name" "${cmd[*]}" "$runs/$name/bench.json" >>"$results" <<'PY'
import json, sys
name, command, path = sys.argv[1:4]
summary = json.load(open(path))["runs"][0]["summary"]
print(json.dumps({"name": name, "command": command, "result": summary}))
PY
  python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read().splitlines()[-1])["result"]; print(sys.argv[2], round(s["output_tokens_per_s"]), "tok/s, TTFT p50", s["ttft_ms"]["p50"], "ms, ITL p50", s["itl_ms"]["p50"], "ms")' "$results" "$name"
}
if [[ $parts == *" short "* ]]; then
  bench served_ttft_2048 2048 1 1 5
  for c in 1 16 64 256; do bench served_c${c}_128_128 128 128 $c $(( c < 4 ? 4 : 2 * c )); done
  for c in 1 16 64 256; do bench served_c${c}_2048_128 2048 128 $c $(( c < 4 ? 2 : 2 * c )); done
fi
if [[ $parts == *" long "* ]]; then
  for c in 1 16 64 256; do bench served_c${c}_1000_1000 1000 1000 $c $(( c < 4 ? 2 : (c == 256 ? 1024 : 2 * c) )); done
fi
python3 -c '
import json, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:19465/metrics", timeout=10).read().decode()
wanted = ("tessera_requests_total", "tessera_preemptions_total", "tessera_step_duration_seconds_count",
          "tessera_generation_tokens_total", "tessera_kv_blocks_total")
lines = [l.strip() for l in text.splitlines() if l.startswith(wanted)]
print(json.dumps({"name": "server_counters", "command": "GET /metrics", "result": lines}))' >>"$results"
kill -TERM $server; wait $server; echo "server exit: $?"
cp /tmp/server.log "$runs/server.log"
tar -czf "$OUT/bench_runs.tgz" -C "$runs" .
