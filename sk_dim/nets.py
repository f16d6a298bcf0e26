"""The skorch layer: the only module of sk_dim that imports skorch.

skorch's defaults suit supervised nets; self-supervised training needs
different ones, all set here:

- no validation split (skorch holds out an unshuffled 20% by default);
- batches sliced from one tensor already on the device and reshuffled
  every epoch (in-batch negatives need shuffling; per-row
  ``Dataset.__getitem__`` calls are slow);
- the module computes its own loss terms, returned as a dict;
- a second optimizer for an adversarial prior discriminator;
- per-term epoch means in ``history`` and a clear error when a term or
  a weight becomes NaN or infinite, optionally with a copy of the weights
  of the last finite epoch to fall back on;
- Ctrl-C stops training at the end of the current batch (skorch then
  ends the fit normally) and the epoch is recorded in ``interrupted_``.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PrintLog, ProgressBar
from torch import Tensor


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
    >>> from sk_dim.nets import TrainingDiverged
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


class DeviceBatches:
    """Mini-batches of ``(rows, row indices)`` sliced from one tensor.

    The data is moved to the device once when it fits comfortably in its
    memory; otherwise each batch is gathered on the host into pinned memory
    and copied without blocking. The order is reshuffled every epoch with
    a seeded generator, and a trailing batch of one sample is dropped
    (batch norm and in-batch negatives need two).
    """

    def __init__(
        self,
        data: Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        device: torch.device | str,
        generator: torch.Generator | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.data = _to_device_if_it_fits(data, self.device)

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            if self.shuffle and len(index) < 2:
                break
            yield self._gather(index), index.to(self.device)

    def _gather(self, index: Tensor) -> Tensor:
        if self.data.device == self.device:
            return self.data[index.to(self.device)]
        rows = self.data[index]
        if self.device.type == "cuda":
            rows = rows.pin_memory()
        return rows.to(self.device, non_blocking=True)


def _to_device_if_it_fits(data: Tensor, device: torch.device) -> Tensor:
    if device.type != "cuda":
        return data.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    # Leave most of the memory to activations.
    return data.to(device) if data.nbytes < 0.25 * free else data


class SelfSupervisedNet(NeuralNet):
    """A skorch ``NeuralNet`` whose module returns its own loss terms.

    The module is called as ``module(x, index)`` and returns a dict with
    ``"loss"`` (minimised by the main optimizer) and any other scalar terms
    to log. If the module has a ``discriminator``, it is trained by a second
    optimizer on ``module.discriminator_step_loss(terms["y"])``.
    """

    def __init__(self, *args, seed: int = 0, keep_last_finite: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.keep_last_finite = keep_last_finite

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop; records in ``interrupted_`` the epoch a Ctrl-C stopped.

        ``last_finite_state_`` holds a CPU copy of the module's weights at the
        end of the last epoch whose terms and weights were finite, when
        ``keep_last_finite``; ``interrupted_`` is None after a complete fit.
        """
        self.interrupted_ = None
        self.last_finite_state_ = None
        try:
            with stop_after_batch_on_sigint() as stop:
                self._stop_request = stop
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = len(self.history)
            raise  # skorch's partial_fit catches it and ends the fit normally
        finally:
            del self._stop_request

    def initialize_optimizer(self, *args, **kwargs):
        module = self.module_
        main = module.encoder_parameters() if hasattr(module, "encoder_parameters") else None
        named = [(n, p) for n, p in module.named_parameters() if main is None or _in(p, main)]
        args, kwargs = self.get_params_for_optimizer("optimizer", named)
        self.optimizer_ = self.optimizer(*args, **kwargs)
        if getattr(module, "discriminator", None) is not None:
            named = list(module.discriminator.named_parameters())
            args, kwargs = self.get_params_for_optimizer("optimizer", named)
            self.optimizer_discriminator_ = self.optimizer(*args, **kwargs)
        return self

    def get_dataset(self, X, y=None):
        return X

    def get_iterator(self, dataset, training=False):
        generator = torch.Generator().manual_seed(self.seed + len(self.history))
        return DeviceBatches(
            dataset,
            batch_size=self.batch_size,
            shuffle=training,
            device=self.device,
            generator=generator,
        )

    def train_step(self, batch, **fit_params) -> dict[str, Tensor]:
        self._set_training(True)
        x, index = batch
        terms = self.module_(x, index)
        self.optimizer_.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer_.step()
        disc_optimizer = getattr(self, "optimizer_discriminator_", None)
        if disc_optimizer is not None:
            disc_loss = self.module_.discriminator_step_loss(terms["y"])
            disc_optimizer.zero_grad(set_to_none=True)
            disc_loss.backward()
            disc_optimizer.step()
            terms["discriminator"] = disc_loss
        return terms

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        # Sums stay on the device so a step never waits for a host copy.
        sums: dict[str, Tensor] = {}
        n_seen = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            terms = step_fn(batch, **fit_params)
            n = len(batch[0])
            for key, value in terms.items():
                if value.dim() == 0:
                    sums[key] = sums.get(key, 0.0) + value.detach() * n
            n_seen += n
            self.notify("on_batch_end", batch=batch, training=training, loss=terms["loss"])
            stop = getattr(self, "_stop_request", None)
            if stop is not None and stop["requested"]:
                raise KeyboardInterrupt
        if n_seen == 0:
            raise ValueError("No training batch: the data set needs at least 2 samples")
        epoch = len(self.history)
        means = {key: (total / n_seen).item() for key, total in sums.items()}
        for key, value in means.items():
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"Training diverged at epoch {epoch}: the {key!r} term became {value}. "
                    "Lower lr or change the loss weights.",
                    epoch=epoch,
                    term=key,
                )
        if training:
            self._check_finite_weights(epoch)
        for key, value in means.items():
            name = f"{prefix}_loss" if key == "loss" else key
            self.history.record(name, value)
        self.history.record(f"{prefix}_batch_count", len(iterator))
        if training and self.keep_last_finite:
            state = self.module_.state_dict()
            self.last_finite_state_ = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    def _check_finite_weights(self, epoch: int) -> None:
        # The last step of an epoch can overflow the weights while every loss
        # it computed was finite.
        for name, param in self.module_.named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise TrainingDiverged(
                    f"Training diverged at epoch {epoch}: the weights ({name}) became NaN or "
                    "infinite. Lower lr or change the loss weights.",
                    epoch=epoch,
                    term="weights",
                )

    def get_default_callbacks(self):
        return [("epoch_timer", EpochTimer()), ("print_log", PrintLog())]


def _in(param: Tensor, params: list[Tensor]) -> bool:
    return any(param is p for p in params)


def make_net(
    module: torch.nn.Module,
    *,
    lr: float,
    max_epochs: int,
    batch_size: int,
    device: str,
    verbose: int,
    seed: int,
    keep_last_finite: bool = False,
) -> SelfSupervisedNet:
    """A :class:`SelfSupervisedNet` with Adam and sk_dim's defaults."""
    callbacks = [("progress_bar", ProgressBar(postfix_keys=()))] if verbose > 1 else []
    return SelfSupervisedNet(
        module=module,
        criterion=torch.nn.Identity,  # unused: the module computes its loss
        optimizer=torch.optim.Adam,
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        callbacks=callbacks,
        device=device,
        verbose=verbose,
        seed=seed,
        keep_last_finite=keep_last_finite,
    )


@torch.inference_mode()
def embed(
    net: NeuralNet,
    data: Tensor,
    fn: Callable[[torch.nn.Module, Tensor], Tensor],
    batch_size: int,
) -> np.ndarray:
    """Apply ``fn(module, batch)`` in eval mode, batch by batch, as float32 numpy.

    Only one batch of activations is alive at a time, so large data sets
    can be embedded with bounded memory.
    """
    net.module_.eval()
    batches = DeviceBatches(data, batch_size=batch_size, shuffle=False, device=net.device)
    outputs = [fn(net.module_, x).float().cpu() for x, _ in batches]
    return torch.cat(outputs).numpy()
