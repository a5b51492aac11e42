#!/usr/bin/env python3
"""Turns the raw results one benchmark script left in scripts/bench/out into
its fragment: out/<name>.md (the tables and the exact commands, readable on
its own) and out/<name>.json (the same tables by id, single values by key,
the commands, and the series the plots are drawn from). report.py fills the
templates of docs/BENCHMARKS.md from the .json files.

usage: fragments.py OUT_DIR NAME     (NAME: model, ranking, snapshot, publish,
                                      ingest, streaming, memory)
"""
import glob
import json
import math
import os
import re
import statistics
import sys

OUT = "."


def path(*parts):
    return os.path.join(OUT, *parts)


def load(*parts):
    with open(path(*parts)) as f:
        return json.load(f)


def load_lines(*parts):
    rows = []
    p = path(*parts)
    if os.path.exists(p):
        for line in open(p):
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def num(x, digits=0):
    """A number with thousands separators; '' for None."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.{digits}f}x"


def table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def code(lines):
    return "```sh\n" + "\n".join(lines) + "\n```"


class Fragment:
    def __init__(self, name, title):
        self.name, self.title = name, title
        self.tables, self.values, self.commands, self.plot = {}, {}, [], {}
        self.headlines = []  # [measure, recstream, peer or ceiling, ratio] for the summary
        self.order = []

    def add_table(self, key, heading, md):
        self.tables[key] = md
        self.order.append((heading, key))

    def write(self):
        doc = {"name": self.name, "title": self.title, "tables": self.tables,
               "values": self.values, "commands": self.commands, "plot": self.plot,
               "headlines": self.headlines}
        self.tables[self.name + ".commands"] = code(self.commands)
        with open(path(self.name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
        md = ["## " + self.title, "", "Commands:", "", self.tables[self.name + ".commands"], ""]
        for heading, key in self.order:
            if heading:
                md += ["### " + heading, ""]
            md += [self.tables[key], ""]
        with open(path(self.name + ".md"), "w") as f:
            f.write("\n".join(md).rstrip() + "\n")


# ---- model ----

def model():
    fr = Fragment("model", "Model: accuracy and speed against Surprise, river and implicit")
    p = load("model", "params.json")
    runs, reps = p["runs"], p["reps"]
    ver = load("model", "versions.json")
    fr.values["model.versions"] = ("Python %s, Surprise %s, river %s, implicit %s, numpy %s" % (
        ver["python"], ver["scikit-surprise"], ver["river"], ver["implicit"], ver["numpy"]))
    fr.commands = [
        "# 1. ML-100K 5-fold CV, one split for everyone (x %d for the fit time)" % runs,
        "recstream eval --input ml-100k/u.data --folds 5 --seed 1 --export-folds out/model/folds --json",
        "recstream eval --input ml-100k/u.data --folds 5 --seed 1 --set model.bias_prior=0 --set model.adagrad_rate=0 --json",
        "python model_peers.py surprise-cv SVD out/model/folds 5 1   # after each recstream run",
        "python model_peers.py surprise-cv SVDpp out/model/folds 5 1",
        "python model_peers.py surprise-cv KNNBaseline out/model/folds 5 1",
        "# 2. one time-ordered pass over ML-100K, predict then learn (x %d)" % runs,
        "recstream eval --prequential --top-n 0 --input ml-100k/u.data --set model.factors=10 --json",
        "recstream eval --prequential --top-n 0 --input ml-100k/u.data --set model.factors=10 --set model.bias_prior=0 --set model.adagrad_rate=0 --json",
        "recstream eval --prequential --top-n 0 --input ml-100k/u.data --set model.factors=10 --set model.replay_ratio=3 --json",
        "python model_peers.py river-pass BiasedMF ml-100k/u.data %d" % runs,
        "python model_peers.py river-pass FunkMF ml-100k/u.data %d" % runs,
        "recstream eval --prequential --top-n 0 --input ml-1m-partial/ratings.dat --set model.factors=10 --json",
        "recstream eval --prequential --top-n 0 --input ml-1m-partial/ratings.dat --set model.factors=10 --set model.bias_prior=0 --set model.adagrad_rate=0 --json",
        "python model_peers.py river-pass BiasedMF ml-1m-partial/ratings.dat 1",
        "# 3. the update path against the bare SGD loop, %d repetitions each" % reps,
        "build-release/bench_model 1000000 %d 0        # defaults" % reps,
        "build-release/bench_model 1000000 %d 0 0 0    # constant rates" % reps,
        "build-release/bench_model 1000000 %d 3        # replay_ratio 3" % reps,
        "# 4. the play path: ml-1m-partial, 5-star ratings as plays (x %d)" % runs,
        "recstream eval --prequential --top-n 0 --implicit-threshold 5 --model mf --input ml-1m-partial/ratings.dat --json",
        "recstream eval --prequential --top-n 0 --implicit-threshold 5 --model mf --input ml-1m-partial/ratings.dat --set model.replay_ratio=3 --json",
        "recstream eval --prequential --top-n 0 --implicit-threshold 5 --model isgd --input ml-1m-partial/ratings.dat --json",
        "python model_peers.py implicit-fit ml-1m-partial/ratings.dat 5 %d" % runs,
    ]

    # 1. accuracy
    cv = load_lines("model", "cv_recstream.jsonl")
    rs_fit = med(r["fit_seconds"] for r in cv)
    rs = cv[0]
    train_n = sum(rs["events"] - f["n"] for f in rs["per_fold"])
    peers = {a: load("model", "cv_%s.json" % a) for a in ("SVD", "SVDpp", "KNNBaseline")}
    # Both sides must have used the same split.
    same = all(peers[a]["test_n"] == [f["n"] for f in rs["per_fold"]] for a in peers)
    fr.values["model.same_folds"] = "yes" if same else "**no: fold sizes differ**"
    cvc = load_lines("model", "cv_recstream_const.jsonl")
    rsc_fit = med(r["fit_seconds"] for r in cvc)
    rows = [["**recstream** (k=64, 20 epochs, defaults)", "%.4f" % rs["rmse"], "%.4f" % rs["mae"], "",
             "%.3f" % rs_fit, "", "median of %d" % runs],
            ["recstream, constant rates (bias_prior 0, adagrad_rate 0)", "%.4f" % cvc[0]["rmse"],
             "%.4f" % cvc[0]["mae"], "%.4f" % (cvc[0]["rmse"] - rs["rmse"]), "%.3f" % rsc_fit,
             ratio(rsc_fit, rs_fit), "median of %d" % len(cvc)]]
    desc = {"SVD": "Surprise SVD (k=100, 20 epochs, defaults)",
            "SVDpp": "Surprise SVD++ (k=20, 20 epochs, defaults)",
            "KNNBaseline": "Surprise KNNBaseline (item-based, pearson_baseline, k=40)"}
    for a, d in peers.items():
        rows.append([desc[a], "%.4f" % d["rmse"], "%.4f" % d["mae"],
                     "%.4f" % (d["rmse"] - rs["rmse"]), "%.3f" % d["fit_seconds"],
                     ratio(d["fit_seconds"], rs_fit, 1),
                     "median of %d" % d["runs"] if d["runs"] > 1 else "1 run"])
    fr.add_table("model.accuracy", "Accuracy: ML-100K, 5-fold cross-validation, same folds", table(
        ["model", "RMSE", "MAE", "RMSE - recstream's", "fit time, 5 folds (s)",
         "fit time / recstream's", "timing"], rows,
        ["---", "---:", "---:", "---:", "---:", "---:", "---"]))
    better = [desc[x].split(" (")[0] for x in peers if peers[x]["rmse"] < rs["rmse"]]
    worse = [desc[x].split(" (")[0] for x in peers if peers[x]["rmse"] >= rs["rmse"]]
    reading = []
    if worse:
        reading.append("recstream's RMSE is lower than that of " + " and ".join(worse))
    if better:
        reading.append(("and higher than that of " if worse else "recstream's RMSE is higher than that of ")
                       + " and ".join(better))
    fr.values["model.accuracy_reading"] = " ".join(reading) + "."
    fr.headlines.append(["ML-100K 5-fold RMSE (fit time)", "%.4f (%.2f s)" % (rs["rmse"], rs_fit),
                         "Surprise SVD %.4f (%.2f s)" % (peers["SVD"]["rmse"], peers["SVD"]["fit_seconds"]),
                         "fit %s faster" % ratio(peers["SVD"]["fit_seconds"], rs_fit, 1)])
    fr.values["model.per_fold_rmse"] = ", ".join("%.4f" % f["rmse"] for f in rs["per_fold"])
    fr.values["model.svd_fit_ratio"] = ratio(peers["SVD"]["fit_seconds"], rs_fit, 1)
    fr.values["model.fit_share"] = "%.3f" % (rs_fit / peers["SVD"]["fit_seconds"])
    fr.values["model.fit_share_const"] = "%.3f" % (rsc_fit / peers["SVD"]["fit_seconds"])
    fr.values["model.svdpp_fit_seconds"] = "%.1f" % peers["SVDpp"]["fit_seconds"]

    # 2. one pass
    def pass_row(label, k, rows_, peer=None):
        if peer is None:
            eps = med(r["events_per_second"] for r in rows_)
            rmse = rows_[0]["rmse"]
        else:
            eps, rmse = peer["events_per_second"], peer["rmse"]
        return label, k, rmse, eps

    onepass = [
        pass_row("**recstream** (defaults: adaptive rates, no replay)", 10, load_lines("model", "pass_recstream.jsonl")),
        pass_row("recstream, constant rates (bias_prior 0, adagrad_rate 0)", 10, load_lines("model", "pass_recstream_const.jsonl")),
        pass_row("recstream, replay_ratio 3", 10, load_lines("model", "pass_recstream_replay.jsonl")),
        pass_row("river BiasedMF (its documented settings)", 10, None, load("model", "pass_river_BiasedMF.json")),
        pass_row("river FunkMF (its documented settings)", 10, None, load("model", "pass_river_FunkMF.json")),
    ]
    top = onepass[0][3]
    rv = onepass[3]
    fr.add_table("model.onepass", "One pass in time order: ML-100K, predict then learn", table(
        ["contender", "k", "RMSE", "events/s", "recstream (defaults) / this"],
        [[l, k, "%.4f" % r, num(e), "" if i == 0 else ratio(top, e, 1)]
         for i, (l, k, r, e) in enumerate(onepass)], ["---", "---:", "---:", "---:", "---:"]))
    fr.values["model.river_ratio"] = ratio(top, rv[3], 0)
    fr.headlines.append(["ML-100K one pass in time order, k=10: RMSE, events/s",
                         "%.4f, %s" % (onepass[0][2], num(top)),
                         "river BiasedMF %.4f, %s" % (rv[2], num(rv[3])),
                         ratio(top, rv[3], 0) + " the events/s"])
    p1 = load("model", "pass1m_recstream.json")
    p1c = load("model", "pass1m_recstream_const.json")
    r1 = load("model", "pass1m_river_BiasedMF.json")
    fr.add_table("model.onepass1m", "The same pass over ml-1m-partial (accuracy, one run)", table(
        ["contender", "k", "RMSE", "ratings"],
        [["**recstream** (defaults, same settings as above)", 10, "%.4f" % p1["rmse"], num(p1["n"])],
         ["recstream, constant rates", 10, "%.4f" % p1c["rmse"], num(p1c["n"])],
         ["river BiasedMF", 10, "%.4f" % r1["rmse"], num(r1.get("n", p1["n"]))]],
        ["---", "---:", "---:", "---:"]))
    fr.values["model.onepass_reading"] = (
        "With its defaults recstream's one pass %s river BiasedMF's RMSE (%.4f vs %.4f) at %s river's "
        "speed; with constant rates it would run at %s river's speed with an RMSE of %.4f, and replay "
        "3 gives %.4f at %s river's speed. On ml-1m-partial, with the same settings: %.4f against "
        "river's %.4f (constant rates %.4f)." % (
            "beats" if onepass[0][2] <= rv[2] else "does not beat", onepass[0][2], rv[2],
            ratio(top, rv[3], 0), ratio(onepass[1][3], rv[3], 0), onepass[1][2],
            onepass[2][2], ratio(onepass[2][3], rv[3], 0), p1["rmse"], r1["rmse"], p1c["rmse"]))
    fr.plot["throughput"] = [
        {"group": "model", "label": "recstream predict+learn, ML-100K (k=10)", "value": top, "unit": "events/s"},
        {"group": "peer", "label": "river BiasedMF predict+learn (k=10)", "value": rv[3], "unit": "events/s"},
        {"group": "peer", "label": "river FunkMF predict+learn (k=10)", "value": onepass[4][3], "unit": "events/s"},
    ]

    # 3./4. paths
    up, upr = load("model", "update_path.json"), load("model", "update_path_replay.json")
    upc = load("model", "update_path_const.json")
    steps = train_n * rs["epochs"]
    rs_steps = steps / rs_fit
    svd_steps = steps / peers["SVD"]["fit_seconds"]
    svdpp_steps = steps / peers["SVDpp"]["fit_seconds"]
    play = med(r["events_per_second"] for r in load_lines("model", "play_recstream.jsonl"))
    play3 = med(r["events_per_second"] for r in load_lines("model", "play_recstream_replay.jsonl"))
    isgd = med(r["events_per_second"] for r in load_lines("model", "play_isgd.jsonl"))
    imp = load("model", "implicit.json")
    rows = [
        ["rate event: id lookups + SGD step (k=64, defaults)", num(up["update_path_eps"]),
         "bare SGD loop, same arrays (ceiling)", num(up["bare_sgd_eps"]), ratio(up["update_path_eps"], up["bare_sgd_eps"])],
        ["rate event, constant rates", num(upc["update_path_eps"]),
         "bare SGD loop", num(upc["bare_sgd_eps"]), ratio(upc["update_path_eps"], upc["bare_sgd_eps"])],
        ["rate event with replay 3 (4 SGD steps)", num(upr["update_path_eps"]),
         "bare SGD loop (1 step per event)", num(upr["bare_sgd_eps"]), ratio(upr["update_path_eps"], upr["bare_sgd_eps"])],
        ["training epochs in the CV above (k=64), SGD steps/s", num(rs_steps),
         "Surprise SVD (k=100)", num(svd_steps), ratio(rs_steps, svd_steps, 1)],
        ["", "", "Surprise SVD++ (k=20)", num(svdpp_steps), ratio(rs_steps, svdpp_steps, 1)],
        ["play event, ml-1m-partial plays (k=64, 4 negatives)", num(play),
         "ISGD baseline (k=64, 1 step, no negatives)", num(isgd), ratio(play, isgd)],
        ["", "", "implicit BPR, 1 thread (k=64; samples/s)", num(imp["bpr"]["events_per_second"]),
         ratio(play, imp["bpr"]["events_per_second"])],
        ["", "", "implicit ALS, 1 thread (k=64; plays x iterations/s)", num(imp["als"]["events_per_second"]),
         ratio(play, imp["als"]["events_per_second"])],
        ["play event, replay_ratio 3", num(play3), "ISGD baseline", num(isgd), ratio(play3, isgd)],
    ]
    fr.add_table("model.paths", "Speed of each model path", table(
        ["recstream path", "events/s", "peer or ceiling", "events/s", "recstream / peer"], rows,
        ["---", "---:", "---", "---:", "---:"]))
    fr.values["model.bare_ratio"] = "%.2f" % (up["update_path_eps"] / up["bare_sgd_eps"])
    fr.headlines.append(["rate update path (ids + SGD step, k=64), events/s", num(up["update_path_eps"]),
                         "bare SGD loop %s" % num(up["bare_sgd_eps"]),
                         ratio(up["update_path_eps"], up["bare_sgd_eps"])])
    fr.plot["throughput"] += [
        {"group": "model", "label": "recstream rate update path (k=64)", "value": up["update_path_eps"], "unit": "events/s"},
        {"group": "ceiling", "label": "bare SGD loop (k=64)", "value": up["bare_sgd_eps"], "unit": "events/s"},
        {"group": "model", "label": "recstream rate path, replay 3", "value": upr["update_path_eps"], "unit": "events/s"},
        {"group": "model", "label": "recstream play path (k=64)", "value": play, "unit": "events/s"},
        {"group": "peer", "label": "ISGD baseline play step (k=64)", "value": isgd, "unit": "events/s"},
        {"group": "peer", "label": "implicit BPR, samples (k=64)", "value": imp["bpr"]["events_per_second"], "unit": "events/s"},
        {"group": "peer", "label": "Surprise SVD epochs, SGD steps (k=100)", "value": svd_steps, "unit": "events/s"},
    ]
    fr.write()


# ---- ranking ----

def ranking():
    fr = Fragment("ranking", "Ranking and neighbours")
    rows = load_lines("ranking.jsonl")
    quick = not any(r.get("bench") == "rank" and r["items"] >= 1000000 for r in rows)
    fr.commands = [
        "build-release/bench_ranking neighbors 2000000 20 100000 100000",
        "build-release/bench_ranking neighbors 2000000 20 10000 100000",
        "build-release/bench_ranking model 500000 20 100000 100000",
        "build-release/bench_ranking rank 10000 64 2048",
        "build-release/bench_ranking rank 100000 64 1024",
    ] + ([] if quick else ["build-release/bench_ranking rank 1000000 64 128"])
    if any(r.get("kernels") != "auto" for r in rows):
        fr.commands += ["OPENBLAS_CORETYPE=SkylakeX build-release/bench_ranking rank 10000 64 2048",
                        "OPENBLAS_CORETYPE=SkylakeX build-release/bench_ranking rank 100000 64 1024"]
    out = []
    head100k = {}
    for r in rows:
        if r.get("bench") != "rank":
            continue
        u = r["users_per_s"]
        exact = u.get("rank_blend_exact")
        out.append([num(r["items"]), r["kernels"], num(u["sgemm_bound"]), num(u["sgemv"]),
                    "%.1f" % r.get("Q_GB_per_s_sgemv", float("nan")),
                    num(u["rank_blend"]), ratio(u["rank_blend"], u["sgemm_bound"]),
                    num(exact) if exact else "", ratio(exact, u["sgemm_bound"]) if exact else "",
                    ratio(u["rank_blend"], u["sgemv"], 1),
                    num(u["rank_model"]), ratio(u["rank_model"], u["sgemm_bound"])])
        if r["items"] == 100000:
            head100k[r["kernels"]] = u
        if r["kernels"] == "auto":
            fr.plot.setdefault("throughput", []).append(
                {"group": "ranking", "label": "ranking, blend, %s items (users/s)" % num(r["items"]),
                 "value": u["rank_blend"], "unit": "users/s"})
    # The headline: the kernels recstream itself runs where the CPU has AVX-512
    # (it switches OpenBLAS to them, README), else OpenBLAS's own choice.
    kern = "SkylakeX" if "SkylakeX" in head100k else "auto"
    if kern in head100k:
        u = head100k[kern]
        fr.headlines.append(["ranking 100K items, k=64 (blend, %s kernels), users/s" % kern,
                             num(u["rank_blend"]),
                             "bare sgemm %s / sgemv %s" % (num(u["sgemm_bound"]), num(u["sgemv"])),
                             "%s / %s" % (ratio(u["rank_blend"], u["sgemm_bound"]),
                                          ratio(u["rank_blend"], u["sgemv"], 1))])
    fr.add_table("ranking.rank", "Ranking throughput, k = 64, top 20, batches of users", table(
        ["items", "kernels", "sgemm bound users/s", "sgemv users/s", "sgemv GB/s",
         "blend users/s", "blend / sgemm", "blend, lists recomputed, users/s",
         "recomputed / sgemm", "blend / sgemv", "model only users/s", "model / sgemm"],
        out, ["---:", "---"] + ["---:"] * 10))
    paths, short = [], []
    for r in rows:
        if r.get("bench") == "neighbors":
            paths.append(("neighbour update alone (`rs_neighbors_add`), %s items" % num(r["items"]),
                          r["events_per_s"]))
            short.append("neighbour update, %s items" % num(r["items"]))
        elif r.get("bench") == "model":
            e = r["events_per_s"]
            paths.append(("model (64 factors, 4 negatives) + neighbours + popularity", e["mf_neighbors_popularity"]))
            paths.append(("whole `rs_pipeline_apply` (ids interned, history, dirty set too)", e["pipeline_apply"]))
            paths.append(("model alone, same events (peer)", e["mf_alone"]))
            short += ["play: model + neighbours + popularity", "play: whole pipeline apply",
                      "play: model alone"]
    alone = next((e for l, e in paths if l.startswith("model alone")), None)
    fr.add_table("ranking.paths", "Event paths, window 20 (play events, 100K users, skewed items)", table(
        ["path", "events/s", "ns/event", "model alone / this"],
        [[l, num(e), num(1e9 / e), ratio(alone, e)] for l, e in paths]))
    for l, (_, e) in zip(short, paths):
        fr.plot.setdefault("throughput", []).append(
            {"group": "pipeline", "label": l, "value": e, "unit": "events/s"})
    fr.write()


# ---- snapshot ----

def snapshot():
    fr = Fragment("snapshot", "Snapshots")
    p = load("snapshot", "params.json")
    mallocs = [m for m in ("hugetlb", "default") if os.path.exists(path("snapshot", m + ".txt"))]
    fr.commands = [("GLIBC_TUNABLES=glibc.malloc.hugetlb=1 " if m == "hugetlb" else "") +
                   "build-release/bench_snapshot DIR %s" % p["args"] for m in mallocs]
    fr.values["snapshot.thp"] = p["thp"]
    cols = {}
    for malloc in mallocs:
        t = open(path("snapshot", malloc + ".txt")).read()
        g = lambda rx: re.search(rx, t)
        st = g(r"state: (\d+) users, (\d+) items, k=(\d+), (\d+) events")
        w = g(r"write .*?: ([\d.]+) ms; peer .*?: ([\d.]+) ms; ratio ([\d.]+)")
        r = g(r"restore .*?: ([\d.]+) ms; peer .*?: ([\d.]+) ms; ratio ([\d.]+)")
        f = g(r"fork \(ingestion stall\) ms: p50 ([\d.]+), p99 ([\d.]+), max ([\d.]+)")
        gp = g(r"per snapshot ms: p50 ([\d.]+), p99 ([\d.]+), max ([\d.]+)")
        n = g(r"background snapshots: (\d+) taken")
        size = g(r"file size: ([\d.]+) MB")
        cols[malloc] = dict(state=st.groups(), write=w.groups(), restore=r.groups(),
                            fork=f.groups(), gap=gp.groups(), forks=n.group(1), size=size.group(1))
    first = cols[mallocs[0]]
    fr.values["snapshot.state"] = "%s users, %s items, k = %s (%s events applied)" % tuple(
        num(int(x)) if i != 2 else x for i, x in enumerate(first["state"]))
    fr.values["snapshot.forks"] = first["forks"]
    cs = [cols[m] for m in mallocs]
    rows = [
        ["file size"] + [c["size"] + " MB" for c in cs],
        ["write (temp file, fsync, rename, dir fsync), median of 3"] + [c["write"][0] + " ms" for c in cs],
        ["peer: plain write + fsync of the same bytes"] + [c["write"][1] + " ms" for c in cs],
        ["write / peer"] + [c["write"][2] for c in cs],
        ["restore (verify every checksum + load), median of 3"] + [c["restore"][0] + " ms" for c in cs],
        ["peer: plain read of the same bytes (page cache)"] + [c["restore"][1] + " ms" for c in cs],
        ["restore / peer"] + [c["restore"][2] for c in cs],
        ["fork = ingestion stall, p50 / p99 / max"] + ["%s / %s / %s ms" % c["fork"] for c in cs],
        ["longest gap between two applied events, p50 / p99 / max"] + ["%s / %s / %s ms" % c["gap"] for c in cs],
    ]
    names = {"hugetlb": "`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`", "default": "default malloc"}
    fr.add_table("snapshot.table", "", table(
        [""] + [names[m] for m in mallocs], rows, ["---"] * (len(mallocs) + 1)))
    h = cols[mallocs[0]]
    fr.values["snapshot.fork_p99_hugetlb"] = h["fork"][1]
    fr.headlines.append(["snapshot stall (fork), %s malloc, p50 / p99" % ("huge-page" if mallocs[0] == "hugetlb" else "default"),
                         "%s / %s ms" % (h["fork"][0], h["fork"][1]), "", ""])
    fr.write()


# ---- publish ----

def publish():
    fr = Fragment("publish", "Publishing to Redis")
    p = load("publish-params.json")
    rows = load_lines("publish.jsonl")
    rates = [r["target_rate"] for r in rows if r["bench"] == "freshness"]
    fr.commands = ["build-release/bench_publish PORT %d 5" % p["lists"]]
    for rate in sorted(set(rates)):
        runs = rates.count(rate)
        fr.commands += [
            "recstream run -c fresh.conf &   # real broker and redis-server, publish_interval_ms 20, k=32"
            + ("   # x %d runs" % runs if runs > 1 else ""),
            "build-release/bench_freshness BROKERS TOPIC PORT PREFIX %d %d 2000 100000   # warm-up" % (rate, p["warmup_seconds"]),
            "RS_FRESHNESS_DUMP=out/freshness-%d.txt build-release/bench_freshness BROKERS TOPIC PORT PREFIX %d %d 2000 100000"
            % (rate, rate, p["seconds_per_rate"])]
    fr.values["publish.lists"] = num(p["lists"])
    fr.values["publish.seconds"] = str(p["seconds_per_rate"])
    fr.values["publish.warmup"] = str(p["warmup_seconds"])
    pub = [r for r in rows if r["bench"] == "publish"]
    bare = next((r for r in pub if r["format"] == "bare-set"), None)
    out = []
    if bare:
        out.append(["bare SET (ceiling)", num(bare["lists_per_second"]), "1.00", ""])
    for r in pub:
        if r["format"] != "bare-set":
            out.append([r["format"], num(r["lists_per_second"]), "%.2f" % r["ratio_to_bare_set"],
                        num(r["redis_bytes_per_list"])])
            if r["format"] == "json" and bare:
                fr.headlines.append(["publishing json lists, lists/s", num(r["lists_per_second"]),
                                     "bare pipelined SET %s" % num(bare["lists_per_second"]),
                                     "%.2fx" % r["ratio_to_bare_set"]])
            if r["format"] == "json":
                fr.plot.setdefault("throughput", []).append(
                    {"group": "redis", "label": "publish json lists (lists/s)", "value": r["lists_per_second"], "unit": "lists/s"})
    if bare:
        fr.plot.setdefault("throughput", []).append(
            {"group": "ceiling", "label": "bare pipelined SET (lists/s)", "value": bare["lists_per_second"], "unit": "lists/s"})
    fr.add_table("publish.throughput", "Throughput, ranking excluded", table(
        ["format", "lists/s", "ratio to bare SET", "Redis bytes per list"], out))
    fresh = [r for r in rows if r["bench"] == "freshness"]

    def run_of(kind):
        """Each record of this kind labelled with its run at its rate ("1", "2", ...)."""
        seen, out = {}, []
        for r in rows:
            if r["bench"] == kind:
                seen[r["target_rate"]] = seen.get(r["target_rate"], 0) + 1
                out.append((str(seen[r["target_rate"]]), r))
        return out

    fr.add_table("publish.freshness", "Freshness", table(
        ["target events/s", "run", "achieved events/s", "probes", "missed", "p50 ms", "p99 ms",
         "max ms"],
        [[num(r["target_rate"]), run, num(r["achieved_rate"]), r["probes"], r.get("missed", 0),
          "%.1f" % r["p50_ms"], "%.1f" % r["p99_ms"], "%.1f" % r["max_ms"]]
         for run, r in run_of("freshness")]))
    stages = [r for r in rows if r["bench"] == "freshness-stages"]
    names = [("event_lag", "event lag (Kafka append to applied)"),
             ("dirty_wait", "wait in the dirty set"), ("rank", "ranking a batch"),
             ("publish_duration", "Redis write of a batch")]
    srows = []
    for run, r in run_of("freshness-stages"):
        for key, label in names:
            if key in r:
                srows.append([num(r["target_rate"]), run, label, num(r[key]["count"]),
                              "<= %s" % r[key]["p50_le_s"], "<= %s" % r[key]["p99_le_s"]])
    if srows:
        fr.add_table("publish.stages", "Where the time goes (recstream's own histograms)", table(
            ["target events/s", "run", "stage", "observations", "p50 (s, bucket bound)",
             "p99 (s, bucket bound)"], srows))
    else:
        fr.values["publish.stages"] = ""
    cpu = run_of("freshness-cpu")
    if cpu:
        fr.add_table("publish.cpu", "Where the machine's CPU goes", table(
            ["target events/s", "run", "lists published/s", "recstream (its model thread)",
             "model thread waiting for a CPU", "Kafka broker", "load generator", "redis-server",
             "whole machine (busy)"],
            [[num(r["target_rate"]), run, num(r["lists_per_second"]),
              "%.2f (%.2f)" % (r["cores"]["recstream"], r["cores"]["model_thread"]),
              "%.2f" % r["cores"]["model_thread_waiting"]
              if "model_thread_waiting" in r["cores"] else "",
              "%.2f" % r["cores"]["broker"], "%.2f" % r["cores"]["generator"],
              "%.2f" % r["cores"]["redis"], "%.2f" % r["cores"]["machine"]] for run, r in cpu]))
    else:
        fr.values["publish.cpu"] = ""
    for rate in sorted(set(rates)):
        runs = sorted((r for r in fresh if r["target_rate"] == rate), key=lambda r: r["p99_ms"])
        if len(runs) == 1:
            fr.headlines.append(["freshness at %s events/s, p50 / p99" % num(rate),
                                 "%.1f / %.1f ms" % (runs[0]["p50_ms"], runs[0]["p99_ms"]), "", ""])
        else:  # the run with the median p99, and the range over all runs
            mid = runs[len(runs) // 2]
            fr.headlines.append(["freshness at %s events/s, p50 / p99 (run of median p99; "
                                 "p99 range over %d runs)" % (num(rate), len(runs)),
                                 "%.1f / %.1f ms (%.1f-%.1f)"
                                 % (mid["p50_ms"], mid["p99_ms"], runs[0]["p99_ms"],
                                    runs[-1]["p99_ms"]), "", ""])
    fr.plot["freshness"] = {str(rate): "freshness-%d.txt" % rate for rate in sorted(set(rates))}
    fr.write()


# ---- ingest ----

def ingest():
    fr = Fragment("ingest", "Ingestion from Kafka, and end to end")
    p = load("ingest-params.json")
    rows = load_lines("ingest.jsonl")
    settings = []
    for r in rows:
        if r["setting"] not in settings:
            settings.append(r["setting"])
    fr.commands = ["build-release/bench_consume BROKERS TOPIC %d %s" % (p["events"], "" if s.startswith("recstream") else s)
                   for s in settings]
    fr.commands += [
        "recstream gen --events %d --users %d --items 10000 --output e2e.msgpack" % (p["e2e_events"], p["e2e_users"]),
        "recstream produce -c e2e.conf --input e2e.msgpack",
        "recstream run -c e2e.conf   # timed from the first to the last events_applied in rs:meta"]
    fr.values["ingest.events"] = num(p["events"])
    fr.values["ingest.e2e_events"] = num(p["e2e_events"])
    fr.values["ingest.e2e_users"] = num(p["e2e_users"])
    out, by_default = [], {}
    for s in settings:
        by = {r["pass"]: r["events_per_second"] for r in rows if r["setting"] == s}
        if s.startswith("recstream"):
            by_default = by
        out.append([s, num(by.get("produce")), num(by.get("consume")), num(by.get("decode")),
                    num(by.get("pipeline")), ratio(by.get("decode"), by.get("consume")),
                    ratio(by.get("pipeline"), by.get("consume"))])
    fr.add_table("ingest.consume", "Consuming a backlog", table(
        ["librdkafka setting", "produce ev/s", "consume ev/s (ceiling)", "decode ev/s",
         "model path ev/s", "decode / consume", "model path / consume"], out,
        ["---"] + ["---:"] * 6))
    e2e = load("endtoend.json")
    e = e2e.get("events_per_second")
    rows2 = [["Kafka → model → ranking → Redis (`recstream run`)", num(e),
              ratio(e, by_default.get("pipeline")), ratio(e, by_default.get("consume")),
              num(e2e.get("lists_in_redis"))]]
    fr.headlines.append(["end to end Kafka -> Redis, events/s", num(e),
                         "Kafka consume alone %s" % num(by_default.get("consume")),
                         ratio(e, by_default.get("consume"))])
    if e2e.get("error"):
        rows2[0][1] = "not measured: " + e2e["error"]
    fr.add_table("ingest.e2e", "End to end: Kafka to Redis", table(
        ["path", "events/s", "/ model path without Redis", "/ consume ceiling", "lists in Redis"], rows2))
    tp = fr.plot.setdefault("throughput", [])
    for key, label in (("consume", "Kafka consume (ceiling)"), ("decode", "Kafka consume + decode"),
                       ("pipeline", "Kafka consume + decode + model path")):
        if by_default.get(key):
            tp.append({"group": "kafka", "label": label, "value": by_default[key], "unit": "events/s"})
    if e:
        tp.append({"group": "kafka", "label": "end to end Kafka -> Redis", "value": e, "unit": "events/s"})
    fr.write()


# ---- streaming ----

STREAMS = [
    ("ml100k", "ML-100K, ratings"),
    ("ml1m", "ml-1m-partial (users 1-2999), ratings"),
    ("ml1m-plays", "ml-1m-partial, 5-star ratings as plays"),
    ("lastfm", "Last.fm 2K tag events as plays"),
]
NAMES = {"default": "**recstream (blend, as served)**", "mf": "recstream model alone",
         "neighbors": "recstream neighbours alone", "river.BiasedMF": "river BiasedMF (k=10)",
         "river.FunkMF": "river FunkMF (k=10)", "isgd": "ISGD baseline (k=64)",
         "popularity": "popularity baseline (1-week half-life)"}


def streaming():
    fr = Fragment("streaming", "Streaming accuracy: prequential, in time order")
    every = load("streaming", "params.json")["ml1m_rank_every"]
    fr.values["streaming.ml1m_rank_every"] = str(every)
    fr.values["streaming.plays_rank_every"] = str(load("streaming", "params.json").get("plays_rank_every", 1))
    fr.commands = []
    series = {}
    for tag, title in STREAMS:
        files = sorted(glob.glob(path("streaming", tag + ".*.json")))
        res = {}
        for f in files:
            m = os.path.basename(f)[len(tag) + 1:-5]
            try:
                res[m] = load("streaming", os.path.basename(f))
            except ValueError:
                continue
        if not res:
            continue
        order = [m for m in NAMES if m in res]
        first = res[order[0]]
        inp = {"ml100k": "ml-100k/u.data", "ml1m": "ml-1m-partial/ratings.dat",
               "ml1m-plays": "ml-1m-partial/ratings.dat --implicit-threshold 5",
               "lastfm": "lastfm-tags.tsv"}[tag]
        fr.commands.append("# %s: window %s events, rank every %s" % (title, first.get("window"), first.get("rank_every")))
        for m in order:
            if m.startswith("river."):
                fr.commands.append("python model_peers.py river-stream %s %s 20 %s %s" % (
                    m[6:], inp.split()[0], first.get("rank_every"), first.get("window")))
            else:
                fr.commands.append("recstream eval --prequential --input %s --top-n 20 --model %s --window %s --rank-every %s --json" % (
                    inp, m, first.get("window"), first.get("rank_every")))
        served = res.get("default", {}).get("recall")
        rows = []
        for m in order:
            r = res[m]
            rows.append([NAMES[m], "%.4f" % r["rmse"] if r.get("rmse") is not None else "",
                         "%.4f" % r["recall"], "%.4f" % r["ndcg"],
                         "" if m == "default" else ratio(served, r["recall"]),
                         num(r["n_ranked"]), num(r["events_per_second"])])
        same = len({res[m]["n_ranked"] for m in order}) == 1
        fr.add_table("streaming." + tag, title, table(
            ["contender", "RMSE", "recall@20", "NDCG@20", "served / this (recall)", "events ranked",
             "events/s"], rows) + ("" if same else "\n\n**Warning: the contenders ranked different numbers of events.**"))
        series[tag] = {"title": title, "window": first.get("window"),
                       "models": {NAMES[m].strip("*"): [[w["end"], w["recall"]] for w in res[m].get("series", [])]
                                  for m in order}}
        for peer in ("river.BiasedMF", "popularity"):
            if served and peer in res and tag in ("ml100k", "ml1m"):
                fr.headlines.append(["%s: recall@20 as served" % title, "%.4f" % served,
                                     "%s %.4f" % (NAMES[peer], res[peer]["recall"]),
                                     ratio(served, res[peer]["recall"])])
        if tag == "ml100k" and served:
            fr.values["streaming.ml100k_vs_river"] = ratio(served, res.get("river.BiasedMF", {}).get("recall"))
    fr.plot["recall"] = series
    fr.write()


# ---- memory ----

def memory():
    fr = Fragment("memory", "Memory per user and per item")
    d = load("memory.json")
    k = d["factors"]
    floor = 4 * k + 4
    fr.commands = [
        "recstream gen --events N --users U --items I --output mem.msgpack",
        "recstream replay -c config/recstream.conf --no-publish --json --input mem.msgpack   # peak RSS",
    ]
    ul, uh, il, ih = d["users_lo"], d["users_hi"], d["items_lo"], d["items_hi"]
    per_user = (uh["peak_rss_kb"] - ul["peak_rss_kb"]) * 1024 / (uh["users"] - ul["users"])
    per_item = (ih["peak_rss_kb"] - il["peak_rss_kb"]) * 1024 / (ih["items"] - il["items"])
    rows = [
        ["per user (%s events each)" % num(ul["events"] / ul["users"], 1), num(per_user),
         "%s vs %s users, %s items" % (num(ul["users"]), num(uh["users"]), num(ul["items"])),
         num(floor), ratio(per_user, floor, 1)],
        ["per item", num(per_item), "%s vs %s items, %s users" % (num(il["items"]), num(ih["items"]), num(il["users"])),
         num(floor), ratio(per_item, floor, 1)],
    ]
    fr.headlines.append(["memory per user / per item, bytes", "%s / %s" % (num(per_user), num(per_item)),
                         "floor (k=%d row + bias) %s" % (k, num(floor)),
                         "%s / %s" % (ratio(per_user, floor, 1), ratio(per_item, floor, 1))])
    fr.add_table("memory.table", "", table(
        ["", "bytes (peak RSS growth)", "streams compared", "floor: one k=%d row + bias" % k,
         "measured / floor"], rows, ["---", "---:", "---", "---:", "---:"]))
    fr.write()


if __name__ == "__main__":
    OUT = sys.argv[1]
    {"model": model, "ranking": ranking, "snapshot": snapshot, "publish": publish,
     "ingest": ingest, "streaming": streaming, "memory": memory}[sys.argv[2]]()
    print("fragment: %s.md" % os.path.join(OUT, sys.argv[2]), file=sys.stderr)
