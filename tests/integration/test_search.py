"""sk_dim in scikit-learn's searches and dask-ml's incremental training.

Successive halving with the epochs as the resource, a pipeline cache that
spares the encoder's training while the probe is tuned, and
``dask_ml.wrappers.Incremental`` training block by block through
``partial_fit``.
"""

import math

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV
from sklearn.pipeline import Pipeline

from sk_dim import DeepInfoMaxTransformer

# Digits as feature vectors (a small MLP encoder): cheap fits.
SMALL = {
    "embedding_dim": 8,
    "image_shape": None,
    "encoder": "mlp",
    "layer": "y",
    "max_epochs": 1,
    "batch_size": 32,
    "n_threads": 1,
    "random_state": 0,
}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:120], y[:120]


class CountingDIM(DeepInfoMaxTransformer):
    """Counts its fits in a class attribute: not part of the instance, so not of its hash."""

    fits = 0

    def fit(self, X, y=None):
        type(self).fits += 1
        return super().fit(X, y)


def _cache_entries(location) -> int:
    """The results cached for Pipeline's ``_fit_transform_one``, one folder each."""
    folders = [path for path in location.rglob("*_fit_transform_one*") if path.is_dir()]
    assert len(folders) == 1, folders
    return sum(1 for path in folders[0].iterdir() if path.is_dir())


def test_tuning_the_probe_of_a_cached_pipeline_trains_one_encoder_per_alpha_and_fold(
    digits, tmp_path
):
    X, y = digits
    alphas, Cs, folds = [0.5, 1.0], [0.1, 1.0, 10.0], 2
    pipe = Pipeline(
        [("dim", CountingDIM(**SMALL)), ("clf", LogisticRegression(max_iter=100))],
        memory=joblib.Memory(tmp_path, verbose=0),
    )
    search = GridSearchCV(pipe, {"dim__alpha": alphas, "clf__C": Cs}, cv=folds)
    CountingDIM.fits = 0
    search.fit(X, y)

    # Same parameters and data, same cache entry: the 3 values of C share the
    # encoders; the refit trains one more, on all the data.
    expected = len(alphas) * folds + 1
    assert CountingDIM.fits == expected
    assert _cache_entries(tmp_path) == expected
    assert len(search.cv_results_["params"]) == len(alphas) * len(Cs)


def test_a_cached_encoder_transforms_like_a_freshly_trained_one(digits, tmp_path):
    X, y = digits
    pipe = Pipeline(
        [("dim", DeepInfoMaxTransformer(**SMALL)), ("clf", LogisticRegression(max_iter=100))],
        memory=joblib.Memory(tmp_path, verbose=0),
    )
    first = pipe.fit(X, y)[0].transform(X)
    # Refitting with another C loads the encoder from the cache (a new object).
    cached = pipe.set_params(clf__C=0.1).fit(X, y)[0]
    fresh = DeepInfoMaxTransformer(**SMALL).fit(X)
    np.testing.assert_allclose(cached.transform(X), first, rtol=0, atol=0)
    np.testing.assert_allclose(cached.transform(X), fresh.transform(X), rtol=1e-5, atol=1e-6)


def test_halving_search_with_the_epochs_as_resource(digits):
    X, y = digits
    grid = {"dim__alpha": [0.5, 1.0], "dim__gamma": [0.0, 0.1]}
    pipe = Pipeline(
        [("dim", DeepInfoMaxTransformer(**SMALL)), ("clf", LogisticRegression(max_iter=100))]
    )
    factor, max_epochs = 2, 2
    search = HalvingGridSearchCV(
        pipe, grid, resource="dim__max_epochs", max_resources=max_epochs, factor=factor, cv=2
    ).fit(X, y)

    # scikit-learn's schedule for 4 candidates: min_resources="exhaust" makes
    # the last round train for max_resources epochs.
    n_candidates = math.prod(len(values) for values in grid.values())
    n_rounds = 1 + int(math.log(n_candidates, factor))  # 3, but capped by the epochs:
    n_rounds = min(n_rounds, 1 + int(math.log(max_epochs, factor)))  # 2
    assert search.n_iterations_ == n_rounds
    assert search.min_resources_ == max_epochs // factor ** (n_rounds - 1)
    assert search.n_resources_ == [search.min_resources_ * factor**i for i in range(n_rounds)]
    assert search.n_candidates_ == [math.ceil(n_candidates / factor**i) for i in range(n_rounds)]

    # Each round trained its candidates for its number of epochs.
    results = search.cv_results_
    assert list(results["param_dim__max_epochs"]) == [
        n for n, k in zip(search.n_resources_, search.n_candidates_, strict=True) for _ in range(k)
    ]
    # The winner is the best of the last round, refitted with its epochs.
    last = results["iter"] == n_rounds - 1
    best = np.flatnonzero(last)[np.argmax(results["mean_test_score"][last])]
    assert search.best_index_ == best
    assert search.best_params_ == results["params"][best]
    assert search.best_params_["dim__max_epochs"] == max_epochs
    dim = search.best_estimator_.named_steps["dim"]
    assert len(dim.history_) == max_epochs
    assert {k: dim.get_params()[k.removeprefix("dim__")] for k in grid} == {
        k: search.best_params_[k] for k in grid
    }


def _no_score(estimator, X, y=None):
    """Incremental needs a scorer for estimators without ``score`` (a transformer)."""
    return np.nan


def test_dask_ml_incremental_trains_block_by_block_like_a_partial_fit_loop():
    # Needs DeepInfoMaxTransformer.partial_fit.
    pytest.importorskip("dask_ml")
    import dask.array as da
    from dask_ml.wrappers import Incremental
    from distributed import Client, LocalCluster, get_task_stream

    X, _ = load_digits(return_X_y=True)
    X = X[:192].astype(np.float32)
    blocks = 3
    X_dask = da.from_array(X, chunks=(len(X) // blocks, X.shape[1]))

    # dask-ml calls partial_fit(block, y) with y a placeholder (not None)
    # when fitted without y, once per block; the blocks in order here.
    local = DeepInfoMaxTransformer(**SMALL)
    for block in np.split(X, blocks):
        local.partial_fit(block)

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
        get_task_stream() as tasks,
    ):
        model = DeepInfoMaxTransformer(**SMALL)
        inc = Incremental(model, scoring=_no_score, shuffle_blocks=False).fit(X_dask)
        Z = inc.transform(X_dask).compute()

    assert any("fit-" in str(task["key"]) for task in tasks.data)
    assert not hasattr(model, "net_"), "Incremental trains a clone"
    assert isinstance(inc.estimator_, DeepInfoMaxTransformer)
    assert Z.shape == (len(X), SMALL["embedding_dim"])
    np.testing.assert_allclose(Z, local.transform(X), rtol=1e-5, atol=1e-6)
