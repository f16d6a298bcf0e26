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
  ends the fit normally) and the epoch is recorded in ``interrupted_``;
- mixed precision (autocast, with a gradient scaler for float16 shared by
  both optimizers), channels_last image batches and an in-place
  ``torch.compile`` of the module that leaves its ``state_dict`` keys and
  pickling unchanged.
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
from skorch.hf import AccelerateMixin  # imports no Hugging Face library
from torch import Tensor

from ._torch import autocast, resolve_channels_last, resolve_precision, to_memory_format


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

    With ``num_shards`` > 1 (one shard per process of a distributed fit),
    every process draws the same order from an identically seeded
    generator and iterates over its own ``shard``: every ``num_shards``-th
    row of the order, cut to ``n // num_shards`` rows so that all processes
    take the same number of steps (up to ``num_shards - 1`` rows sit out
    each epoch, different ones every epoch). The indices yielded are the
    rows' positions in the whole data set.
    """

    def __init__(
        self,
        data: Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        device: torch.device | str,
        generator: torch.Generator | None = None,
        num_shards: int = 1,
        shard: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.num_shards = num_shards
        self.shard = shard
        self.data = _to_device_if_it_fits(data, self.device)

    def __len__(self) -> int:
        return math.ceil(self._n_rows() / self.batch_size)

    def _n_rows(self) -> int:
        return len(self.data) // self.num_shards

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.num_shards > 1:
            # Equal shares: a process with one step more would wait forever for
            # the others to synchronise its gradients.
            order = order[self.shard :: self.num_shards][: self._n_rows()]
        on_device = self.data.device == self.device
        if on_device:  # one copy of the order per epoch rather than two per batch
            order = order.to(self.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            if self.shuffle and len(index) < 2:
                break
            if on_device:
                yield self.data[index], index
            else:
                yield self._gather(index), index.to(self.device)

    def _gather(self, index: Tensor) -> Tensor:
        """Rows ``index`` (on the host) of host data, copied to the device."""
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

    ``precision`` and ``channels_last`` may be ``"auto"``: they are resolved
    for the net's device when used (see :mod:`sk_dim._torch`), so a net
    unpickled on a CPU-only machine infers in float32 even if it trained in
    bfloat16 on a GPU. ``compile=True`` compiles ``module_`` in place with
    ``nn.Module.compile`` rather than skorch's wrapper, so ``state_dict``
    keys keep no ``_orig_mod.`` prefix, and for training only.
    """

    def __init__(
        self,
        *args,
        seed: int = 0,
        keep_last_finite: bool = False,
        precision: str = "float32",
        channels_last: bool | str = False,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.keep_last_finite = keep_last_finite
        self.precision = precision
        self.channels_last = channels_last

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop; records in ``interrupted_`` the epoch a Ctrl-C stopped.

        ``last_finite_state_`` holds a CPU copy of the module's weights at the
        end of the last epoch whose terms and weights were finite, when
        ``keep_last_finite``; ``interrupted_`` is None after a complete fit.
        """
        self.interrupted_ = None
        self.last_finite_state_ = None
        # Resolved once per fit, not per batch; float16 on a CPU raises here.
        self._train_precision = resolve_precision(self.precision, self.device)
        self._train_channels_last = resolve_channels_last(self.channels_last, self.device)
        compiled = self._compile_for_training()
        try:
            with stop_after_batch_on_sigint() as stop:
                self._stop_request = stop
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = len(self.history)
            raise  # skorch's partial_fit catches it and ends the fit normally
        finally:
            del self._stop_request
            # Inference runs eager: no compilation of an eval-mode graph at the
            # first transform, and the same features as a pickled or loaded copy.
            for target in compiled:
                target._compiled_call_impl = None

    def initialize_module(self):
        super().initialize_module()
        if resolve_channels_last(self.channels_last, self.device):
            # Only 4-D weights and buffers change layout; the parameters stay the
            # same objects, so optimizers built later see them.
            self.module_.to(memory_format=torch.channels_last)
        return self

    def torch_compile(self, module, name):
        """Leave modules as they are: ``compile=True`` compiles during ``fit_loop`` only."""
        return module

    def _compile_for_training(self) -> list[torch.nn.Module]:
        """Compile ``module_`` in place, for training, when ``compile=True``.

        A module may name the submodules worth compiling in
        ``compile_targets()`` (CMC: its encoders); otherwise all of it is.
        """
        if not self.compile:
            return []
        module = self.module_
        targets = module.compile_targets() if hasattr(module, "compile_targets") else [module]
        for target in targets:
            target.compile(**self.get_params_for("compile"))
        return targets

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
        # float16 gradients underflow without loss scaling; one scaler serves
        # both optimizers (stepped each, updated once per batch).
        fp16 = resolve_precision(self.precision, self.device, strict=False) == "float16"
        self.grad_scaler_ = torch.amp.GradScaler("cuda") if fp16 else None
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
        x = to_memory_format(x, self._train_channels_last)
        with autocast(self.device, self._train_precision):
            terms = self.module_(x, index)
        self._step(terms["loss"], self.optimizer_)
        disc_optimizer = getattr(self, "optimizer_discriminator_", None)
        if disc_optimizer is not None:
            with autocast(self.device, self._train_precision):
                disc_loss = self._bare_module().discriminator_step_loss(terms["y"])
            self._step(disc_loss, disc_optimizer)
            terms["discriminator"] = disc_loss
        if self.grad_scaler_ is not None:
            self.grad_scaler_.update()
        return terms

    def _bare_module(self) -> torch.nn.Module:
        """``module_`` itself; a wrapper's inner module in subclasses that wrap it."""
        return self.module_

    def _step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        scaler = self.grad_scaler_
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # skips the step when the scaled gradients overflowed
            scaler.scale(loss).backward()
            scaler.step(optimizer)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        # Sums stay on the device so a step never waits for a host copy, and
        # are stacked so that a batch adds to them with two small kernels
        # rather than two per term.
        keys: list[str] | None = None
        sums: Tensor | float = 0.0
        n_seen = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            terms = step_fn(batch, **fit_params)
            n = len(batch[0])
            if keys is None:
                keys = [key for key, value in terms.items() if value.dim() == 0]
            values = torch.stack([terms[key].detach().float() for key in keys])
            sums = sums + values * n
            n_seen += n
            self.notify("on_batch_end", batch=batch, training=training, loss=terms["loss"])
            stop = getattr(self, "_stop_request", None)
            if stop is not None and stop["requested"]:
                raise KeyboardInterrupt
        if n_seen == 0:
            raise ValueError("No training batch: the data set needs at least 2 samples")
        epoch = len(self.history)
        means = dict(zip(keys, (sums / n_seen).tolist(), strict=True))
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
        # it computed was finite. One device sync for all the parameters.
        named = list(self.module_.named_parameters())
        if not named:
            return
        finite = torch.stack([torch.isfinite(param).all() for _, param in named]).tolist()
        for (name, _), ok in zip(named, finite, strict=True):
            if not ok:
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


class AcceleratedSelfSupervisedNet(AccelerateMixin, SelfSupervisedNet):
    """A :class:`SelfSupervisedNet` trained through Hugging Face Accelerate.

    skorch's ``AccelerateMixin`` prepares the module (wrapped in
    ``DistributedDataParallel`` when there are several processes) and both
    optimizers, wraps each step in ``accelerator.accumulate`` and unwraps the
    module at the end of training. On top of it:

    - backward passes go through ``accelerator.backward`` (loss scaling,
      gradient accumulation); mixed precision is the accelerator's
      (``Accelerator(mixed_precision=...)``), so ``precision`` must be
      float32;
    - ``device`` is the accelerator's device: batches and inference go where
      accelerate placed the module;
    - each process trains on its own shard of every epoch
      (:class:`DeviceBatches` with ``num_shards``); ``batch_size`` is per
      process, in-batch negatives come from the process's own batch, and
      gradients are averaged over the processes;
    - the prior discriminator's step does not go through the wrapped
      module's forward, so its gradients are averaged explicitly;
    - modules with a ``gather_across_processes`` attribute (CMC's contrast) get
      ``accelerator.gather``, so that every process applies every process's
      memory-bank updates.

    With a single process it trains exactly like :class:`SelfSupervisedNet`.
    :meth:`without_accelerator` returns the trained net without accelerate,
    for pickling and inference.
    """

    def _validate_params(self):
        # Skips the mixin's "device must be None" check: the device given is
        # the accelerator's own, so there is no second placement to conflict.
        SelfSupervisedNet._validate_params(self)

    def initialize_criterion(self):
        # The module computes its loss. A criterion module would be wrapped in
        # DistributedDataParallel, which refuses modules without parameters.
        self.criterion_ = None
        return self

    def initialize_module(self):
        super().initialize_module()
        if self.accelerator.num_processes > 1:
            for module in self.module_.modules():
                if hasattr(module, "gather_across_processes"):
                    module.gather_across_processes = self.accelerator.gather
        return self

    def get_iterator(self, dataset, training=False):
        # accelerate shards DataLoaders only; DeviceBatches shards itself.
        batches = SelfSupervisedNet.get_iterator(self, dataset, training=training)
        if training:
            batches.num_shards = self.accelerator.num_processes
            batches.shard = self.accelerator.process_index
        return batches

    def _bare_module(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.module_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast

            # DistributedDataParallel copies process 0's buffers (batch-norm
            # statistics) to the others before each forward, so the last step
            # leaves them different: take process 0's, so that every process
            # ends with the same model.
            with torch.no_grad():
                for buffer in self.module_.buffers():
                    buffer.copy_(broadcast(buffer, from_process=0))
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def _step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        if optimizer is getattr(self, "optimizer_discriminator_", None):
            self._average_discriminator_gradients()
        optimizer.step()

    def _average_discriminator_gradients(self) -> None:
        accelerator = self.accelerator
        if accelerator.num_processes == 1 or not accelerator.sync_gradients:
            return
        for param in self._bare_module().discriminator.parameters():
            if param.grad is not None:
                param.grad = accelerator.reduce(param.grad, reduction="mean")

    def without_accelerator(self) -> SelfSupervisedNet:
        """A plain :class:`SelfSupervisedNet` holding the trained module and history.

        It pickles and transforms without accelerate (and without the
        accelerator's processes); its optimizers are new.
        """
        self._unwrap_accelerator()  # done already at the end of a complete fit
        for module in self.module_.modules():
            if hasattr(module, "gather_across_processes"):
                module.gather_across_processes = None
        accelerate_only = {"accelerator", "unwrap_after_train", "callbacks__print_log__sink"}
        params = {
            k: v
            for k, v in self.get_params(deep=False).items()
            if k not in accelerate_only and not k.startswith("_")
        }
        plain = SelfSupervisedNet(**{**params, "module": self.module_})
        plain.initialize()
        plain.history_ = self.history_
        return plain


def without_accelerator(net: SelfSupervisedNet) -> SelfSupervisedNet:
    """``net`` without accelerate (see :meth:`AcceleratedSelfSupervisedNet.without_accelerator`)."""
    if isinstance(net, AcceleratedSelfSupervisedNet):
        return net.without_accelerator()
    return net


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
    precision: str = "float32",
    channels_last: bool | str = False,
    compile: bool = False,
    accelerator=None,
) -> SelfSupervisedNet:
    """A :class:`SelfSupervisedNet` with Adam and sk_dim's defaults.

    With an ``accelerate.Accelerator``, an :class:`AcceleratedSelfSupervisedNet`
    on the accelerator's device, whose mixed precision replaces ``precision``.
    """
    callbacks = [("progress_bar", ProgressBar(postfix_keys=()))] if verbose > 1 else []
    cls, extra = SelfSupervisedNet, {}
    if accelerator is not None:
        # PrintLog prints to any sink but print whatever the verbosity; "auto"
        # is accelerator.print, which prints on the main process only.
        sink = "auto" if verbose else print
        extra = {"accelerator": accelerator, "callbacks__print_log__sink": sink}
        cls = AcceleratedSelfSupervisedNet
        device, precision = str(accelerator.device), "float32"
    return cls(
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
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        **extra,
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
    can be embedded with bounded memory. Runs in the net's precision where
    the device supports it (float16 falls back to float32 off CUDA); the
    output is float32 either way.
    """
    net.module_.eval()
    # getattr: nets pickled before these options existed.
    precision = resolve_precision(getattr(net, "precision", "float32"), net.device, strict=False)
    channels_last = resolve_channels_last(getattr(net, "channels_last", False), net.device)
    batches = DeviceBatches(data, batch_size=batch_size, shuffle=False, device=net.device)
    outputs = []
    for x, _ in batches:
        with autocast(net.device, precision):
            outputs.append(fn(net.module_, to_memory_format(x, channels_last)).float().cpu())
    return torch.cat(outputs).numpy()
