"""scikit-learn's estimator checks, at default and at small fast settings."""

import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_dim import CMCTransformer, DeepInfoMaxTransformer

# Every check sk_dim is expected to fail, with the reason. Keep this short.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}


def expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [
        # The defaults but the training length, as scikit-learn's own checks shorten
        # max_iter: they fit ~50 times, and "auto" trains 35 (DIM) or 150 (CMC)
        # epochs on so few rows.
        DeepInfoMaxTransformer(max_epochs=12),
        DeepInfoMaxTransformer(embedding_dim=4, max_epochs=2, batch_size=16, layer="y"),
        CMCTransformer(max_epochs=30),
        CMCTransformer(
            embedding_dim=4, n_negatives=8, max_epochs=2, batch_size=16, layer="embedding"
        ),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", [DeepInfoMaxTransformer, CMCTransformer])
def test_weight_decay_shrinks_the_weights_of_every_optimizer(cls):
    X = load_digits().data[:256]
    params = {"max_epochs": 3, "batch_size": 64, "random_state": 0}
    plain = cls(**params).fit(X)
    decayed = cls(**params, weight_decay=0.5).fit(X)
    optimizers = [decayed.net_.optimizer_]
    if cls is DeepInfoMaxTransformer:
        optimizers.append(decayed.net_.optimizer_discriminator_)
    assert all(g["weight_decay"] == 0.5 for o in optimizers for g in o.param_groups)

    def weight_norm(transformer):
        weights = [p for n, p in transformer.net_.module_.named_parameters() if "weight" in n]
        return torch.sqrt(sum((w.detach() ** 2).sum() for w in weights)).item()

    assert weight_norm(decayed) < 0.95 * weight_norm(plain)  # equal norms without decay


@pytest.mark.parametrize("cls", [DeepInfoMaxTransformer, CMCTransformer])
def test_few_images_preset_is_a_set_of_plain_parameters(cls):
    preset = cls.from_preset("few-images")
    assert preset.layer == "blocks"
    # Small sets need more passes than the defaults give tens of thousands of images.
    default = cls()
    assert preset.max_epochs > default._epochs_for(25000, default.batch_size)
    # Keywords override the preset, and the result clones like any estimator.
    tuned = cls.from_preset("few-images", max_epochs=2, random_state=0)
    assert (tuned.max_epochs, tuned.random_state, tuned.layer) == (2, 0, "blocks")
    assert clone(tuned).get_params() == tuned.get_params()
    assert cls.from_preset("few-images").max_epochs == preset.max_epochs  # nothing mutated
    with pytest.raises(ValueError, match="no preset 'huge'.*few-images"):
        cls.from_preset("huge")
