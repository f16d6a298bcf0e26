"""sk_dim._params: the shared constraints, and the parameters the fitted network holds."""

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim._params import MAX_THREADS, _holds_module, _same


@pytest.mark.parametrize("cls", [DeepInfoMaxTransformer, CMCTransformer])
@pytest.mark.parametrize("name", ["embedding_dim", "max_epochs", "n_iter_no_change", "n_threads"])
def test_bools_are_refused_where_an_int_is_expected(cls, name):
    # scikit-learn's Interval takes True for 1: the mixin refuses it by name.
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter .* got the bool True"):
        cls(**{name: True})._validate_params()
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        cls(**{name: np.bool_(True)})._validate_params()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"batch_size": 1}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"n_threads": MAX_THREADS + 1}, "n_threads"),
        ({"precision": "float8"}, "precision"),
        ({"on_divergence": "ignore"}, "on_divergence"),
    ],
)
def test_shared_constraints(params, name):
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        DeepInfoMaxTransformer(**params)._validate_params()
    # Booleans stay booleans where a boolean is expected.
    DeepInfoMaxTransformer(warm_start=True, channels_last=False)._validate_params()


def test_a_changed_module_parameter_is_named_with_both_values():
    est = DeepInfoMaxTransformer(embedding_dim=8)
    est._check_module_params("transform")  # unfitted: nothing recorded, nothing refused
    est._module_params = est._current_module_params()
    est._check_module_params("transform")
    est.set_params(embedding_dim=16)
    with pytest.raises(ValueError, match="Cannot transform: embedding_dim=8 at fit, 16 now"):
        est._check_module_params("transform")
    est.set_params(embedding_dim=8)
    est._check_module_params("transform")


def test_recorded_values_are_copies_but_modules_are_compared_by_identity():
    encoder = nn.Linear(64, 8)
    est = DeepInfoMaxTransformer(image_shape=None, encoder=encoder)
    recorded = est._current_module_params()
    assert recorded["encoder"] is encoder
    est.set_params(encoder=nn.Linear(64, 8))  # equal-looking, but another network
    assert not _same(est.encoder, recorded["encoder"])


def test_holds_module_and_same():
    layer = nn.ReLU()
    assert _holds_module(layer) and _holds_module([1, (2, layer)])
    assert not _holds_module([1, "a", None])
    assert _same(layer, layer) and not _same(layer, nn.ReLU())
    assert _same((1, 8, 8), (1, 8, 8)) and not _same((1, 8, 8), (8, 8, 1))
    assert not _same(np.zeros(3), np.zeros(3))  # elementwise ==: not a bool, not the same
