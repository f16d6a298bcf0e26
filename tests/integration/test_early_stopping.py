"""Early stopping through the estimators: the held-out objective and the attributes it sets.

The rule is scikit-learn's MLPs': an improvement beats the lowest held-out loss so far
by more than ``tol``; training stops after ``n_iter_no_change`` epochs without one and
ends with the weights of the epoch with the lowest held-out loss
(``tests/training/test_callbacks.py`` tests the callback itself).
"""

import math
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits

import sk_dim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(embedding_dim=8, batch_size=32, device="cpu", precision="float32", random_state=0)


STOPPING = dict(early_stopping=True, validation_fraction=0.25)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:160].astype(np.float32)


def test_dim_valid_loss_is_the_mi_objective_without_the_prior(digits):
    est = sk_dim.DeepInfoMaxTransformer(
        **FAST, alpha=0.5, beta=1.0, gamma=0.5, max_epochs=2, **STOPPING
    ).fit(digits)
    history = est.history_
    assert "valid_prior" not in history and "prior" in history
    expected = -(0.5 * history["valid_global_mi"] + 1.0 * history["valid_local_mi"])
    np.testing.assert_allclose(history["valid_loss"], expected, rtol=1e-5)


def test_dim_keeps_the_argmin_of_validation_scores(digits):
    params = dict(**FAST, n_iter_no_change=2, tol=10.0, **STOPPING)
    est = sk_dim.DeepInfoMaxTransformer(max_epochs=6, **params).fit(digits)
    scores = est.validation_scores_
    # tol=10: no improvement after the first epoch, so 1 + 2 epochs.
    assert est.n_iter_ == 3 and len(scores) == 3
    best = int(np.argmin(scores)) + 1
    assert best > 1  # the held-out loss went down: the thresholded "best" was epoch 1
    assert est.best_loss_ == min(scores)
    assert est.net_.restored_epoch() == best
    # The weights of epoch `best`: a fit of exactly that many epochs.
    shorter = sk_dim.DeepInfoMaxTransformer(max_epochs=best, **params).fit(digits)
    np.testing.assert_array_equal(est.transform(digits), shorter.transform(digits))


def test_without_early_stopping_there_is_no_held_out_loss(digits):
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=1).fit(digits)
    assert est.best_loss_ is None and est.validation_scores_ is None
    # A warm fit without early stopping after one with it: the weights are no
    # longer an early-stopped epoch's.
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=1, warm_start=True, **STOPPING)
    est.fit(digits)
    assert est.best_loss_ == est.validation_scores_[0]
    est.set_params(early_stopping=False).fit(digits)
    assert est.best_loss_ is None
    assert len(est.validation_scores_) == 2 and math.isnan(est.validation_scores_[1])


def test_best_loss_and_validation_scores_survive_save_and_pickle(digits, tmp_path):
    est = sk_dim.DeepInfoMaxTransformer(**FAST, max_epochs=2, gamma=0.0, **STOPPING).fit(digits)
    sk_dim.save(est, tmp_path / "dim.skdim")
    for copy in (sk_dim.load(tmp_path / "dim.skdim"), pickle.loads(pickle.dumps(est))):
        assert copy.best_loss_ == est.best_loss_
        assert copy.validation_scores_ == est.validation_scores_
        assert copy.history_["valid_loss_best"].tolist() == est.history_["valid_loss_best"].tolist()


def test_early_stopping_under_accelerate_matches_plain_and_pickles(digits, capsys):
    pytest.importorskip("accelerate")
    params = dict(FAST, max_epochs=4, n_iter_no_change=1, tol=10.0, verbose=1, **STOPPING)
    plain = sk_dim.DeepInfoMaxTransformer(**params).fit(digits)
    params.pop("device")
    accelerated = sk_dim.DeepInfoMaxTransformer(accelerate={"cpu": True}, **params).fit(digits)
    assert accelerated.validation_scores_ == plain.validation_scores_
    np.testing.assert_allclose(accelerated.transform(digits), plain.transform(digits), atol=1e-6)
    assert capsys.readouterr().out.count("Restoring the weights of epoch") == 2
    # The callback the fitted net keeps holds no accelerator and no weights.
    restored = pickle.loads(pickle.dumps(accelerated))
    assert restored.best_loss_ == plain.best_loss_
