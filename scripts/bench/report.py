#!/usr/bin/env python3
"""Regenerates docs/BENCHMARKS.md and docs/bench/*.png from scripts/bench/out.

Each benchmark script leaves a fragment: out/<name>.md (its tables and exact
commands, readable alone) and out/<name>.json (the same tables by id, single
values by key, plot data). The prose lives in scripts/bench/templates/: one
<name>.md per section plus header.md, with placeholders that this script
fills in:
  {{run.date}} {{run.machine}} ...  facts of this run (see run_values below)
  {{model.accuracy}}                 a table of a fragment, by its id
  {{model.svd_fit_ratio}}            a single value of a fragment
  {{plot.recall}}                    a plot drawn here, as a markdown image
  {{summary}}                        the headline rows of every fragment
So numbers are never typed by hand and the explanations survive every run.
A section whose fragment is missing keeps nothing stale: it says so, and a
run that measured only some sections writes out/BENCHMARKS.md instead of the
doc. Plots (matplotlib from scripts/bench/.venv):
  throughput.png  events (lists, users) per second of each component and peer
  recall.png      recall@20 over the stream for each model, per data set
  freshness.png   distribution of event-to-Redis latency at each rate

usage: report.py ROOT
"""
import json
import os
import platform
import re
import subprocess
import sys
import time

ORDER = ["model", "streaming", "ranking", "publish", "ingest", "snapshot", "memory"]


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    cpu, flags = "", ""
    for line in sh("lscpu").splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
        if line.startswith("Flags:"):
            fl = line.split()
            flags = ", ".join(f for f in ("avx2", "avx512f") if f in fl)
    mem = "?"
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = "%.0f GiB" % (int(line.split()[1]) / 1048576)
    osname = ""
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    gcc = sh("gcc", "-dumpfullversion")
    blas = sh("dpkg-query", "-W", "-f", "${Version}", "libopenblas0-pthread")
    return "%s (%s cores%s), %s RAM, %s, Linux %s, gcc %s, OpenBLAS %s" % (
        cpu, os.cpu_count(), "; " + flags if flags else "", mem, osname, platform.release(),
        gcc or "?", blas or "?")


def fmt_secs(s):
    return "%d min %02d s" % (s // 60, s % 60) if s >= 60 else "%d s" % s


def run_values(root, out):
    v = {"run.date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "run.machine": machine(),
         "run.commit": sh("git", "-C", root, "rev-parse", "--short", "HEAD") or "?"}
    run = {}
    if os.path.exists(os.path.join(out, "run.json")):
        run = json.load(open(os.path.join(out, "run.json")))
    if run.get("commit"):  # the commit measured, when the run recorded it
        v["run.commit"] = run["commit"]
    v["run.date"] = run.get("date", v["run.date"])
    total = run.get("total_seconds")
    v["run.duration"] = fmt_secs(total) if total is not None else "n/a (not run by scripts/bench/run)"
    v["run.durations"] = ", ".join("%s %s" % (k, fmt_secs(s)) for k, s in run.get("durations", [])) or "n/a"
    v["run.load"] = "%s at the start, %s at the end" % (run.get("load_start", "?"), run.get("load_end", "?"))
    v["run.command"] = run.get("command", "scripts/bench/run")
    return v


def plots(out, figdir, frags):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing (scripts/bench/venv.sh installs it): no plots", file=sys.stderr)
        return {}
    made = {}
    colors = {"model": "#4477aa", "pipeline": "#66ccee", "ranking": "#228833", "redis": "#ccbb44",
              "kafka": "#aa3377", "peer": "#ee6677", "ceiling": "#bbbbbb"}
    bars = []
    for name in ORDER:
        bars += frags.get(name, {}).get("plot", {}).get("throughput", [])
    if bars:
        fig, ax = plt.subplots(figsize=(10, 0.32 * len(bars) + 1.6))
        ax.barh(range(len(bars)), [b["value"] for b in bars],
                color=[colors.get(b["group"], "#999999") for b in bars])
        ax.set_yticks(range(len(bars)))
        ax.set_yticklabels([b["label"] for b in bars])
        for i, b in enumerate(bars):
            ax.text(b["value"], i, " %s %s" % (format(int(round(b["value"])), ","), b["unit"]),
                    va="center", fontsize=7)
        ax.set_xscale("log")
        ax.set_xlim(right=max(b["value"] for b in bars) * 20)
        ax.set_xlabel("per second, log scale (recstream blue/cyan/green/yellow/purple, peers red, ceilings grey)")
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title("Throughput by component, one core each, same run")
        fig.tight_layout()
        fig.savefig(os.path.join(figdir, "throughput.png"), dpi=100)
        plt.close(fig)
        made["plot.throughput"] = ("Throughput by component", "bench/throughput.png")
    rec = frags.get("streaming", {}).get("plot", {}).get("recall", {})
    # One colour per contender across the panels.
    palette = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb"]
    names = []
    for s in rec.values():
        names += [m for m in s["models"] if m not in names]
    model_color = {m: palette[i % len(palette)] for i, m in enumerate(names)}
    if rec:
        n = len(rec)
        cols = 2 if n > 1 else 1
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
        for ax, (tag, s) in zip([a for r in axes for a in r], rec.items()):
            for model, pts in s["models"].items():
                pts = [p for p in pts if p[1] is not None]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], label=model,
                            color=model_color[model],
                            linewidth=2.2 if model.startswith("recstream (blend") else 1.2)
            ax.set_title(s["title"], fontsize=9)
            ax.set_xlabel("events replayed (windows of %s)" % format(s["window"], ","), fontsize=8)
            ax.set_ylabel("recall@20 in the window", fontsize=8)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=6)
        for ax in [a for r in axes for a in r][n:]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(os.path.join(figdir, "recall.png"), dpi=100)
        plt.close(fig)
        made["plot.recall"] = ("Recall@20 over the stream", "bench/recall.png")
    fresh = frags.get("publish", {}).get("plot", {}).get("freshness", {})
    if fresh:
        fig, ax = plt.subplots(figsize=(8, 4))
        for rate, fname in sorted(fresh.items(), key=lambda kv: int(kv[0])):
            p = os.path.join(out, fname)
            if not os.path.exists(p):
                continue
            vals = sorted(float(x) for x in open(p) if x.strip())
            if vals:
                ax.plot(vals, [(i + 1) / len(vals) for i in range(len(vals))],
                        label="%s events/s (%d probes)" % (format(int(rate), ","), len(vals)))
        ax.set_xscale("log")
        ax.set_xlabel("event appended to Kafka -> its list readable in Redis (ms, log scale)")
        ax.set_ylabel("share of probes (CDF)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(figdir, "freshness.png"), dpi=100)
        plt.close(fig)
        made["plot.freshness"] = ("Freshness distribution", "bench/freshness.png")
    return made


def fill(text, values, missing):
    def sub(m):
        key = m.group(1)
        if key in values:
            return values[key]
        missing.add(key)
        return "(not measured in this run: %s)" % key
    return re.sub(r"\{\{([a-z0-9_.\-]+)\}\}", sub, text)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    out = os.path.join(root, "scripts", "bench", "out")
    templates = os.path.join(root, "scripts", "bench", "templates")
    figdir = os.path.join(root, "docs", "bench")
    os.makedirs(figdir, exist_ok=True)
    frags = {}
    for name in ORDER:
        p = os.path.join(out, name + ".json")
        if os.path.exists(p):
            frags[name] = json.load(open(p))
    values = run_values(root, out)
    for fr in frags.values():
        values.update(fr["tables"])
        values.update(fr["values"])
    heads = [h for name in ORDER for h in frags.get(name, {}).get("headlines", [])]
    values["summary"] = "\n".join(
        ["| measure | recstream | peer or ceiling, same run | ratio |", "| --- | ---: | ---: | ---: |"] +
        ["| %s |" % " | ".join(h) for h in heads])
    partial = [n for n in ORDER if n not in frags]
    target = os.path.join(root, "docs", "BENCHMARKS.md")
    if partial:
        target = os.path.join(out, "BENCHMARKS.md")
        figdir = os.path.join(out, "bench")
        os.makedirs(figdir, exist_ok=True)
    for key, (title, rel) in plots(out, figdir, frags).items():
        values[key] = "![%s](%s)" % (title, rel)
    missing = set()
    parts = [fill(open(os.path.join(templates, "header.md")).read(), values, missing)]
    for name in ORDER:
        tpl = os.path.join(templates, name + ".md")
        if not os.path.exists(tpl):
            if name in frags:
                parts.append(open(os.path.join(out, name + ".md")).read())
            continue
        text = open(tpl).read()
        if name not in frags:
            first = text.splitlines()[0]
            parts.append(first + "\n\nNot measured in this run (`scripts/bench/run %s`).\n" % name)
            continue
        parts.append(fill(text, values, missing))
    with open(target, "w") as f:
        f.write("\n".join(p.rstrip() + "\n" for p in parts))
    if missing:
        print("report: placeholders with no value: %s" % ", ".join(sorted(missing)), file=sys.stderr)
    if partial:
        print("report: sections not measured (%s): report written to %s, docs/BENCHMARKS.md left as it is"
              % (", ".join(partial), os.path.relpath(target, root)))
    else:
        print("report: wrote %s and the plots in docs/bench/" % os.path.relpath(target, root))


if __name__ == "__main__":
    main()
