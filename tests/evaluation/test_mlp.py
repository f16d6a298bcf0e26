"""sk_dim.evaluation.mlp: the non-linear probe."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_dim.evaluation import (
    MLPProbe,
    nonlinear_probe,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


@parametrize_with_checks([MLPProbe(max_epochs=3, batch_size=16, random_state=0)])
def test_mlp_probe_is_a_scikit_learn_classifier(estimator, check):
    check(estimator)
