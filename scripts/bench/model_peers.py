"""Peer measurements for scripts/bench/model: Surprise SVD on exported folds,
and river's BiasedMF under progressive validation in time order. Prints one
JSON object per call. Run with the benchmark's virtual environment."""
import json
import statistics
import sys
import time


def surprise_cv(folds_dir, n_folds, runs, first_run=0):
    from surprise import SVD, Dataset, Reader, accuracy
    from surprise.model_selection import PredefinedKFold

    reader = Reader(line_format="user item rating timestamp", sep="\t", rating_scale=(1, 5))
    pairs = [(f"{folds_dir}/fold{f}.train", f"{folds_dir}/fold{f}.test") for f in range(n_folds)]
    data = Dataset.load_from_folds(pairs, reader=reader)
    totals, rmse, mae = [], [], []
    for run in range(first_run, first_run + runs):
        fit_total, r_run, m_run = 0.0, [], []
        for trainset, testset in PredefinedKFold().split(data):
            algo = SVD(random_state=run)  # Surprise defaults: k=100, lr=0.005, reg=0.02, 20 epochs
            t0 = time.perf_counter()
            algo.fit(trainset)
            fit_total += time.perf_counter() - t0
            pred = algo.test(testset)
            r_run.append(accuracy.rmse(pred, verbose=False))
            m_run.append(accuracy.mae(pred, verbose=False))
        totals.append(fit_total)
        rmse.append(statistics.mean(r_run))
        mae.append(statistics.mean(m_run))
    return {"peer": "surprise.SVD", "runs": runs, "rmse": statistics.median(rmse),
            "mae": statistics.median(mae), "fit_seconds": statistics.median(totals),
            "fit_seconds_all": totals}


def river_prequential(path):
    from river import optim, reco

    events = []
    with open(path) as f:
        for line in f:
            # u.data (tab-separated) or ratings.dat (fields separated by "::")
            u, i, r, ts = line.rstrip("\n").split("::" if "::" in line else "\t")
            events.append((int(ts), u, i, float(r)))
    events.sort(key=lambda e: e[0])  # stable: ties keep file order, as recstream does
    # river's documented BiasedMF example settings.
    model = reco.BiasedMF(
        n_factors=10,
        bias_optimizer=optim.SGD(0.025),
        latent_optimizer=optim.SGD(0.05),
        weight_initializer=optim.initializers.Zeros(),
        latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=73),
        l2_bias=0.0,
        l2_latent=0.0,
    )
    se = 0.0
    t0 = time.perf_counter()
    for _, u, i, r in events:
        p = model.predict_one(u, i)
        p = min(5.0, max(1.0, p))
        se += (p - r) ** 2
        model.learn_one(u, i, r)
    secs = time.perf_counter() - t0
    n = len(events)
    return {"peer": "river.reco.BiasedMF", "rmse": (se / n) ** 0.5, "n": n,
            "seconds": secs, "events_per_second": n / secs}


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "surprise-cv":
        first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        out = surprise_cv(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), first)
    elif what == "river-prequential":
        out = river_prequential(sys.argv[2])
    else:
        sys.exit(f"unknown measurement {what}")
    print(json.dumps(out))
