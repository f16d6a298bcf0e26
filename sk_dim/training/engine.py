"""What the estimators call: build a net, train it, embed data with it.

The estimators hand over a torch module, their training parameters and a
resolved :class:`~sk_dim._runtime.Runtime`; batching, skorch and Accelerate
stay behind these three functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from skorch.callbacks import ProgressBar
from skorch.utils import noop
from torch import Tensor

from .._runtime import Runtime
from .._warn import warn_user
from .accelerate import AcceleratedSelfSupervisedNet
from .batching import DeviceBatches
from .callbacks import LowestValidLoss, TrainingDiverged
from .net import HeldOut, SelfSupervisedNet


def build_net(
    module: torch.nn.Module,
    runtime: Runtime,
    *,
    lr: float,
    weight_decay: float = 0.0,
    max_epochs: int,
    batch_size: int,
    verbose: int,
    seed: int,
    keep_last_finite: bool = False,
    compile: bool = False,
    callbacks: Sequence = (),
    validation_data: Tensor | np.ndarray | None = None,
    n_iter_no_change: int | None = None,
    tol: float = 0.0,
) -> SelfSupervisedNet:
    """A :class:`SelfSupervisedNet` with Adam (L2 ``weight_decay``) and sk_dim's defaults.

    It runs on ``runtime``'s device, in its precision and layout.
    ``callbacks`` are skorch callbacks (or ``(name, callback)`` pairs), run
    after sk_dim's own. With ``validation_data``, every epoch also records
    the module's ``validation_terms`` on it (``valid_loss``,
    ``valid_<term>``); with ``n_iter_no_change`` as well, training stops once
    ``valid_loss`` has not improved by more than ``tol`` for that many epochs,
    and the weights of the epoch with the lowest ``valid_loss`` are restored
    (:class:`LowestValidLoss`).

    With ``runtime.accelerator``, an :class:`AcceleratedSelfSupervisedNet`,
    whose mixed precision is the accelerator's.
    """
    accelerator = runtime.accelerator
    own = [("progress_bar", ProgressBar(postfix_keys=()))] if verbose > 1 else []
    if validation_data is not None and n_iter_no_change is not None:
        # On the main process only under accelerate, as PrintLog; print itself
        # rather than accelerator.print, which would pickle the accelerator.
        main = accelerator is None or accelerator.is_main_process
        sink = print if verbose and main else noop
        own.append(("early_stopping", LowestValidLoss(n_iter_no_change, tol, sink=sink)))
    cls, extra = SelfSupervisedNet, {}
    if accelerator is not None:
        # PrintLog prints to any sink but print whatever the verbosity; "auto"
        # is accelerator.print, which prints on the main process only.
        sink = "auto" if verbose else print
        extra = {"accelerator": accelerator, "callbacks__print_log__sink": sink}
        cls = AcceleratedSelfSupervisedNet
    return cls(
        module=module,
        criterion=torch.nn.Identity,  # unused: the module computes its loss
        optimizer=torch.optim.Adam,
        lr=lr,
        optimizer__weight_decay=weight_decay,
        optimizer__fused=fused_adam(runtime.device),
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=None if validation_data is None else HeldOut(validation_data),
        callbacks=own + list(callbacks),
        device=runtime.device,
        verbose=verbose,
        seed=seed,
        keep_last_finite=keep_last_finite,
        runtime=runtime,
        compile=compile,
        **extra,
    )


def fused_adam(device: str) -> bool | None:
    """Whether Adam runs fused (one kernel for every parameter) on ``device``.

    Adam's per-parameter loop took a third of DIM's CPU training step (49 small
    tensors, each read and written several times); the fused kernel does the same
    update 4 to 8 times faster (``benchmarks/throughput.py --peak-threads``). torch
    fuses Adam on CPU since 2.4 and on CUDA; elsewhere None leaves torch's choice.
    """
    kind = torch.device(device).type
    cpu_ok = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)
    return True if kind == "cuda" or (kind == "cpu" and cpu_ok) else None


def train(
    net: SelfSupervisedNet,
    data: Tensor | np.ndarray,
    epochs: int | None,
    *,
    on_divergence: str = "raise",
    continuing: bool = False,
) -> None:
    """Train ``net`` on ``data``, applying ``on_divergence`` and reporting Ctrl-C.

    ``continuing`` trains an initialised net further (skorch's
    ``partial_fit``); otherwise ``net.fit``. With
    ``on_divergence="keep_last"``, a :class:`TrainingDiverged` is turned into
    a warning and the weights of the last finite epoch are kept.
    """
    try:
        if continuing:
            net.partial_fit(data, epochs=epochs)
        else:
            net.fit(data, epochs=epochs)
        # Callbacks run after each epoch's own check and may have changed the weights.
        net.check_finite_weights(len(net.history))
    except TrainingDiverged as exc:
        if on_divergence == "raise" or net.last_finite_state_ is None:
            raise
        net.module_.load_state_dict(net.last_finite_state_)
        warn_user(
            f"{exc} on_divergence='keep_last': keeping the weights from the end of "
            f"epoch {exc.epoch - 1}.",
            UserWarning,
        )
    finally:
        # A copy of the weights and the held-out data: not worth persisting.
        net.__dict__.pop("last_finite_state_", None)
        net.train_split = None
        # An interrupted or diverged epoch left a row without its loss: the next
        # epoch takes its number, so that history_ counts 1, 2, 3, ...
        net.drop_incomplete_epoch()
    if net.interrupted_ is not None:
        restored = net.restored_epoch()
        kept = (
            "the weights reached then"
            if restored is None
            else f"early_stopping's choice, the weights of epoch {restored}"
        )
        warn_user(
            f"Training was interrupted (KeyboardInterrupt) during epoch {net.interrupted_}; "
            f"the transformer keeps {kept}.",
            UserWarning,
        )


def without_accelerator(net: SelfSupervisedNet) -> SelfSupervisedNet:
    """``net`` without accelerate (see :meth:`AcceleratedSelfSupervisedNet.without_accelerator`)."""
    if isinstance(net, AcceleratedSelfSupervisedNet):
        return net.without_accelerator()
    return net


@torch.inference_mode()
def embed(
    net: SelfSupervisedNet,
    data: Tensor | np.ndarray,
    fn: Callable[[torch.nn.Module, Tensor], Tensor],
    batch_size: int,
    runtime: Runtime | None = None,
) -> np.ndarray:
    """Apply ``fn(module, batch)`` in eval mode, batch by batch, as float32 numpy.

    Only one batch of activations is alive at a time and the output is
    written into one preallocated array, so large data sets (numpy memmaps
    included, see :class:`DeviceBatches`) are embedded with memory bounded
    by the model, one batch and the output. Runs in ``runtime``'s precision
    and layout (None: the net's own); the output is float32 either way.
    """
    net.module_.eval()
    runtime = net.applied_runtime() if runtime is None else runtime
    batches = DeviceBatches(data, batch_size=batch_size, shuffle=False, device=net.device)
    output = None
    for x, index in batches:
        with runtime.autocast():
            features = fn(net.module_, runtime.memory_format(x)).float().cpu()
        if output is None:
            output = np.empty((len(data), features.shape[1]), dtype=np.float32)
        start = int(index[0])
        output[start : start + len(features)] = features.numpy()
    return output
