#!/usr/bin/env python3
"""Summarises an ncu CSV of tools/gpu/profile.sh or itl_check.sh: GPU time per kernel kind in the LAST decode step
(from the last resolve_pending_tokens launch, which opens every step's forward pass; older builds without it: from
the second-last embedding launch; a CSV of one step, e.g. batch_profile.sh's: all of it). Usage: profile_summary.py decode_profile.csv"""
import csv, re, sys
from collections import defaultdict

rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if l.startswith('"'))]
names = [r["Kernel Name"] for r in rows]
opens = [i for i, n in enumerate(names) if "resolve_pending_tokens" in n]
starts = [i for i, n in enumerate(names) if "embedding_kernel" in n]
if opens:
    step = rows[opens[-1]:]
elif len(starts) >= 2:  # embedding launches came in pairs per step (token embedding, gather)
    step = rows[starts[-2]:]
else:  # one step only (tessera-executor-bench --profile-last-step)
    step = rows
total = defaultdict(float)
count = defaultdict(int)
for r in step:
    name = r["Kernel Name"]
    short = re.sub(r"\(.*", "", name).replace("void ", "").replace("<unnamed>::", "")
    short = re.sub(r"<.*", "", short).split("::")[-1]
    if any(k in name for k in ("nvjet", "gemm", "splitKreduce", "cutlass")):
        short = "cuBLAS (" + ("split-K reduce" if "splitKreduce" in name else "GEMM") + ")"
    total[short] += float(r["Metric Value"].replace(",", "")) / 1e3
    count[short] += 1
all_us = sum(total.values())
print(f"| kernel | launches | GPU time µs | share |\n| --- | ---: | ---: | ---: |")
for k, v in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {count[k]} | {v:.0f} | {100 * v / all_us:.1f} % |")
print(f"| **total** | {sum(count.values())} | {all_us:.0f} | |")
