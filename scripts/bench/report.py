#!/usr/bin/env python3
"""Regenerates docs/BENCHMARKS.md and docs/bench/*.png from scripts/bench/out.

Each benchmark script leaves a markdown section (out/<name>.md) and, where it
has numbers worth plotting, JSON lines (out/<name>.jsonl). This script puts
the sections in a fixed order under a header naming the machine, the date,
the commit and the time each benchmark took, and draws:
  - throughput.png: events (or lists, users) per second of each component;
  - freshness.png: the distribution of event-to-Redis latency (out/freshness-*.txt);
  - recall.png: recall@20 over the stream for each model (out/recall-*.tsv).
"""
import glob
import json
import os
import platform
import subprocess
import sys
import time

ORDER = ["model", "ranking", "snapshot", "publish", "ingest"]


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    cpu = ""
    for line in sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    mem = sh("free", "-h").splitlines()
    mem = mem[1].split()[1] if len(mem) > 1 else "?"
    osname = ""
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    return "%s, %d cores, %s RAM, %s, %s" % (cpu, os.cpu_count(), mem, osname, platform.machine())


def load_jsonl(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    return rows


def plots(root, out, figdir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    # Throughput by component: every row that states a rate.
    bars = []
    for name in ORDER:
        for row in load_jsonl(os.path.join(out, name + ".jsonl")):
            for key in ("events_per_second", "lists_per_second", "users_per_second"):
                if key in row and row.get("plot", True):
                    label = row.get("label") or "%s %s" % (name, row.get("pass") or row.get("format") or "")
                    bars.append((label.strip(), float(row[key]), key.replace("_per_second", "/s")))
    if bars:
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(bars) + 1.2))
        ax.barh([b[0] + " (" + b[2] + ")" for b in bars], [b[1] for b in bars], color="#4477aa")
        ax.set_xscale("log")
        ax.set_xlabel("per second (log scale)")
        ax.invert_yaxis()
        ax.set_title("recstream throughput by component")
        fig.tight_layout()
        fig.savefig(os.path.join(figdir, "throughput.png"), dpi=110)
        plt.close(fig)
        made.append(("Throughput by component", "bench/throughput.png"))
    # Freshness distribution.
    series = sorted(glob.glob(os.path.join(out, "freshness-*.txt")))
    if series:
        fig, ax = plt.subplots(figsize=(8, 4))
        for path in series:
            vals = sorted(float(x) for x in open(path) if x.strip())
            if not vals:
                continue
            ys = [(i + 1) / len(vals) for i in range(len(vals))]
            rate = os.path.basename(path)[len("freshness-"):-4]
            ax.plot(vals, ys, label="%s events/s" % rate)
        ax.set_xscale("log")
        ax.set_xlabel("event appended to Kafka -> list readable in Redis (ms, log scale)")
        ax.set_ylabel("share of probes")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(figdir, "freshness.png"), dpi=110)
        plt.close(fig)
        made.append(("Freshness distribution", "bench/freshness.png"))
    # Recall over the stream.
    curves = sorted(glob.glob(os.path.join(out, "recall-*.tsv")))
    if curves:
        fig, ax = plt.subplots(figsize=(8, 4))
        for path in curves:
            xs, ys = [], []
            for line in open(path):
                parts = line.split()
                if len(parts) >= 2 and parts[0][0].isdigit():
                    xs.append(float(parts[0]))
                    ys.append(float(parts[1]))
            ax.plot(xs, ys, label=os.path.basename(path)[len("recall-"):-4])
        ax.set_xlabel("events replayed")
        ax.set_ylabel("prequential recall@20 (moving window)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(figdir, "recall.png"), dpi=110)
        plt.close(fig)
        made.append(("Recall@20 over the stream", "bench/recall.png"))
    return made


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    out = os.path.join(root, "scripts", "bench", "out")
    docs = os.path.join(root, "docs")
    figdir = os.path.join(docs, "bench")
    os.makedirs(figdir, exist_ok=True)
    durations = {}
    if os.path.exists(os.path.join(out, "durations.txt")):
        for line in open(os.path.join(out, "durations.txt")):
            name, secs = line.split()
            durations[name] = int(secs)
    commit = sh("git", "-C", root, "rev-parse", "--short", "HEAD") or "?"
    lines = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench/run` (do not edit by hand; edit the scripts in",
        "`scripts/bench/` and run it again). Every comparison is measured side by side in",
        "the same run on the same machine; ratios to a peer or to a ceiling measured in",
        "that run are the headline, absolute times are secondary. The machines are shared",
        "and noisy: short timings are medians of several runs.",
        "",
        "- Date: %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "- Machine: %s" % machine(),
        "- Commit: `%s`" % commit,
        "- Time per benchmark: %s" % (", ".join("%s %d s" % kv for kv in durations.items()) or "n/a"),
        "",
    ]
    for name in ORDER + sorted(set(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(out, "*.md"))) - set(ORDER)):
        path = os.path.join(out, name + ".md")
        if os.path.exists(path):
            lines.append(open(path).read().rstrip())
            lines.append("")
    made = plots(root, out, figdir)
    if made:
        lines.append("## Plots")
        lines.append("")
        for title, rel in made:
            lines.append("### %s" % title)
            lines.append("")
            lines.append("![%s](%s)" % (title, rel))
            lines.append("")
    missing = [n for n in ORDER if not os.path.exists(os.path.join(out, n + ".md"))]
    target = os.path.join(docs, "BENCHMARKS.md")
    if missing:
        # A partial run must not replace the sections it did not measure.
        target = os.path.join(out, "BENCHMARKS.md")
        print("sections missing (%s): report written to %s, docs/BENCHMARKS.md left as it is"
              % (", ".join(missing), os.path.relpath(target, root)))
    with open(target, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print("wrote %s with %d plot(s)" % (os.path.relpath(target, root), len(made)))


if __name__ == "__main__":
    main()
