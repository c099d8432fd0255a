#!/usr/bin/env python3
"""Where a served run's time went, step by step, from the client's side alone.

Reads a tessera-bench output (bench.json, or the folder holding it). Every request records its send time, its TTFT
and each inter-token gap, so every token's arrival time on the client's monotonic clock is known. The server streams
the tokens of one engine step together, so arrivals cluster: a gap of more than GAP_MS (default 2 ms) between
consecutive arrivals (all requests merged) starts a new step. A step's duration is the time from its first arrival
to the next step's first arrival.

Steps are then classified:
  full decode  >= FULL tokens (default 250: a batch of 256 less a few) and shorter than MIXED_MS (default 40 ms)
  full mixed   >= FULL tokens and at least MIXED_MS long (decodes plus a prefill chunk)
  partial      fewer tokens: the ramp at the start, wave changes where finished requests' places wait for their
               prefill, and the drain at the end
and the time, tokens and rate of each class are printed, then the partial steps per window of WINDOW_S seconds.

Usage: step_timeline.py BENCH_JSON_OR_DIR [--gap-ms 2] [--full 250] [--mixed-ms 40] [--window-s 2] [--run 0]
"""
import argparse
import json
import os
import sys


def arrivals(run):
    times = []
    for r in run["requests"]:
        if r.get("error") or r.get("ttft_ms") is None:
            continue
        t = r["send_s"] + r["ttft_ms"] / 1e3
        times.append(t)
        for gap in r.get("itl_ms") or []:
            t += gap / 1e3
            times.append(t)
    return sorted(times)


def steps_of(times, gap_s):
    """[(start_s, tokens)] of the clusters of arrivals."""
    steps = []
    start, count, last = times[0], 0, times[0]
    for t in times:
        if t - last > gap_s:
            steps.append((start, count))
            start, count = t, 0
        count += 1
        last = t
    steps.append((start, count))
    return steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench")
    p.add_argument("--gap-ms", type=float, default=2.0)
    p.add_argument("--full", type=int, default=250)
    p.add_argument("--mixed-ms", type=float, default=40.0)
    p.add_argument("--window-s", type=float, default=2.0)
    p.add_argument("--run", type=int, default=0)
    a = p.parse_args()
    path = os.path.join(a.bench, "bench.json") if os.path.isdir(a.bench) else a.bench
    try:
        run = json.load(open(path))["runs"][a.run]
    except (OSError, ValueError, KeyError, IndexError) as e:
        sys.exit(f"step_timeline: cannot read run {a.run} of {path}: {e}")
    times = arrivals(run)
    if len(times) < 2:
        sys.exit("step_timeline: fewer than two tokens arrived")
    steps = steps_of(times, a.gap_ms / 1e3)
    timed = [(steps[i][0], steps[i + 1][0] - steps[i][0], steps[i][1]) for i in range(len(steps) - 1)]
    print(f"{len(times)} tokens in {times[-1] - times[0]:.2f} s "
          f"({len(times) / (times[-1] - times[0]):.0f} tok/s from the first token to the last), {len(steps)} steps")
    classes = {"full decode": [], "full mixed": [], "partial": []}
    for start, duration, tokens in timed:
        if tokens < a.full:
            classes["partial"].append((start, duration, tokens))
        elif duration < a.mixed_ms / 1e3:
            classes["full decode"].append((start, duration, tokens))
        else:
            classes["full mixed"].append((start, duration, tokens))
    print("| steps | count | time s | tokens | tok/s | median step ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rows in classes.items():
        total = sum(d for _, d, _ in rows)
        tokens = sum(n for _, _, n in rows)
        median = sorted(d for _, d, _ in rows)[len(rows) // 2] * 1e3 if rows else 0.0
        rate = tokens / total if total else 0.0
        print(f"| {name} | {len(rows)} | {total:.2f} | {tokens} | {rate:.0f} | {median:.1f} |")
    windows = {}
    for start, duration, tokens in classes["partial"]:
        w = int(start // a.window_s)
        count, total, n = windows.get(w, (0, 0.0, 0))
        windows[w] = (count + 1, total + duration, n + tokens)
    if windows:
        print(f"\npartial steps per {a.window_s:g} s window:")
        for w in sorted(windows):
            count, total, n = windows[w]
            print(f"  {w * a.window_s:7.1f} s: {count:3d} steps, {total:5.2f} s, {n:6d} tokens, "
                  f"mean step {total / count * 1e3:5.1f} ms")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # the reader (e.g. head) stopped early
        sys.stderr.close()
