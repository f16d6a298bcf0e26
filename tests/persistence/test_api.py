"""sk_dim.persistence.api: save and load round trips."""

import numpy as np
import pandas as pd
import pytest

from sk_dim.cmc import CMCTransformer
from sk_dim.persistence import load, save

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")


FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)


def _assert_same(loaded, original, X):
    assert type(loaded) is type(original)
    assert loaded.get_params() == original.get_params()
    np.testing.assert_array_equal(loaded.transform(X), original.transform(X))
    pd.testing.assert_frame_equal(loaded.history_, original.history_, check_dtype=False)
    for key in ("n_features_in_", "input_shape_", "image_shape_", "versions_"):
        assert getattr(loaded, key) == getattr(original, key)
    assert loaded.get_feature_names_out().tolist() == original.get_feature_names_out().tolist()


def test_round_trip_dim(fitted, saved, digits):
    loaded = load(saved)
    _assert_same(loaded, fitted, digits)
    assert list(loaded.feature_names_in_) == list(digits.columns)
    assert isinstance(loaded.image_shape, tuple)


def test_round_trip_cmc(digits, tmp_path):
    cols = list(digits.columns)
    cmc = CMCTransformer(views=[cols[:32], cols[32:]], **FAST).fit(digits)
    save(cmc, tmp_path / "cmc.skdim")
    loaded = load(tmp_path / "cmc.skdim")
    _assert_same(loaded, cmc, digits)
    assert loaded.views_ == cmc.views_ and loaded.n_negatives_ == cmc.n_negatives_
