"""sk_dim.evaluation.finetune: semi-supervised fine-tuning."""

import pytest
import torch
from sklearn.base import clone

from sk_dim.evaluation import (
    FineTunedClassifier,
    MLPProbe,
    semi_supervised_finetune,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# A weight of the encoder's first local convolution, in the feature extractor's state.
CONV_WEIGHT = "module.encoder.1.local.0.weight"


def encoder_state(transformer):
    """The weights the transformer computes its features with (a copy)."""
    return transformer.feature_extractor().state_dict()


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_finetune_trains_a_copy_of_the_encoder(digits, fitted):
    X, y = digits
    before = encoder_state(fitted)
    clf = semi_supervised_finetune(fitted, X[:100], y[:100], max_epochs=10, random_state=0)
    assert_same_state(before, encoder_state(fitted))  # the transformer is untouched
    tuned = clf.module_.backbone.state_dict()
    assert tuned.keys() == before.keys()
    assert not torch.equal(tuned[CONV_WEIGHT], before[CONV_WEIGHT])
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X[:100], y[:100]) > 0.9  # fits the labelled set
    assert clf.score(X[200:], y[200:]) > 0.5
    assert clf.predict_proba(X[:3]).shape == (3, 10) and clf.transformer_ is fitted


@pytest.mark.parametrize(("layer", "head"), [("y", "linear"), ("fc", "mlp")])
def test_finetune_layers_and_heads(digits, fitted, layer, head):
    X, y = digits
    clf = FineTunedClassifier(fitted, layer=layer, head=head, max_epochs=2, random_state=0)
    clf.fit(X[:64], y[:64])
    first = clf.module_.head if head == "linear" else clf.module_.head[0]
    assert first.in_features == {"y": 8, "fc": 1024}[layer]
    assert fitted.layer == "local"


def test_frozen_encoder(digits, fitted):
    X, y = digits
    clf = FineTunedClassifier(fitted, encoder_lr=0, max_epochs=2, random_state=0)
    clf.fit(X[:64], y[:64])
    frozen = clf.module_.backbone.state_dict()
    # Only batch-norm running statistics may move; no weight does.
    for name, value in encoder_state(fitted).items():
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(frozen[name], value, rtol=0, atol=0)


def test_finetune_after_clone_pretrains_first(digits, fitted):
    X, y = digits
    clf = clone(FineTunedClassifier(fitted, max_epochs=1, random_state=0))
    clf.fit(X[:64], y[:64])
    assert clf.transformer_ is not fitted and hasattr(clf.transformer_, "net_")
    assert not hasattr(clf.transformer, "net_")


def test_finetune_bad_input(digits, fitted):
    X, y = digits
    with pytest.raises(ValueError, match="same number of samples, got 10 and 9"):
        FineTunedClassifier(fitted).fit(X[:10], y[:9])
    with pytest.raises(ValueError, match="64 features"):
        FineTunedClassifier(fitted).fit(X[:10, :20], y[:10])
    with pytest.raises(TypeError, match="needs a DeepInfoMaxTransformer"):
        FineTunedClassifier(MLPProbe()).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="head"):
        FineTunedClassifier(fitted, head="deep").fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="Unknown layer 'pixels'"):
        FineTunedClassifier(fitted, layer="pixels").fit(X[:10], y[:10])
