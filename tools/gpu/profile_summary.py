#!/usr/bin/env python3
"""Summarises tools/gpu/profile.sh's ncu CSV: GPU time per kernel kind in the LAST decode step (the kernels after the
last embedding launch but one: each step starts with the token embedding and ends with the gather embedding +
LM head + sampling). Usage: profile_summary.py decode_profile.csv"""
import csv, re, sys
from collections import defaultdict

rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if l.startswith('"'))]
names = [r["Kernel Name"] for r in rows]
starts = [i for i, n in enumerate(names) if "embedding_kernel" in n]
# Embedding launches come in pairs per step (token embedding, gather): the last step starts at the second-last pair.
step = rows[starts[-2]:]
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
