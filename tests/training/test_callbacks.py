"""sk_dim.training.callbacks: early stopping on the held-out objective, divergence, Ctrl-C.

The rule of early stopping is scikit-learn's MLPs': an improvement beats the lowest
held-out loss so far by more than ``tol``; training stops after ``n_iter_no_change``
epochs without one and ends with the weights of the epoch with the lowest held-out loss.
"""

import math
import signal
import threading

import pytest
import torch
from torch import nn

from sk_dim.training.callbacks import (
    WEIGHT_LIMIT,
    TrainingDiverged,
    check_finite_terms,
    check_finite_weights,
    first_weight_beyond_limit,
    stop_after_batch_on_sigint,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the callback, on a module whose held-out losses are scripted ------------------------


def test_the_epoch_restored_is_the_lowest_even_below_tol(scripted_fit):
    # Epoch 4 beats epoch 2 by less than tol: no improvement for the stopping
    # rule (3 epochs without one stop training after epoch 5), but the lowest.
    net, weights = scripted_fit([3.0, 1.0, 2.0, 0.95, 5.0, 6.0, 7.0], n_iter_no_change=3, tol=0.1)
    assert len(net.history) == 5
    assert net.history[:, "valid_loss_best"] == [True, True, False, True, False]
    assert net.restored_epoch() == 4
    assert torch.equal(net.module_.w.detach(), weights[3])
    assert not torch.equal(weights[3], weights[4])  # the last epoch's weights were replaced


def test_an_improvement_resets_the_count(scripted_fit):
    net, _ = scripted_fit([3.0, 2.5, 2.45, 1.0, 0.99, 0.98, 0.97], n_iter_no_change=2, tol=0.1)
    # 2: improvement; 3: none; 4: improvement; 5, 6: none -> stop after 6.
    assert len(net.history) == 6 and net.restored_epoch() == 6


def test_the_verbose_table_shows_every_epoch(capsys, scripted_fit):
    net, _ = scripted_fit(
        [3.0, 1.0, 2.0, 0.95, 5.0, 6.0, 7.0], n_iter_no_change=3, tol=0.1, verbose=1
    )
    lines = capsys.readouterr().out.splitlines()
    rows = [i for i, line in enumerate(lines) if line.strip()[:1].isdigit()]
    assert [lines[i].split()[0] for i in rows] == ["1", "2", "3", "4", "5"]
    # The messages follow the table.
    restoring = [i for i, line in enumerate(lines) if "Restoring the weights of epoch 4" in line]
    assert len(restoring) == 1 and restoring[0] > rows[-1]


# -- divergence ----------------------------------------------------------------------------


def test_a_term_that_is_not_finite_ends_training_naming_it():
    check_finite_terms({"loss": 1.5, "local_mi": -0.2}, epoch=4)
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(TrainingDiverged, match=f"epoch 4: the 'prior' term became {value}"):
            check_finite_terms({"loss": 1.0, "prior": value}, epoch=4)
    try:
        check_finite_terms({"loss": math.nan}, epoch=2)
    except TrainingDiverged as exc:
        assert (exc.epoch, exc.term) == (2, "loss") and isinstance(exc, FloatingPointError)


def test_weights_beyond_the_limit_or_not_finite_are_divergence():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    assert first_weight_beyond_limit(net) is None
    assert first_weight_beyond_limit(nn.ReLU()) is None  # no parameters at all
    check_finite_weights(net, epoch=1)
    with torch.no_grad():
        net[1].weight[0, 0] = WEIGHT_LIMIT  # at the limit: still sane
    assert first_weight_beyond_limit(net) is None
    for bad in (-WEIGHT_LIMIT * 1.01, math.nan, math.inf):
        with torch.no_grad():
            net[1].weight[0, 0] = bad
            net[0].bias[1] = bad
        assert first_weight_beyond_limit(net) == "0.bias"  # the first, in order
        with pytest.raises(TrainingDiverged, match=r"epoch 3: the weights \(0.bias\)") as info:
            check_finite_weights(net, epoch=3)
        assert info.value.term == "weights"
        with torch.no_grad():
            net[0].bias[1] = 0.0
        assert first_weight_beyond_limit(net) == "1.weight"


# -- Ctrl-C --------------------------------------------------------------------------------


def test_a_first_ctrl_c_requests_a_stop_and_a_second_interrupts():
    with stop_after_batch_on_sigint() as state:
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        assert state == {"requested": False}
        signal.raise_signal(signal.SIGINT)
        assert state["requested"]  # no KeyboardInterrupt: training ends its batch
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_handler_the_user_installed_is_left_alone():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with stop_after_batch_on_sigint() as state:
            signal.raise_signal(signal.SIGINT)
        assert seen == [signal.SIGINT] and not state["requested"]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_ctrl_c_is_not_handled():
    states = []

    def run():
        with stop_after_batch_on_sigint() as state:
            states.append((state, signal.getsignal(signal.SIGINT)))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert states == [({"requested": False}, signal.default_int_handler)]
