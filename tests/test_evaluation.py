import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_dim import DeepInfoMaxTransformer, evaluation, mi_estimation
from sk_dim.evaluation import (
    FineTunedClassifier,
    MLPProbe,
    linear_probe,
    mine,
    neural_dependency_measure,
    nonlinear_probe,
    probe_features,
    semi_supervised_finetune,
    shuffle_factors,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(embedding_dim=8, max_epochs=2, batch_size=32, random_state=0)
# A weight of the encoder's first local convolution, in the feature extractor's state.
CONV_WEIGHT = "module.encoder.1.local.0.weight"


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


@pytest.fixture(scope="module")
def fitted(digits):
    return DeepInfoMaxTransformer(**FAST).fit(digits[0])


def encoder_state(transformer):
    """The weights the transformer computes its features with (a copy)."""
    return transformer.feature_extractor().state_dict()


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


# -- probes -------------------------------------------------------------------


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
    assert dim.transform(digits[0][:5]).shape == (5, 2048)  # its feature names are intact


def test_linear_probe_on_a_transformer_equals_the_probe_on_its_features(digits, fitted):
    X, y = digits
    acc = linear_probe(fitted, X[:300], y[:300], X[300:], y[300:], layer="y", random_state=0)
    Z_train, Z_test = (probe_features(fitted, part, layer="y") for part in (X[:300], X[300:]))
    same = linear_probe(None, Z_train, y[:300], Z_test, y[300:], random_state=0)
    assert acc == same and 0.2 < acc <= 1.0  # 8 features after 2 epochs: above chance


def test_linear_probe_on_raw_pixels():
    X, y = load_digits(return_X_y=True)
    assert linear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:], random_state=0) > 0.85
    unscaled = linear_probe(None, X[:1000], y[:1000], X[1000:], y[1000:], scale=False, C=0.01)
    assert unscaled > 0.8


def test_mlp_probe_learns_and_is_reproducible():
    X, y = load_digits(return_X_y=True)
    probe = MLPProbe(max_epochs=15, random_state=0).fit(X[:1000], y[:1000])
    assert probe.score(X[1000:], y[1000:]) > 0.9
    assert probe.module_[0].out_features == 200 and probe.module_[3].p == 0.1
    assert probe.loss_curve_[-1] < probe.loss_curve_[0]
    proba = probe.predict_proba(X[1000:1010])
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    again = MLPProbe(max_epochs=15, random_state=0).fit(X[:1000], y[:1000])
    np.testing.assert_array_equal(again.predict_proba(X[1000:1010]), proba)


def test_mlp_probe_string_labels():
    X, y = load_digits(return_X_y=True)
    labels = np.array(["even", "odd"])[y[:200] % 2]
    probe = MLPProbe(max_epochs=3, random_state=0).fit(X[:200], labels)
    assert set(probe.predict(X[:20])) <= {"even", "odd"}


def test_nonlinear_probe_on_a_transformer(digits, fitted):
    X, y = digits
    acc = nonlinear_probe(
        fitted, X[:300], y[:300], X[300:], y[300:], layer="fc", max_epochs=5, random_state=0
    )
    assert 0.3 < acc <= 1.0


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


@parametrize_with_checks([MLPProbe(max_epochs=3, batch_size=16, random_state=0)])
def test_mlp_probe_is_a_scikit_learn_classifier(estimator, check):
    check(estimator)


# -- semi-supervised fine-tuning ------------------------------------------------


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


# -- information measures -------------------------------------------------------


def test_shuffle_factors_keeps_marginals_and_breaks_dependence():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 1, generator=g)
    Z = torch.cat([a, a], 1)
    shuffled = shuffle_factors(Z, g)
    torch.testing.assert_close(shuffled.sort(0).values, Z.sort(0).values)
    assert abs(torch.corrcoef(shuffled.T)[0, 1]) < 0.1


def ndm_data(rho: float, n: int = 1500, seed: int = 0):
    """Four factors; the first two correlated by rho (total correlation -log(1 - rho^2)/2)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, 1))
    b = rho * a + math.sqrt(1 - rho**2) * rng.standard_normal((n, 1))
    return np.hstack([a, b, rng.standard_normal((n, 2))])


def test_ndm_grows_with_dependence():
    ndm = [
        neural_dependency_measure(ndm_data(rho), lr=1e-3, max_epochs=20, random_state=0)
        for rho in (0.0, 0.5, 0.8)
    ]
    assert abs(ndm[0]) < 0.05
    assert ndm[0] < ndm[1] < ndm[2]
    assert ndm[2] == pytest.approx(-0.5 * math.log(1 - 0.8**2), rel=0.15)


def test_ndm_of_learned_representations(fitted, digits):
    Z = fitted.transform(digits[0])
    rng = np.random.default_rng(0)
    independent = np.column_stack([rng.permutation(column) for column in Z.T])
    # The local features of neighbouring locations share pixels: far from independent.
    assert neural_dependency_measure(Z, max_epochs=5, random_state=0) > 0.3
    # The same marginals, each column shuffled on its own: no dependence left.
    assert abs(neural_dependency_measure(independent, max_epochs=5, random_state=0)) < 0.05


def test_ndm_bad_input():
    with pytest.raises(ValueError, match="at least 2 columns"):
        neural_dependency_measure(np.zeros((50, 1)))
    with pytest.raises(ValueError, match="at least 4 samples"):
        neural_dependency_measure(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="Input Z contains NaN"):
        neural_dependency_measure(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="n_shuffles"):
        neural_dependency_measure(np.zeros((10, 2)), n_shuffles=0)


def test_mine_between_inputs_and_a_noisy_code():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 6))
    noise = rng.standard_normal((2000, 2))
    Z = X[:, :2] + noise  # two channels with SNR 1: MI = log 2
    assert mine(X, Z, max_epochs=30, random_state=0) == pytest.approx(math.log(2), rel=0.15)
    independent = mine(X, noise, max_epochs=10, random_state=0)
    assert -0.1 < independent < 0.03


def test_mine_bad_input():
    with pytest.raises(ValueError, match="X and Z must have the same number of samples"):
        mine(np.zeros((10, 2)), np.zeros((9, 2)))
    with pytest.raises(TypeError, match="estimator='mine'"):
        mine(np.zeros((10, 2)), np.zeros((10, 2)), estimator="dv")


# -- the shared training loop -----------------------------------------------------


def test_every_trained_measure_uses_the_shared_loop(monkeypatch, digits, fitted):
    """Probes, fine-tuning, NDM and MINE all train through ``train_minibatches``."""
    calls = []
    shared = mi_estimation.train_minibatches

    def spy(module, batch_loss, n_samples, **kwargs):
        calls.append(type(module).__name__)
        return shared(module, batch_loss, n_samples, **kwargs)

    for module in (evaluation.torch_classifier, evaluation.dependency, mi_estimation):
        assert module.train_minibatches is shared
        monkeypatch.setattr(module, "train_minibatches", spy)
    X, y = digits
    Z = fitted.transform(X[:60])
    MLPProbe(max_epochs=1, random_state=0).fit(Z, y[:60])
    FineTunedClassifier(fitted, max_epochs=1, random_state=0).fit(X[:60], y[:60])
    neural_dependency_measure(Z, max_epochs=1, random_state=0)
    mine(X[:60], Z[:, :4], max_epochs=1, random_state=0)
    assert calls == ["Sequential", "Sequential", "Sequential", "ConcatCritic"]
