"""sk_dim.evaluation.features: the features probed, and the probes' input checks."""

import numpy as np
import pytest

from sk_dim import DeepInfoMaxTransformer
from sk_dim.evaluation import (
    MLPProbe,
    linear_probe,
    nonlinear_probe,
    probe_features,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(embedding_dim=8, max_epochs=2, batch_size=32, random_state=0)


@pytest.mark.parametrize(
    ("layer", "width"), [(None, 2048), ("local", 2048), ("conv", 4096), ("fc", 1024), ("y", 8)]
)
def test_probe_features_reads_a_layer_without_changing_the_transformer(
    digits, fitted, layer, width
):
    Z = probe_features(fitted, digits[0][:10], layer=layer)
    assert Z.shape == (10, width) and Z.dtype == np.float32
    assert fitted.layer == "local" and fitted.transform(digits[0][:10]).shape == (10, 2048)


def test_probe_features_with_pandas_output(digits):
    dim = DeepInfoMaxTransformer(**FAST).fit(digits[0][:100]).set_output(transform="pandas")
    Z = probe_features(dim, digits[0][:5], layer="y")
    assert isinstance(Z, np.ndarray) and Z.shape == (5, 8)
    assert dim.transform(digits[0][:5]).shape == (5, 7168)  # "blocks": its names are intact


def test_probe_bad_input(digits, fitted):
    X, y = digits
    with pytest.raises(ValueError, match="X_train and y_train must have the same number"):
        linear_probe(fitted, X[:100], y[:99], X[100:200], y[100:200])
    with pytest.raises(ValueError, match="X_test and y_test must have the same number"):
        nonlinear_probe(None, X[:100], y[:100], X[100:200], y[100:150])
    with pytest.raises(ValueError, match="layer needs a transformer"):
        probe_features(None, X, layer="y")
    with pytest.raises(ValueError, match="Unknown layer 'pixels'"):
        probe_features(fitted, X, layer="pixels")  # rejected by transform itself
    assert fitted.layer == "local"
    with pytest.raises(ValueError, match="Input X contains NaN"):
        probe_features(None, np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPProbe(max_epochs=1).fit(X[:10], np.zeros(10))
