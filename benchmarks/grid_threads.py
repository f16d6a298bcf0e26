"""Grid search with 2 workers: torch threads per worker, and wall time.

    python benchmarks/grid_threads.py [--samples N] [--epochs N] [--dask]

Runs the same GridSearchCV (DIM + logistic regression on digits, 4
candidates x 2 folds = 8 fits) sequentially and with 2 joblib workers,
with and without a limit on the torch threads of each worker, and prints
one row per setting: the torch threads one fit runs with, how many fits run
at once, and the wall time of the search (workers started and warm before
timing). On 2 cores, "oversubscribed" settings run 2 x 2 = 4 threads.
"""

import argparse
import os
import time

import joblib
import pandas as pd
import torch
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_dim import DeepInfoMaxTransformer


class ThreadsSeen(DeepInfoMaxTransformer):
    """Records the torch threads that fit runs with."""

    def _build_module(self, X, input_shape):
        self.threads_seen_ = torch.get_num_threads()
        return super()._build_module(X, input_shape)


def threads_in_fit(n_threads, X):
    dim = ThreadsSeen(embedding_dim=8, max_epochs=1, n_threads=n_threads, random_state=0)
    return dim.fit(X[:64]).threads_seen_


def search(n_jobs, n_threads, epochs):
    dim = DeepInfoMaxTransformer(max_epochs=epochs, n_threads=n_threads, random_state=0)
    pipe = Pipeline([("dim", dim), ("clf", LogisticRegression(max_iter=500))])
    grid = {"dim__alpha": [0.5, 1.0], "dim__gamma": [0.0, 0.1]}
    return GridSearchCV(pipe, grid, cv=2, n_jobs=n_jobs, refit=False)


def settings(dask):
    # (name, joblib backend config, n_jobs, n_threads)
    rows = [
        ("sequential", {"backend": "loky"}, 1, None),
        ("loky, joblib's limit (default)", {"backend": "loky"}, 2, None),
        ("loky, no limit", {"backend": "loky", "inner_max_num_threads": os.cpu_count()}, 2, None),
        ("threading, n_threads=None", {"backend": "threading"}, 2, None),
        ("threading, n_threads=1", {"backend": "threading"}, 2, 1),
    ]
    if dask:
        rows.append(("dask LocalCluster(2 x 1)", {"backend": "dask"}, 2, None))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=600, help="digits used (default 600)")
    parser.add_argument("--epochs", type=int, default=2, help="max_epochs (default 2)")
    parser.add_argument("--dask", action="store_true", help="add a dask LocalCluster row")
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    X, y = X[: args.samples], y[: args.samples]

    print(
        f"digits[:{args.samples}], DIM max_epochs={args.epochs}, 8 fits; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}",
        flush=True,
    )
    cluster = client = None
    if args.dask:
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    rows = []
    try:
        for name, config, n_jobs, n_threads in settings(args.dask):
            with joblib.parallel_config(**config):
                # Also starts the workers and warms them up before timing.
                seen = Parallel(n_jobs=n_jobs)(
                    delayed(threads_in_fit)(n_threads, X) for _ in range(n_jobs)
                )
                start = time.perf_counter()
                result = search(n_jobs, n_threads, args.epochs).fit(X, y)
                wall = time.perf_counter() - start
            rows.append(
                {
                    "setting": name,
                    "threads per fit": max(seen),
                    "fits at once": n_jobs,
                    "wall s": round(wall, 1),
                    "best CV accuracy": round(result.cv_results_["mean_test_score"].max(), 3),
                }
            )
            print(rows[-1], flush=True)  # partial results survive an interruption
    finally:
        if client is not None:
            client.close()
            cluster.close()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
