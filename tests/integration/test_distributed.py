"""Fits in parallel workers: torch threads per worker, and grid search on a dask cluster."""

import os

import joblib
import numpy as np
import pytest
import torch
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_dim import DeepInfoMaxTransformer

# Digits as feature vectors (a small MLP encoder): cheap fits.
SMALL = {
    "embedding_dim": 8,
    "image_shape": None,
    "layer": "y",
    "max_epochs": 1,
    "batch_size": 32,
    "random_state": 0,
}


class ThreadsSeen(DeepInfoMaxTransformer):
    """Records the torch threads that fit runs with (module level: workers import it)."""

    def _build_module(self, X, input_shape):
        self.threads_seen_ = torch.get_num_threads()
        return super()._build_module(X, input_shape)


def _fit_in_worker(n_threads):
    X, _ = load_digits(return_X_y=True)
    dim = ThreadsSeen(n_threads=n_threads, device="cpu", **SMALL).fit(X[:64])
    return dim.threads_seen_, torch.get_num_threads()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="torch caps its threads at the cores")
@pytest.mark.parametrize("n_threads, expected", [(None, 2), (1, 1)])
def test_fits_in_loky_workers_use_the_workers_thread_allowance(n_threads, expected):
    # joblib gives each process worker OMP_NUM_THREADS = its share of the cores,
    # cpu_count // n_jobs (1 here), or inner_max_num_threads (2); torch follows
    # it unless n_threads says otherwise, and the worker's setting comes back
    # after fit.
    with joblib.parallel_config(backend="loky", inner_max_num_threads=2):
        results = Parallel(n_jobs=2)(delayed(_fit_in_worker)(n_threads) for _ in range(2))
    assert results == [(expected, 2)] * 2


def test_fits_in_threads_each_keep_their_own_limit():
    # Threads share one process: without n_threads each fit would use all of
    # torch's threads at once.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with joblib.parallel_config(backend="threading"):
            results = Parallel(n_jobs=2)(delayed(_fit_in_worker)(1) for _ in range(2))
        assert [seen for seen, _ in results] == [1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _grid_search(n_jobs):
    # n_threads=1: float sums depend on the thread count, and the local process
    # and the dask workers would otherwise run with different counts.
    dim = DeepInfoMaxTransformer(device="cpu", n_threads=1, **SMALL)
    pipe = Pipeline([("dim", dim), ("clf", LogisticRegression(max_iter=300))])
    grid = {"dim__alpha": [0.5, 1.0], "dim__gamma": [0.0, 0.1]}
    return GridSearchCV(pipe, grid, cv=2, n_jobs=n_jobs, refit=False)


def test_grid_search_on_a_dask_cluster_matches_a_local_one():
    distributed = pytest.importorskip("dask.distributed")
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    local = _grid_search(n_jobs=1).fit(X, y)

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        distributed.get_task_stream(client) as tasks,
        joblib.parallel_config(backend="dask"),
    ):
        remote = _grid_search(n_jobs=-1).fit(X, y)

    assert tasks.data, "no task ran on the cluster"
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"],
        local.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-12,
    )
