#!/usr/bin/env bash
# Makes this folder's results: tessera-bench against tessera-server on the tiny random model (CPU).
#   bench/results/cpu-tiny-tessera-bench/run.sh [BIN_DIR]      (default build/bin)
# 1. report/: a closed-loop concurrency sweep over a mix of the four query patterns, rendered by report.py.
# 2. client_overhead.txt: the tool against the same server at an open-loop rate far above what it can serve,
#    to show the client keeps its schedule (it is not the bottleneck).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
bin="$(cd "${1:-$repo/build/bin}" && pwd)"
work="$(mktemp -d)"
trap 'kill -TERM $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/tessera-model" make --preset tiny --out "$work/tiny" --seed 7 >/dev/null
endpoint="ipc://$work/server.sock"
# A waiting queue large enough that the overload run below is queued rather than rejected.
"$bin/tessera-server" --model "$work/tiny" --listen "$endpoint" --log-level warn --max-waiting-requests 100000 \
  --metrics-port 0 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q '^ready ' "$work/server.log" && break; sleep 0.1; done
grep -q '^ready ' "$work/server.log" || { cat "$work/server.log"; echo "run.sh: the server did not start" >&2; exit 1; }

# 1. The report: concurrency sweep, four query patterns mixed evenly, 8 warm-up requests per level.
"$bin/tessera-bench" --server "$endpoint" --sweep-concurrency 1,2,4,8,16,32,64 --num-requests 100 \
  --warmup-requests 8 --pattern siso=1,silo=1,liso=1,lilo=1 --short-input lognormal:32:16 \
  --long-input uniform:256:768 --short-output uniform:16:48 --long-output uniform:64:128 \
  --slo ttft=100ms,itl=25ms --seed 1 --label "tiny CPU model, concurrency sweep" --quiet --output "$here" \
  | tee "$here/console.txt"
rm -f "$here/requests.csv"  # per-request rows are in bench.json; keep the folder small
/usr/bin/python3 "$repo/tools/bench/report.py" "$here/bench.json" --out "$here/report"

# 2. Client overhead: 10000 requests at 10000 req/s (16 in, 16 out) against a server that completes ~1400 req/s.
"$bin/tessera-bench" --server "$endpoint" --request-rate 10000 --num-requests 10000 --input-len 16 --output-len 16 \
  --seed 2 --quiet --output "$work/overload" >"$work/overload.txt"
/usr/bin/python3 - "$work/overload/bench.json" >"$here/client_overhead.txt" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
run = doc["runs"][0]
reqs, s, c = run["requests"], run["summary"], run["client"]
last_scheduled = max(r["scheduled_s"] for r in reqs)
last_send = max(r["send_s"] for r in reqs)
lag = s["send_lag_ms"]
print(f"command: {doc['command']}")
print(f"requests: {s['requests']} sent, {s['completed']} completed, {s['failed']} failed")
print(f"schedule: last request due at {last_scheduled:.3f} s, actually sent at {last_send:.3f} s "
      f"(offered {len(reqs) / last_scheduled:.0f} req/s)")
print(f"send lag ms (send - scheduled): p50 {lag['p50']:.3f}  p90 {lag['p90']:.3f}  p99 {lag['p99']:.3f}  max {lag['max']:.3f}")
print(f"server: completed {s['requests_per_s']:.0f} req/s, {s['output_tokens_per_s']:.0f} output tok/s; "
      f"last reply at {s['duration_s']:.3f} s; TTFT p50 {s['ttft_ms']['p50']:.0f} ms (queueing), p99 {s['ttft_ms']['p99']:.0f} ms")
print(f"client: {c['cpu_s']:.3f} s CPU over {c['wall_s']:.3f} s ({100 * c['cpu_share']:.1f} % of one core, ZeroMQ I/O thread "
      f"included), event loop busy {100 * c['loop_utilization']:.1f} %, {c['messages']} messages "
      f"({c['messages_per_s']:.0f}/s, {1e6 * c['cpu_s'] / c['messages']:.1f} us CPU per message)")
EOF
cat "$here/client_overhead.txt"
