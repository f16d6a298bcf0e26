"""Transformers fitted once for the persistence tests, and their saved files."""

import pandas as pd
import pytest
from sklearn.datasets import load_digits

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.persistence import save

FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)
TINY = dict(max_epochs=1, batch_size=32, device="cpu", precision="float32", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return pd.DataFrame(X[:64], columns=[f"px{i}" for i in range(64)])


@pytest.fixture(scope="module")
def fitted(digits):
    return DeepInfoMaxTransformer(image_shape=(1, 8, 8), **FAST).fit(digits)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "dim.skdim"
    save(fitted, path)
    return path


@pytest.fixture(scope="module")
def dim(digits):
    return DeepInfoMaxTransformer(**TINY).fit(digits)


@pytest.fixture(scope="module")
def cmc(digits):
    return CMCTransformer(**TINY).fit(digits)
