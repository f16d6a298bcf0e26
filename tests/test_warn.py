"""sk_dim._warn: warnings point at the user's line."""

import warnings

import pytest
from sklearn.datasets import load_digits
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sk_dim import DeepInfoMaxTransformer

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
