"""The image benchmarks' seeded rows and margins (benchmarks/_protocol.py)."""

import importlib.util
import re
from pathlib import Path

import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits

PATH = Path(__file__).parents[2] / "benchmarks" / "_protocol.py"
spec = importlib.util.spec_from_file_location("benchmark_protocol", PATH)
protocol = importlib.util.module_from_spec(spec)
spec.loader.exec_module(protocol)


def rows(*pairs):
    return pd.DataFrame([{"method": m, "accuracy": a} for m, a in pairs])


def margins(note):
    """``"- M: best layer 0.66; +16.0 points over A, +5.0 points over B, C"`` -> margins by name."""
    pairs = re.findall(r"([+-]\d+\.\d) points over (.+?)(?=, [+-]\d|$)", note.split("; ", 1)[1])
    return {name: float(value) for value, name in pairs}


def test_seeded_reference_counts_as_the_mean_of_its_seeds():
    table = rows(
        ("raw pixels", 0.40),
        ("k-means (K=1600), seed 0", 0.60),
        ("k-means (K=1600), seed 1", 0.63),
        ("k-means (K=1600), seed 2", 0.66),
        ("CMC (L/ab), 30 epochs", 0.68),
    )
    references = ["raw pixels", *(f"k-means (K=1600), seed {s}" for s in range(3))]
    (note,) = protocol.summary(table, references)
    found = margins(note)
    assert found["k-means (K=1600) (mean of 3 seeds)"] == pytest.approx(5.0)
    assert found["raw pixels"] == pytest.approx(28.0)
    assert not any("seed 0" in name for name in found)


def test_seeded_network_is_compared_with_its_random_weights():
    table = rows(
        ("k-means (K=1600)", 0.61),
        ("CMC (L/ab), random weights", 0.50),
        ("CMC (L/ab), 30 epochs, seed 0", 0.64),
        ("CMC (L/ab), 30 epochs, seed 0", 0.66),  # a second layer: the best one counts
        ("CMC (L/ab), 30 epochs, seed 1", 0.63),
    )
    notes = protocol.summary(table, ["k-means (K=1600)"])
    assert [n.split(":")[0] for n in notes] == [
        "- CMC (L/ab), 30 epochs, seed 0",
        "- CMC (L/ab), 30 epochs, seed 1",
    ]
    first, second = (margins(n) for n in notes)
    assert first == pytest.approx({"CMC (L/ab), random weights": 16.0, "k-means (K=1600)": 5.0})
    assert second == pytest.approx({"CMC (L/ab), random weights": 13.0, "k-means (K=1600)": 2.0})


class FirstColumns(TransformerMixin, BaseEstimator):
    """Keeps ``random_state + 1`` columns: the features tell which seed a copy was fitted with."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y=None):
        self.n_kept_ = self.random_state + 1
        return self

    def transform(self, X):
        return X[:, : self.n_kept_]


def test_evaluate_seeds_fits_one_copy_per_seed():
    X, y = load_digits(return_X_y=True)
    data = (X[:300], y[:300], X[300:400], y[300:400])
    estimator = FirstColumns(random_state=99)
    rows, notes = protocol.evaluate_seeds("first", estimator, X[:300], data, (None,), [3, 9])
    assert [r["method"] for r in rows] == ["first, seed 3", "first, seed 9"]
    assert [r["features"] for r in rows] == [4, 10]
    assert estimator.random_state == 99 and not hasattr(estimator, "n_kept_")
    (note,) = notes
    mean = (rows[0]["accuracy"] + rows[1]["accuracy"]) / 2
    assert note.startswith(f"- first, layer -: {mean:.4f} +- ")

    rows, notes = protocol.evaluate_seeds("first", estimator, X[:300], data, (None,), [3])
    assert [r["method"] for r in rows] == ["first"] and notes == []
