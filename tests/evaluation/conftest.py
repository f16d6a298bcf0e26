"""A DIM transformer fitted once per test module on 400 digits, for the evaluation tests."""

import pytest
from sklearn.datasets import load_digits

from sk_dim import DeepInfoMaxTransformer

# layer="local": 2048 features (the default "blocks" has 7168), as the tests assume.
FAST = dict(embedding_dim=8, max_epochs=2, batch_size=32, layer="local", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


@pytest.fixture(scope="module")
def fitted(digits):
    return DeepInfoMaxTransformer(**FAST).fit(digits[0])
