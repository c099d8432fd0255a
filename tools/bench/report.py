#!/usr/bin/python3
"""Renders a tessera-bench result (bench.json) into a report folder: PNG plots and index.md.

    /usr/bin/python3 tools/bench/report.py RESULTS/bench.json [--out RESULTS/report]

Plots: TTFT vs input length, ITL vs output token position, E2E box plots per query pattern, the input x output
length 2D histogram, and, when the file holds several runs (a sweep), throughput vs latency with the Pareto front.
Needs only python3-matplotlib (Debian); draws with the Agg backend (no display).
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FORMAT_VERSION = 1
FIGSIZE = (6.4, 4.0)
DPI = 90


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"report.py: cannot read {path}: {e}")
    if doc.get("tool") != "tessera-bench" or doc.get("format_version") != FORMAT_VERSION:
        sys.exit(f"report.py: {path} is not a tessera-bench result of format version {FORMAT_VERSION}")
    if not doc.get("runs"):
        sys.exit(f"report.py: {path} holds no runs")
    return doc


def completed(run):
    return [r for r in run["requests"] if r["error"] is None and r["e2e_ms"] is not None]


def save(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=DPI)
    plt.close(fig)
    return name


def auto_log_y(ax, values):
    """Log scale when the values span more than two decades (e.g. queueing TTFTs next to idle ones)."""
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_yscale("log")
        ax.set_ylabel(ax.get_ylabel() + ", log scale")


def colors(n):
    cmap = plt.get_cmap("viridis" if n > 10 else "tab10")
    return [cmap(i / max(n - 1, 1)) if n > 10 else cmap(i) for i in range(n)]


def plot_ttft_vs_input(doc, out_dir):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    runs = doc["runs"]
    for run, color in zip(runs, colors(len(runs))):
        reqs = completed(run)
        x = [r["prompt_tokens"] if r["prompt_tokens"] is not None else r["input_len"] for r in reqs]
        ax.scatter(x, [r["ttft_ms"] for r in reqs], s=10, alpha=0.6, color=color, label=run["label"])
    ax.set_xlabel("input length (prompt tokens)")
    ax.set_ylabel("TTFT (ms)")
    auto_log_y(ax, [r["ttft_ms"] for run in runs for r in completed(run)])
    ax.set_title("Time to first token vs input length")
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=7)
    return save(fig, out_dir, "ttft_vs_input_len.png")


def percentile(sorted_values, p):
    """Linear interpolation between closest ranks, as tessera-bench computes it."""
    if not sorted_values:
        return 0.0
    h = (len(sorted_values) - 1) * p / 100.0
    lo = int(math.floor(h))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def itl_by_position(run):
    by_position = {}
    for r in completed(run):
        for i, gap in enumerate(r["itl_ms"]):
            by_position.setdefault(i + 1, []).append(gap)
    positions = sorted(by_position)
    return positions, [sorted(by_position[p]) for p in positions]


def plot_itl_vs_position(doc, out_dir):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    runs = doc["runs"]
    for run, color in zip(runs, colors(len(runs))):
        positions, gaps = itl_by_position(run)
        if not positions:
            continue
        ax.plot(positions, [sum(g) / len(g) for g in gaps], color=color, lw=1.2,
                label=f"{run['label']} mean" if len(runs) > 1 else "mean")
        if len(runs) == 1:
            for p, style in ((50, ":"), (90, "--"), (99, "-.")):
                ax.plot(positions, [percentile(g, p) for g in gaps], color=color, lw=0.8, ls=style, label=f"p{p}")
    ax.set_xlabel("output token position")
    ax.set_ylabel("inter-token latency (ms)")
    ax.set_title("ITL vs token position")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, out_dir, "itl_vs_position.png")


def pattern_order(doc):
    known = ["siso", "silo", "liso", "lilo"]
    seen = {r["pattern"] for run in doc["runs"] for r in run["requests"]}
    return [p for p in known if p in seen] + sorted(seen - set(known))


def plot_e2e_by_pattern(doc, out_dir):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    runs = doc["runs"]
    patterns = pattern_order(doc)
    width = 0.8 / len(runs)
    handles = []
    for k, (run, color) in enumerate(zip(runs, colors(len(runs)))):
        data, where = [], []
        for i, p in enumerate(patterns):
            values = [r["e2e_ms"] for r in completed(run) if r["pattern"] == p]
            if values:
                data.append(values)
                where.append(i - 0.4 + width * (k + 0.5))
        if not data:
            continue
        box = ax.boxplot(data, positions=where, widths=width * 0.9, patch_artist=True, showfliers=True,
                         flierprops={"markersize": 2})
        for patch in box["boxes"]:
            patch.set_facecolor(color)
            patch.set_alpha(0.6)
        handles.append((box["boxes"][0], run["label"]))
    ax.set_xticks(range(len(patterns)))
    ax.set_xticklabels(patterns)
    ax.set_xlim(-0.6, len(patterns) - 0.4)
    ax.set_xlabel("query pattern")
    ax.set_ylabel("end-to-end latency (ms)")
    auto_log_y(ax, [r["e2e_ms"] for run in runs for r in completed(run)])
    ax.set_title("E2E latency per query pattern")
    ax.grid(alpha=0.3, axis="y")
    if len(runs) > 1 and handles:
        ax.legend([h for h, _ in handles], [label for _, label in handles], fontsize=7)
    return save(fig, out_dir, "e2e_by_pattern.png")


def plot_isl_osl(doc, out_dir):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    reqs = [r for run in doc["runs"] for r in run["requests"]]
    x = [r["input_len"] for r in reqs]
    y = [r["output_len"] for r in reqs]
    bins = [min(40, max(x) - min(x) + 1), min(40, max(y) - min(y) + 1)]  # integer lengths: a bin per length when few
    span = lambda v: (min(v) - 0.5, max(v) + 0.5)  # noqa: E731  (a single length still gets a visible cell)
    _, _, _, image = ax.hist2d(x, y, bins=bins, range=[span(x), span(y)], cmap="Blues", cmin=1)
    fig.colorbar(image, ax=ax, label="requests")
    ax.set_xlabel("input length (tokens)")
    ax.set_ylabel("output length (tokens)")
    ax.set_title(f"Input x output lengths ({len(reqs)} requests, all runs)")
    return save(fig, out_dir, "isl_osl_hist2d.png")


def pareto_front(points):
    """Indices of the points no other point beats on both axes (lower latency x, higher throughput y)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for x2, y2 in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(doc, out_dir):
    runs = doc["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(FIGSIZE[0] * 1.6, FIGSIZE[1]))
    throughput = [run["summary"]["output_tokens_per_s"] for run in runs]
    for ax, (metric, stat, title) in zip(axes, (("e2e_ms", "p50", "median E2E"), ("tpot_ms", "p50", "median TPOT"))):
        latency = [run["summary"][metric][stat] for run in runs]
        points = list(zip(latency, throughput))
        front = pareto_front(points)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "-", color="tab:red", lw=1,
                label="Pareto front")
        ax.scatter(latency, throughput, color="tab:blue", zorder=3)
        for run, x, y in zip(runs, latency, throughput):
            ax.annotate(run["label"], (x, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
        ax.set_xlabel(f"{title} (ms)")
        positive = [v for v in latency if v > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_xscale("log")
            ax.set_xlabel(f"{title} (ms, log scale)")
        ax.set_ylabel("output tokens/s")
        ax.set_title(f"Throughput vs {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out_dir, "pareto_throughput_latency.png")


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def write_index(doc, out_dir, images, source):
    server = doc["server"]
    config = doc["config"]
    lines = [
        f"# tessera-bench report: {doc['label']}",
        "",
        f"- source: `{os.path.basename(source)}`, started {doc['started_at']}",
        f"- command: `{doc['command']}`",
        f"- server: `{server['endpoint']}`, model `{server['model']}`, vocab {server['vocab_size']}, "
        f"max_model_len {server['max_model_len']}, KV capacity {server['kv_capacity_tokens']} tokens",
        f"- load: {config['mode']}, workload: {config['workload']}, seed {config['seed']}, "
        f"warm-up {config['warmup_requests']} requests per run (not counted)",
        "",
        "| run | ok / sent | req/s | out tok/s | total tok/s | TTFT p50 / p99 ms | ITL p50 / p99 ms | "
        "TPOT p50 ms | E2E p50 / p99 ms | goodput req/s | client CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in doc["runs"]:
        s, c = run["summary"], run["client"]
        lines.append(
            f"| {run['label']} | {s['completed']} / {s['requests']} | {fmt(s['requests_per_s'])} | "
            f"{fmt(s['output_tokens_per_s'], 1)} | {fmt(s['total_tokens_per_s'], 1)} | "
            f"{fmt(s['ttft_ms']['p50'])} / {fmt(s['ttft_ms']['p99'])} | {fmt(s['itl_ms']['p50'], 3)} / "
            f"{fmt(s['itl_ms']['p99'], 3)} | {fmt(s['tpot_ms']['p50'], 3)} | {fmt(s['e2e_ms']['p50'], 1)} / "
            f"{fmt(s['e2e_ms']['p99'], 1)} | {fmt(s['goodput_requests_per_s'])} | {100 * c['cpu_share']:.1f} % |")
    lines += ["", "Client CPU: the tool's own process CPU time over the run's wall time (100 % = one core).", ""]
    captions = {
        "ttft_vs_input_len.png": "TTFT vs input length (each dot a request)",
        "itl_vs_position.png": "Inter-token latency by output token position",
        "e2e_by_pattern.png": "End-to-end latency per query pattern",
        "isl_osl_hist2d.png": "Input x output length histogram",
        "pareto_throughput_latency.png": "Throughput vs latency over the sweep, with the Pareto front",
    }
    for image in images:
        lines += [f"## {captions[image]}", "", f"![{captions[image]}]({image})", ""]
    lines += ["## Definitions", ""]
    lines += [f"- **{k}**: {v}" for k, v in doc["definitions"].items()]
    with open(os.path.join(out_dir, "index.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="bench.json written by tessera-bench --output DIR")
    parser.add_argument("--out", help="report folder (default: report/ next to the JSON)")
    args = parser.parse_args()
    doc = load(args.results)
    out_dir = args.out or os.path.join(os.path.dirname(os.path.abspath(args.results)), "report")
    os.makedirs(out_dir, exist_ok=True)
    images = []
    if any(completed(run) for run in doc["runs"]):
        images += [plot_ttft_vs_input(doc, out_dir), plot_itl_vs_position(doc, out_dir),
                   plot_e2e_by_pattern(doc, out_dir)]
    images.append(plot_isl_osl(doc, out_dir))
    if len(doc["runs"]) > 1:
        images.append(plot_pareto(doc, out_dir))
    write_index(doc, out_dir, images, args.results)
    print(f"wrote {out_dir}/index.md and {len(images)} plots")


if __name__ == "__main__":
    main()
