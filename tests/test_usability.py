"""Edges a scikit-learn user meets first: warnings at their own line, discoverable presets."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sk_dim import CMCTransformer, DeepInfoMaxTransformer

FAST = dict(max_epochs=1, device="cpu", precision="float32", random_state=0)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:40]


@pytest.mark.parametrize("through_pipeline", [False, True])
def test_warnings_point_at_the_callers_line(digits, through_pipeline):
    est = DeepInfoMaxTransformer(batch_size=64, **FAST)  # more than the 40 rows
    if through_pipeline:
        est = Pipeline([("scale", StandardScaler()), ("dim", est)])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est.fit_transform(digits)
    batch_size = [w for w in record if "batch_size=64" in str(w.message)]
    assert batch_size and all(w.filename == __file__ for w in batch_size)


@pytest.mark.parametrize("cls", [DeepInfoMaxTransformer, CMCTransformer])
def test_presets_are_listed_with_what_they_set_and_cost(cls):
    table = cls.presets()
    assert list(table.columns) == ["params", "use", "cost"]
    assert "few-images" in table.index
    for name, row in table.iterrows():
        est = cls.from_preset(name, random_state=3)
        assert {k: est.get_params()[k] for k in row["params"]} == row["params"]
        assert est.random_state == 3
        assert "s on" in row["cost"] and row["use"]
    with pytest.raises(ValueError, match="has no preset 'nope'; the presets are"):
        cls.from_preset("nope")


def test_presets_listing_is_a_copy():
    table = DeepInfoMaxTransformer.presets()
    table.loc["few-images", "params"]["max_epochs"] = 1
    assert DeepInfoMaxTransformer.from_preset("few-images").max_epochs == 35
    assert np.all(DeepInfoMaxTransformer.presets().index == table.index)
