"""sk_dim.persistence.codec: parameters and attributes as JSON, and what cannot be saved safely."""

import json
import os

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

import sk_dim
from sk_dim import DeepInfoMaxTransformer
from sk_dim.persistence import save

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")


FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)


def test_non_finite_values_round_trip_through_json():
    from sk_dim.persistence.codec import decode, encode

    for value in ([2.5, float("nan")], float("inf"), np.array([1.0, -np.inf])):
        decoded = decode(json.loads(json.dumps(encode(value, "x"), allow_nan=False)), "x")
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(value))


class TinyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 64, 3)

    def forward(self, x):
        local = torch.relu(self.conv(x))
        return local, self.head(local.flatten(1))


def test_what_cannot_be_saved_safely(digits, tmp_path):
    with pytest.raises(NotFittedError):
        save(DeepInfoMaxTransformer(), tmp_path / "x")
    user = DeepInfoMaxTransformer(encoder=TinyEncoder(), **FAST).fit(digits)
    with pytest.raises(TypeError, match="encoder holds a TinyEncoder.*joblib"):
        sk_dim.save(user, tmp_path / "x")
    seeded = DeepInfoMaxTransformer(**{**FAST, "random_state": np.random.RandomState(0)})
    with pytest.raises(TypeError, match="random_state.*joblib"):
        sk_dim.save(seeded.fit(digits), tmp_path / "x")
    with pytest.raises(TypeError, match="joblib"):
        save(object(), tmp_path / "x")
    assert os.listdir(tmp_path) == []
