"""warm_start, partial_fit, early stopping, callbacks, checkpoints, n_iter_ and loss_curve_."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from skorch.callbacks import Callback, Checkpoint, LoadInitState, LRScheduler

import sk_dim
from sk_dim import CMCTransformer, DeepInfoMaxTransformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(embedding_dim=8, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:160].astype(np.float32)


def dim(**params):
    return DeepInfoMaxTransformer(**{**FAST, "max_epochs": 2, **params})


def cmc(**params):
    return CMCTransformer(**{**FAST, "max_epochs": 2, "n_negatives": 32, **params})


def weights(est):
    return {k: v.clone() for k, v in est.net_.module_.state_dict().items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0, msg=key)


# -- warm_start -----------------------------------------------------------------------


@pytest.mark.parametrize("make", [dim, cmc], ids=["dim", "cmc"])
def test_warm_start_continues_and_counts_epochs(digits, make):
    est = make(warm_start=True).fit(digits)
    assert est.n_iter_ == 2
    first = weights(est)
    optimizer_steps = est.net_.optimizer_.state_dict()["state"][0]["step"].item()
    est.fit(digits)
    assert est.n_iter_ == 4 and len(est.history_) == 4 and len(est.loss_curve_) == 4
    assert list(est.history_.index) == [1, 2, 3, 4]
    # The optimizer continued: twice the steps, not a fresh Adam.
    assert est.net_.optimizer_.state_dict()["state"][0]["step"].item() == 2 * optimizer_steps
    assert any(not torch.equal(first[k], v) for k, v in weights(est).items())


def test_without_warm_start_fit_starts_anew(digits):
    est = dim().fit(digits)
    again = clone(est).fit(digits)
    est.fit(digits)
    assert est.n_iter_ == 2
    assert_same_weights(est, again)


def test_warm_start_matches_one_longer_fit_in_epoch_count_and_order(digits):
    # Two warm-started fits of 2 epochs see the data in the order one 4-epoch fit does.
    split = dim(warm_start=True).fit(digits).fit(digits)
    whole = dim(max_epochs=4).fit(digits)
    assert_same_weights(split, whole)


def test_warm_start_refuses_data_of_another_width(digits):
    est = dim(warm_start=True).fit(digits)
    with pytest.raises(ValueError, match="features"):
        est.fit(np.zeros((50, 16), dtype=np.float32))
    assert est.n_iter_ == 2


# -- partial_fit ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [dim, cmc], ids=["dim", "cmc"])
def test_partial_fit_is_one_epoch_per_call(digits, make):
    est = make()
    for chunk in np.array_split(digits, 4):
        est.partial_fit(chunk)
    assert est.n_iter_ == 4
    assert est.transform(digits).shape[0] == len(digits)
    assert np.isfinite(est.loss_curve_).all()


def test_cmc_partial_fit_uses_a_queue_of_recent_keys(digits):
    est = cmc(n_negatives=24).partial_fit(digits[:40])
    contrast = est.net_.module_.contrast
    assert contrast.queue and contrast.bank.n_samples == 24  # every entry is a negative
    assert est.net_.module_.key_encoders is not None
    head = contrast.queue_head.item()
    est.partial_fit(digits[40:104])
    contrast = est.net_.module_.contrast
    # Two full batches of 32 keys, first in first out: the head moves by 64.
    assert contrast.queue_head.item() == (head + 64) % 24
    # A later warm-started fit goes back to a bank over its own data, dropped after fit.
    est.set_params(warm_start=True).fit(digits)
    assert est.net_.module_.contrast is None and est.n_negatives_ == 24
    assert est.net_.module_.key_encoders is None


def test_partial_fit_learns(digits):
    """Repeated passes lower the objective, as epochs of fit do."""
    est = dim(embedding_dim=16)
    for _ in range(4):
        est.partial_fit(digits)
    curve = est.loss_curve_
    assert curve[-1] < curve[0]


# -- early stopping ---------------------------------------------------------------------


def test_early_stopping_records_validation_loss_and_keeps_the_best(digits):
    params = dict(early_stopping=True, validation_fraction=0.25, n_iter_no_change=2, tol=10.0)
    est = dim(max_epochs=8, **params).fit(digits)
    assert {"valid_loss", "valid_local_mi"} <= set(est.history_.columns)
    # tol=10 makes no epoch an improvement after the first: stop after 1 + 2 epochs ...
    assert est.n_iter_ == 3
    # ... and keep the weights of the epoch with the lowest valid_loss.
    best = int(np.argmin(est.validation_scores_)) + 1
    assert_same_weights(est, dim(max_epochs=best, **params).fit(digits))
    assert est.net_.train_split is None  # the held-out rows are not kept


def test_early_stopping_is_not_an_interruption(digits):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = dim(max_epochs=6, early_stopping=True, n_iter_no_change=1, tol=10.0).fit(digits)
    assert est.n_iter_ == 2 and est.net_.interrupted_ is None


def test_cmc_early_stopping_scores_held_out_rows_without_the_bank(digits):
    est = cmc(early_stopping=True, validation_fraction=0.2, max_epochs=2).fit(digits)
    assert np.isfinite(est.history_["valid_loss"]).all()
    assert "valid_contrast_0_1" in est.history_


def test_early_stopping_needs_enough_samples():
    X = np.random.default_rng(0).random((6, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="validation_fraction"):
        dim(early_stopping=True, validation_fraction=0.1).fit(X)


# -- callbacks --------------------------------------------------------------------------


class CountEpochs(Callback):
    def __init__(self, counts=None):
        self.counts = counts

    def initialize(self):
        self.seen_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.seen_ += 1


def test_callbacks_run_on_a_copy_and_clone(digits):
    counter = CountEpochs()
    est = dim(callbacks=[counter]).fit(digits)
    assert not hasattr(counter, "seen_")  # the parameter is not modified
    assert dict(est.net_.callbacks_)["CountEpochs"].seen_ == 2
    assert isinstance(clone(est).callbacks[0], CountEpochs)


def test_lr_scheduler_callback_changes_the_learning_rate(digits):
    sched = LRScheduler(policy="StepLR", step_size=1, gamma=0.1)
    est = dim(callbacks=[("lr", sched)]).fit(digits)
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.01)


class StopAtBatch(Callback):
    """Raises KeyboardInterrupt (a Ctrl-C) in the middle of epoch ``epoch``."""

    def __init__(self, epoch=3):
        self.epoch = epoch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch and len(net.history[-1]["batches"]) == 2:
            raise KeyboardInterrupt


def test_checkpoint_resume_ends_with_the_uninterrupted_weights(digits, tmp_path):
    params = dict(max_epochs=4)
    whole = dim(**params).fit(digits)

    # The prior discriminator's optimizer needs a file of its own.
    extra = {"f_optimizer_discriminator": "optimizer_discriminator.pt"}
    checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path), **extra)
    with pytest.warns(UserWarning, match="interrupted"):
        broken = dim(**params, callbacks=[checkpoint, StopAtBatch(epoch=3)]).fit(digits)
    assert broken.n_iter_ == 2  # the interrupted epoch is not in the history

    resumed = dim(**params, callbacks=[checkpoint, LoadInitState(checkpoint)]).fit(digits)
    assert resumed.n_iter_ == 4
    assert_same_weights(resumed, whole)


# -- pickles ----------------------------------------------------------------------------


def test_pickles_keep_optimizer_state_only_for_warm_start(digits):
    est = dim().fit(digits)
    lean = pickle.loads(pickle.dumps(est))
    assert not hasattr(lean.net_, "optimizer_")
    np.testing.assert_array_equal(lean.transform(digits), est.transform(digits))
    assert "optimizer_" in est.net_.__dict__  # pickling did not strip the live estimator

    warm = dim(warm_start=True).fit(digits)
    kept = pickle.loads(pickle.dumps(warm))
    kept.fit(digits)
    warm.fit(digits)
    assert_same_weights(kept, warm)


def test_a_lean_pickle_can_still_warm_start(digits):
    est = pickle.loads(pickle.dumps(dim().fit(digits)))
    with pytest.warns(UserWarning, match="new optimizer state"):
        est.set_params(warm_start=True).fit(digits)
    assert est.n_iter_ == 4


def test_pickle_stores_the_weights_once(digits):
    est = dim().fit(digits)
    n_bytes = sum(v.numel() * v.element_size() for v in est.net_.module_.state_dict().values())
    assert len(pickle.dumps(est)) < 1.3 * n_bytes


def test_history_is_read_from_the_net(digits, tmp_path):
    """Training through the net directly shows in history_, n_iter_ and loss_curve_."""
    est = dim().fit(digits)
    est.net_.partial_fit(torch.as_tensor(digits).view(-1, 1, 8, 8), epochs=1)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3
    sk_dim.save(est, tmp_path / "dim.skdim")
    from sk_dim import load

    loaded = load(tmp_path / "dim.skdim")
    assert loaded.n_iter_ == 3
    np.testing.assert_allclose(loaded.loss_curve_, est.loss_curve_)
