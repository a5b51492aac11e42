"""The peers of scripts/bench/model and scripts/bench/streaming, measured the
way recstream is measured in the same run:

  surprise-cv ALGO FOLDS_DIR K RUNS      Surprise SVD, SVDpp or KNNBaseline on
                                         the folds `recstream eval
                                         --export-folds` wrote: RMSE, MAE, fit time
  river-pass MODEL PATH RUNS             river BiasedMF or FunkMF, one pass in
                                         time order, predict then learn: RMSE,
                                         events/s (median of RUNS)
  river-stream MODEL PATH TOP_N EVERY WINDOW
                                         the same pass, also ranking every
                                         EVERY-th eligible event as `recstream
                                         eval --prequential --rank-every` does:
                                         recall@TOP_N, NDCG@TOP_N per WINDOW events
  implicit-fit PATH THRESHOLD RUNS       implicit's BPR and ALS trained on the
                                         ratings >= THRESHOLD as plays: events/s

Each prints one JSON object. Files: MovieLens u.data (tab) or ratings.dat
(::), sorted stably by time as recstream sorts them. Run with the benchmark's
virtual environment (scripts/bench/venv.sh).
"""
import json
import math
import statistics
import sys
import time


def load(path):
    """(user, item, rating, ts) with dense int ids, stably sorted by time."""
    sep = "::" if path.endswith(".dat") else "\t"
    users, items, events = {}, {}, []
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.rstrip("\n").split(sep)
            if len(parts) < 4:
                continue
            u = users.setdefault(parts[0], len(users))
            i = items.setdefault(parts[1], len(items))
            events.append((u, i, float(parts[2]), int(parts[3])))
    events.sort(key=lambda e: e[3])  # stable: ties keep file order
    return events, len(users), len(items)


def surprise_cv(algo_name, folds_dir, n_folds, runs):
    from surprise import SVD, KNNBaseline, SVDpp, Dataset, Reader, accuracy
    from surprise.model_selection import PredefinedKFold

    def make(run):
        if algo_name == "SVD":  # defaults: k=100, lr 0.005, reg 0.02, 20 epochs
            return SVD(random_state=run)
        if algo_name == "SVDpp":  # defaults: k=20, 20 epochs; the cache only saves time
            return SVDpp(random_state=run, cache_ratings=True)
        if algo_name == "KNNBaseline":  # Surprise's documented item-based setting
            return KNNBaseline(sim_options={"name": "pearson_baseline", "user_based": False},
                               verbose=False)
        sys.exit("unknown algorithm " + algo_name)

    reader = Reader(line_format="user item rating timestamp", sep="\t", rating_scale=(1, 5))
    pairs = [(f"{folds_dir}/fold{f}.train", f"{folds_dir}/fold{f}.test") for f in range(n_folds)]
    data = Dataset.load_from_folds(pairs, reader=reader)
    totals, rmse, mae, per_fold, test_n = [], [], [], [], []
    for run in range(runs):
        fit_total, r_run, m_run = 0.0, [], []
        for trainset, testset in PredefinedKFold().split(data):
            algo = make(run)
            t0 = time.perf_counter()
            algo.fit(trainset)
            fit_total += time.perf_counter() - t0
            pred = algo.test(testset)
            r_run.append(accuracy.rmse(pred, verbose=False))
            m_run.append(accuracy.mae(pred, verbose=False))
            if run == 0:
                test_n.append(len(testset))
        totals.append(fit_total)
        rmse.append(statistics.mean(r_run))
        mae.append(statistics.mean(m_run))
        if run == 0:
            per_fold = r_run
            train_n = trainset.n_ratings
    epochs = getattr(make(0), "n_epochs", None)
    return {"peer": "surprise." + algo_name, "runs": runs, "rmse": statistics.median(rmse),
            "mae": statistics.median(mae), "fit_seconds": statistics.median(totals),
            "fit_seconds_all": totals, "per_fold_rmse": per_fold, "test_n": test_n,
            "train_n": train_n, "epochs": epochs}


def river_model(name):
    from river import optim, reco

    # The settings of river's own documentation examples.
    if name == "BiasedMF":
        return reco.BiasedMF(
            n_factors=10,
            bias_optimizer=optim.SGD(0.025),
            latent_optimizer=optim.SGD(0.05),
            weight_initializer=optim.initializers.Zeros(),
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=73),
            l2_bias=0.0,
            l2_latent=0.0,
        )
    if name == "FunkMF":
        return reco.FunkMF(
            n_factors=10,
            optimizer=optim.SGD(0.05),
            initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=73),
        )
    sys.exit("unknown river model " + name)


def river_pass(name, path, runs):
    events, _, _ = load(path)
    out = []
    for _ in range(runs):
        model = river_model(name)
        se = 0.0
        t0 = time.perf_counter()
        for u, i, r, _ in events:
            p = min(5.0, max(1.0, model.predict_one(u, i)))  # clamped like recstream's
            se += (p - r) ** 2
            model.learn_one(u, i, r)
        secs = time.perf_counter() - t0
        out.append((len(events) / secs, math.sqrt(se / len(events))))
    return {"peer": "river.reco." + name, "n": len(events), "runs": runs,
            "rmse": out[0][1], "events_per_second": statistics.median(e for e, _ in out),
            "events_per_second_all": [e for e, _ in out]}


def river_stream(name, path, top_n, every, window):
    """Test-then-train with the rule of recstream's harness: an event is eligible
    when its user has history and its item is new to the user; one eligible
    event in `every` is ranked for: a hit when fewer than top_n items seen so
    far (not in the user's history) score above it."""
    import numpy as np

    events, n_users, n_items = load(path)
    model = river_model(name)
    biased = name == "BiasedMF"
    k = model.n_factors
    Q = np.zeros((n_items, k))
    bi = np.zeros(n_items)
    seen = np.full(n_items, -np.inf)  # 0 once an item has appeared
    hist = [[] for _ in range(n_users)]
    hist_set = [set() for _ in range(n_users)]
    tot = {"se": 0.0, "rated": 0, "hits": 0.0, "gain": 0.0, "ranked": 0}
    win = dict(tot)
    series, eligible, n = [], 0, 0

    def close(end):
        series.append({
            "end": end, "n_rated": win["rated"], "n_ranked": win["ranked"],
            "rmse": math.sqrt(win["se"] / win["rated"]) if win["rated"] else None,
            "recall": win["hits"] / win["ranked"] if win["ranked"] else None,
            "ndcg": win["gain"] / win["ranked"] if win["ranked"] else None})
        win.update(se=0.0, rated=0, hits=0.0, gain=0.0, ranked=0)

    t0 = time.perf_counter()
    for u, i, r, _ in events:
        p = min(5.0, max(1.0, model.predict_one(u, i)))
        for acc in (tot, win):
            acc["se"] += (p - r) ** 2
            acc["rated"] += 1
        if top_n > 0 and hist[u] and i not in hist_set[u]:
            take = eligible % every == 0
            eligible += 1
            if take:
                rank = None
                if seen[i] == 0.0:
                    scores = Q @ model.u_latents[u] + seen
                    if biased:
                        scores += bi
                    scores[hist[u]] = -np.inf
                    rank = int(np.count_nonzero(scores > scores[i]))
                for acc in (tot, win):
                    if rank is not None and rank < top_n:
                        acc["hits"] += 1.0
                        acc["gain"] += 1.0 / math.log2(rank + 2.0)
                    acc["ranked"] += 1
        model.learn_one(u, i, r)
        Q[i] = model.i_latents[i]
        if biased:
            bi[i] = model.i_biases[i]
        seen[i] = 0.0
        hist[u].append(i)
        hist_set[u].add(i)
        n += 1
        if window and n % window == 0:
            close(n)
    secs = time.perf_counter() - t0
    if window and (not series or series[-1]["end"] < n):
        close(n)
    return {"mode": "prequential", "model": "river." + name, "top_n": top_n,
            "rmse": math.sqrt(tot["se"] / tot["rated"]),
            "recall": tot["hits"] / tot["ranked"] if tot["ranked"] else None,
            "ndcg": tot["gain"] / tot["ranked"] if tot["ranked"] else None,
            "n": n, "n_rated": tot["rated"], "n_ranked": tot["ranked"],
            "n_eligible": eligible, "rank_every": every, "seconds": secs,
            "events_per_second": n / secs, "window": window, "series": series}


def implicit_fit(path, threshold, runs):
    """implicit's BPR and ALS on the plays (ratings >= threshold), one thread,
    k=64: training events (samples) per second, median of runs."""
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    events, n_users, n_items = load(path)
    plays = [(u, i) for u, i, r, _ in events if r >= threshold]
    rows = np.array([u for u, _ in plays])
    cols = np.array([i for _, i in plays])
    m = sp.csr_matrix((np.ones(len(plays), dtype=np.float32), (rows, cols)),
                      shape=(n_users, n_items))
    m.sum_duplicates()
    out = {"peer": "implicit", "plays": int(m.nnz), "runs": runs}
    for name, make, iters in (
            ("bpr", lambda: BayesianPersonalizedRanking(factors=64, iterations=20, num_threads=1,
                                                        random_state=1), 20),
            ("als", lambda: AlternatingLeastSquares(factors=64, iterations=15, num_threads=1,
                                                    random_state=1), 15)):
        eps = []
        for _ in range(runs):
            model = make()
            t0 = time.perf_counter()
            model.fit(m, show_progress=False)
            eps.append(m.nnz * iters / (time.perf_counter() - t0))
        out[name] = {"iterations": iters, "events_per_second": statistics.median(eps),
                     "events_per_second_all": eps}
    return out


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "surprise-cv":
        res = surprise_cv(args[0], args[1], int(args[2]), int(args[3]))
    elif what == "river-pass":
        res = river_pass(args[0], args[1], int(args[2]))
    elif what == "river-stream":
        res = river_stream(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif what == "implicit-fit":
        res = implicit_fit(args[0], float(args[1]), int(args[2]))
    else:
        sys.exit(f"unknown measurement {what}")
    print(json.dumps(res))
