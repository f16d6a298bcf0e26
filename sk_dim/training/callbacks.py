"""What watches training: divergence, Ctrl-C and early stopping.

- :class:`TrainingDiverged` and its checks: a loss term or a weight that
  becomes NaN or infinite (or a weight beyond :data:`WEIGHT_LIMIT`) ends
  training with a clear error;
- :func:`stop_after_batch_on_sigint`: a first Ctrl-C stops training at the
  end of the current batch (skorch then ends the fit normally);
- :class:`LowestValidLoss`: early stopping that ends with the weights of
  the epoch with the lowest ``valid_loss``, a skorch callback modelled on
  skorch's own ``EarlyStopping`` and ``Checkpoint``.

The first two are not skorch callbacks, and :class:`SelfSupervisedNet`
(``net.py``) calls them from the methods it overrides: a callback sees an
epoch only after its held-out pass and its history row are recorded, while
divergence must be caught on the epoch means before they are; and no
callback hook runs when training raises, while the SIGINT handler must be
restored whatever ends training.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from skorch.callbacks import Callback
from skorch.utils import noop

# No weight of a network that trains sensibly comes near this: beyond it, the
# features are meaningless even where the loss is still finite.
WEIGHT_LIMIT = 1e5


class TrainingDiverged(FloatingPointError):
    """A loss term or a weight became NaN or infinite during training.

    Parameters
    ----------
    message : str
        The error message.
    epoch : int
        The 1-based epoch in which training diverged.
    term : str
        The loss term that became NaN or infinite, or ``"weights"`` when a
        weight did.

    Attributes
    ----------
    epoch : int
        The 1-based epoch in which training diverged.
    term : str
        The loss term that diverged, or ``"weights"``.

    See Also
    --------
    sk_dim.DeepInfoMaxTransformer : Raises it unless
        ``on_divergence="keep_last"``.
    sk_dim.CMCTransformer : Likewise.

    References
    ----------
    .. [1] R. D. Hjelm et al., "Learning deep representations by mutual
       information estimation and maximization", ICLR 2019.
    .. [2] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       2019.

    Examples
    --------
    >>> from sk_dim.training import TrainingDiverged
    >>> exc = TrainingDiverged("Training diverged at epoch 3", epoch=3, term="loss")
    >>> exc.epoch, exc.term
    (3, 'loss')
    >>> isinstance(exc, FloatingPointError)
    True
    """

    def __init__(self, message: str, *, epoch: int, term: str) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.term = term


def first_weight_beyond_limit(module: torch.nn.Module) -> str | None:
    """The name of the first parameter that is NaN, infinite or beyond WEIGHT_LIMIT, or None.

    One device sync for all the parameters.
    """
    named = list(module.named_parameters())
    if not named:
        return None
    sane = torch.stack(
        [(param.detach().abs() <= WEIGHT_LIMIT).all() for _, param in named]
    ).tolist()  # False for NaN too
    return next((name for (name, _), ok in zip(named, sane, strict=True) if not ok), None)


def check_finite_terms(means: dict[str, float], epoch: int) -> None:
    """Raise :class:`TrainingDiverged` if an epoch mean of a loss term is NaN or infinite."""
    for key, value in means.items():
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"Training diverged at epoch {epoch}: the {key!r} term became {value}. "
                "Lower lr or change the loss weights.",
                epoch=epoch,
                term=key,
            )


def check_finite_weights(module: torch.nn.Module, epoch: int) -> None:
    """Raise :class:`TrainingDiverged` if a weight is NaN, infinite or beyond WEIGHT_LIMIT."""
    # The last step of an epoch can overflow the weights while every loss
    # it computed was finite, and a loss of normalised embeddings (CMC's)
    # stays finite while the weights explode: both count as divergence.
    name = first_weight_beyond_limit(module)
    if name is not None:
        raise TrainingDiverged(
            f"Training diverged at epoch {epoch}: the weights ({name}) became NaN, "
            f"infinite or larger than {WEIGHT_LIMIT:g}. Lower lr or change the loss "
            "weights.",
            epoch=epoch,
            term="weights",
        )


@contextmanager
def stop_after_batch_on_sigint() -> Iterator[dict[str, bool]]:
    """Turn a first Ctrl-C into a request to stop after the current batch.

    Yields a dict whose ``"requested"`` entry becomes True on SIGINT; a
    second Ctrl-C interrupts at once. Only the main thread can handle
    signals, and a handler the user installed is left alone: there, Ctrl-C
    raises KeyboardInterrupt wherever training is, as in plain skorch.
    """
    state = {"requested": False}
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield state
        return

    def request_stop(signum, frame):
        if state["requested"]:
            raise KeyboardInterrupt
        state["requested"] = True

    signal.signal(signal.SIGINT, request_stop)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class LowestValidLoss(Callback):
    """Early stopping on ``valid_loss`` that ends with the weights of its lowest epoch.

    The rule of scikit-learn's MLPs: after each epoch, a ``valid_loss`` lower
    than the lowest so far by more than ``tol`` is an improvement, and
    training stops after ``n_iter_no_change`` epochs without one. The epoch
    with the lowest ``valid_loss`` (the first, on ties) is kept apart from
    that rule, even when it beat the previous lowest by less than ``tol``:
    a CPU copy of its weights is taken, and restored at the end of training
    (after a Ctrl-C too), so the epoch restored is always the argmin of the
    fit's ``valid_loss``. Each epoch records ``valid_loss_best``, True where
    its ``valid_loss`` is the lowest of the fit so far (skorch's convention:
    ``PrintLog`` highlights it, ``Checkpoint`` monitors it); the restored
    epoch is the fit's last such one.

    Training stops through the net's ``stop_after_epoch``,
    once every callback has seen the epoch, so the table ``PrintLog`` prints
    has every epoch of ``history``.
    """

    def __init__(self, n_iter_no_change: int, tol: float, sink: Callable = noop) -> None:
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.sink = sink

    def on_train_begin(self, net, **kwargs):
        self.lowest_loss_ = math.inf
        self.lowest_epoch_ = None
        self.lowest_state_ = None
        self.no_improvement_count_ = 0
        self.stopped_ = False
        self.restored_epoch_ = None

    def on_epoch_end(self, net, **kwargs):
        loss, epoch = net.history[-1, "valid_loss"], net.history[-1, "epoch"]
        improved = loss < self.lowest_loss_ - self.tol
        lowest = loss < self.lowest_loss_
        net.history.record("valid_loss_best", bool(lowest))
        if lowest:
            self.lowest_loss_, self.lowest_epoch_ = loss, epoch
            state = net._bare_module().state_dict()
            self.lowest_state_ = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        self.no_improvement_count_ = 0 if improved else self.no_improvement_count_ + 1
        if self.no_improvement_count_ >= self.n_iter_no_change:
            self.stopped_ = True
            net.stop_after_epoch()

    def on_train_end(self, net, **kwargs):
        if self.stopped_:
            self.sink(
                f"Stopping: valid_loss has not improved by more than tol={self.tol:g} "
                f"for {self.n_iter_no_change} epochs."
            )
        if self.lowest_state_ is None:
            return
        net._bare_module().load_state_dict(self.lowest_state_)
        net.sync_buffers()
        self.lowest_state_ = None  # the copy is not worth keeping (or pickling)
        self.restored_epoch_ = self.lowest_epoch_
        self.sink(
            f"Restoring the weights of epoch {self.lowest_epoch_}, the lowest valid_loss "
            f"({self.lowest_loss_:.4f})."
        )
