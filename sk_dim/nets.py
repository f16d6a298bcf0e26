"""The skorch layer: the only module of sk_dim that imports skorch.

skorch's defaults suit supervised nets; self-supervised training needs
different ones, all set here:

- no validation split (skorch holds out an unshuffled 20% by default),
  unless the estimator passes held-out data for early stopping;
- batches sliced from one tensor already on the device, or read one
  batch at a time from a numpy array (a memmap), and reshuffled every
  epoch (in-batch negatives need shuffling; per-row
  ``Dataset.__getitem__`` calls are slow); training skips the last
  incomplete batch, as the reference implementations do;
- held-out rows scored by the module's ``validation_terms`` with the same
  random draws every epoch, and early stopping that restores the epoch
  with the lowest ``valid_loss`` (:class:`LowestValidLoss`);
- every epoch's random draws seeded from the fit's seed and the epoch
  number, so that a fit resumed from a checkpoint repeats the
  uninterrupted one;
- the module computes its own loss terms, returned as a dict;
- a second optimizer for an adversarial prior discriminator;
- per-term epoch means in ``history`` and a clear error when a term or
  a weight becomes NaN or infinite, optionally with a copy of the weights
  of the last finite epoch to fall back on;
- Ctrl-C stops training at the end of the current batch (skorch then
  ends the fit normally) and the epoch is recorded in ``interrupted_``;
- pickles that leave out the optimizers' state on request, and store the
  module once;
- mixed precision (autocast, with a gradient scaler for float16 shared by
  both optimizers), channels_last image batches and an in-place
  ``torch.compile`` of the module that leaves its ``state_dict`` keys and
  pickling unchanged.
"""

from __future__ import annotations

import math
import mmap
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EpochTimer, PrintLog, ProgressBar
from skorch.hf import AccelerateMixin  # imports no Hugging Face library
from skorch.utils import noop
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
    """Mini-batches of ``(rows, row indices)`` sliced from one tensor or array.

    A tensor is moved to the device once when it fits comfortably in its
    memory; otherwise each batch is gathered on the host into pinned memory
    and copied without blocking. A numpy array (e.g. a ``numpy.memmap`` of
    images on disk, already shaped ``(n, *row_shape)``) is read one batch at
    a time and never copied whole: float64 rows become float32 per batch,
    and a memmap's rows are read from its file (see :class:`FileRows`), so
    memory does not grow with the data set.

    The order is reshuffled every epoch with a seeded generator. What
    happens to a last incomplete batch depends on ``last_batch``:

    - ``"drop"`` (training, the default when shuffling): skipped when there
      is at least one full batch, as the reference implementations do (a
      few rows would take a full optimizer step with batch-norm statistics
      of a few samples and as few in-batch negatives; the rows left out
      change every epoch); a lone batch of one row is skipped too;
    - ``"merge"`` (held-out scoring): every row is kept, and a trailing batch
      of one row joins the previous one (in-batch negatives need two);
    - ``"keep"`` (transform, the default otherwise): every batch as it comes.

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
        data: Tensor | np.ndarray,
        *,
        batch_size: int,
        shuffle: bool,
        device: torch.device | str,
        generator: torch.Generator | None = None,
        num_shards: int = 1,
        shard: int = 0,
        last_batch: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.num_shards = num_shards
        self.shard = shard
        if last_batch is None:
            last_batch = "drop" if shuffle else "keep"
        if last_batch not in ("drop", "merge", "keep"):
            raise ValueError(f"last_batch must be 'drop', 'merge' or 'keep', got {last_batch!r}")
        self.last_batch = last_batch
        if isinstance(data, np.ndarray):
            self.data = data
            self.file = FileRows.of(data)
        else:
            self.data = _to_device_if_it_fits(data, self.device)

    def __len__(self) -> int:
        return len(self._bounds(self._n_rows()))

    def _n_rows(self) -> int:
        return len(self.data) // self.num_shards

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of each batch of ``n`` rows, after ``last_batch``'s rule."""
        size = self.batch_size
        bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
        if not bounds:
            return bounds
        start, stop = bounds[-1]
        if self.last_batch == "drop":
            incomplete = stop - start < self.batch_size
            if (incomplete and len(bounds) > 1) or stop - start < 2:
                bounds.pop()
        elif self.last_batch == "merge" and stop - start == 1 and len(bounds) > 1:
            bounds.pop()
            bounds[-1] = (bounds[-1][0], stop)
        return bounds

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.num_shards > 1:
            # Equal shares: a process with one step more would wait forever for
            # the others to synchronise its gradients.
            order = order[self.shard :: self.num_shards][: self._n_rows()]
        on_device = isinstance(self.data, Tensor) and self.data.device == self.device
        if on_device:  # one copy of the order per epoch rather than two per batch
            order = order.to(self.device)
        for start, stop in self._bounds(len(order)):
            index = order[start:stop]
            if on_device:
                yield self.data[index], index
                continue
            yield self._gather(index), index.to(self.device)

    def _read(self, rows: np.ndarray | slice) -> np.ndarray:
        if self.file is not None:
            return self.file.read(rows)
        return np.array(self.data[rows])

    def _gather(self, index: Tensor) -> Tensor:
        """Rows ``index`` (on the host) of host data, copied to the device."""
        if isinstance(self.data, np.ndarray):
            if self.shuffle:
                rows = self._read(index.numpy())
            else:  # in order: a slice, read sequentially (and copied: it may be read-only)
                rows = self._read(slice(int(index[0]), int(index[-1]) + 1))
            if rows.dtype == np.float64:
                rows = rows.astype(np.float32)
            rows = torch.from_numpy(np.ascontiguousarray(rows))
        else:
            rows = self.data[index]
        if self.device.type == "cuda":
            rows = rows.pin_memory()
        return rows.to(self.device, non_blocking=True)


class FileRows:
    """Rows of an array that views a ``numpy.memmap``, read from its file with ``os.pread``.

    Reading through the mapping leaves every page it touches resident in
    the process (a random row maps the whole page-cache folio around it), so
    a pass over a file larger than memory would look, and under memory
    limits act, like loading it. Reading the file leaves nothing mapped:
    memory holds the rows asked for, and the page cache the rest.
    """

    def __init__(self, path: str, offset: int, row_bytes: int, dtype, row_shape) -> None:
        self.path, self.offset, self.row_bytes = path, offset, row_bytes
        self.dtype, self.row_shape = np.dtype(dtype), tuple(row_shape)

    @classmethod
    def of(cls, data: np.ndarray) -> FileRows | None:
        """The file reader of ``data``, or None if it is not a plain view of a memmap's file."""
        memmap = memmap_of(data)
        if (
            memmap is None
            or getattr(memmap, "filename", None) is None
            or memmap.mode == "c"  # copy-on-write: the file may not hold what the array does
            or not isinstance(getattr(memmap, "_mmap", None), mmap.mmap)
            or not data.flags.c_contiguous
            or len(data) == 0
        ):
            return None
        mapped_from = memmap.offset - memmap.offset % mmap.ALLOCATIONGRANULARITY
        mapping_start = np.frombuffer(memmap._mmap, dtype=np.uint8).ctypes.data
        offset = mapped_from + data.ctypes.data - mapping_start
        return cls(memmap.filename, offset, data[:1].nbytes, data.dtype, data.shape[1:])

    def read(self, rows: np.ndarray | slice) -> np.ndarray:
        """Rows ``rows`` (an index array, or a slice of consecutive rows) as a new array."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if isinstance(rows, slice):
                n = rows.stop - rows.start
                out = np.empty((n, *self.row_shape), self.dtype)
                _pread_into(fd, out, self.offset + rows.start * self.row_bytes)
                return out
            out = np.empty((len(rows), *self.row_shape), self.dtype)
            for i, row in enumerate(rows.tolist()):
                _pread_into(fd, out[i], self.offset + row * self.row_bytes)
            return out
        finally:
            os.close(fd)


def memmap_of(data: np.ndarray) -> np.memmap | None:
    """The ``numpy.memmap`` that ``data`` is (or views), or None."""
    while data is not None and not isinstance(data, np.memmap):
        data = getattr(data, "base", None)
    return data


def _pread_into(fd: int, out: np.ndarray, offset: int) -> None:
    view = memoryview(out.reshape(-1).view(np.uint8))
    while len(view):
        n = os.preadv(fd, [view], offset)
        if n == 0:
            raise EOFError(f"the memmap's file ended at byte {offset}")
        view, offset = view[n:], offset + n


def _to_device_if_it_fits(data: Tensor, device: torch.device) -> Tensor:
    if device.type != "cuda":
        return data.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    # Leave most of the memory to activations.
    return data.to(device) if data.nbytes < 0.25 * free else data


def iter_row_chunks(data: np.ndarray, chunk_bytes: int = 32 * 2**20) -> Iterator[np.ndarray]:
    """``data`` in consecutive chunks of rows (a memmap's read from its file)."""
    rows = max(1, chunk_bytes // max(1, data[:1].nbytes))
    reader = FileRows.of(data)
    for start in range(0, len(data), rows):
        stop = min(start + rows, len(data))
        yield data[start:stop] if reader is None else reader.read(slice(start, stop))


class SelfSupervisedNet(NeuralNet):
    """A skorch ``NeuralNet`` whose module returns its own loss terms.

    The module is a :class:`~sk_dim.modules.base.SelfSupervisedModule`: called as
    ``module(x, index)``, it returns a dict with ``"loss"`` (minimised by the main
    optimizer on ``module.encoder_parameters()``) and any other scalar terms to
    log. If its ``discriminator`` is not None, a second optimizer trains it on
    ``module.discriminator_step_loss(terms)``.

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

        Under :meth:`fit`, trains until the history holds ``max_epochs``
        epochs: ``max_epochs`` for a new net, the rest for one whose history
        a callback restored at the start of training (skorch's
        ``LoadInitState`` resuming a ``Checkpoint``). ``partial_fit`` trains
        ``epochs`` (default ``max_epochs``) more, as in skorch.

        ``last_finite_state_`` holds a CPU copy of the module's weights at the
        end of the last epoch whose terms and weights were finite, when
        ``keep_last_finite``; ``interrupted_`` is None after a complete fit
        and after a callback stopped it (``EarlyStopping``).
        """
        self.interrupted_ = None
        self.last_finite_state_ = None
        self._stopped_by_callback = False
        self._stop_after_epoch = False
        self._epoch_generator = torch.Generator()
        self._validation_generator = torch.Generator()
        if epochs is None and self._fitting_anew:
            epochs = max(0, self.max_epochs - len(self.history))
        # Resolved once per fit, not per batch; float16 on a CPU raises here.
        self._train_precision = resolve_precision(self.precision, self.device)
        self._train_channels_last = resolve_channels_last(self.channels_last, self.device)
        compiled = self._compile_for_training()
        try:
            with stop_after_batch_on_sigint() as stop:
                self._stop_request = stop
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            if not self._stopped_by_callback:
                self.interrupted_ = len(self.history)
            raise  # skorch's partial_fit catches it and ends the fit normally
        finally:
            del self._stop_request
            # Inference runs eager: no compilation of an eval-mode graph at the
            # first transform, and the same features as a pickled or loaded copy.
            for target in compiled:
                target._compiled_call_impl = None

    def fit(self, X, y=None, **fit_params):
        self._fitting_anew = True
        try:
            return super().fit(X, y, **fit_params)
        finally:
            self._fitting_anew = False

    _fitting_anew = False

    def notify(self, method_name, **cb_kwargs):
        try:
            super().notify(method_name, **cb_kwargs)
        except KeyboardInterrupt:
            # skorch's EarlyStopping ends training this way: not a Ctrl-C.
            self._stopped_by_callback = method_name == "on_epoch_end"
            raise
        if method_name == "on_epoch_end" and self._stop_after_epoch:
            # Raised once every callback has seen the epoch: PrintLog, always
            # the last, has printed its row.
            self._stopped_by_callback = True
            raise KeyboardInterrupt

    def stop_after_epoch(self) -> None:
        """End training once every callback has run ``on_epoch_end`` (for callbacks)."""
        self._stop_after_epoch = True

    _stop_after_epoch = False

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train, dataset_valid, **kwargs)
        # An epoch's randomness (order, augmentations, negatives, prior samples)
        # depends on the seed and the epoch number only, so that a fit resumed
        # from a checkpoint repeats the uninterrupted one.
        seed = epoch_seed(self.seed, len(self.history))
        torch.manual_seed(seed)
        self._epoch_generator.manual_seed(seed)

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
        targets = module.compile_targets()
        for target in targets:
            target.compile(**self.get_params_for("compile"))
        return targets

    def initialize_optimizer(self, *args, **kwargs):
        module = self.module_
        main = module.encoder_parameters()
        named = [(n, p) for n, p in module.named_parameters() if _in(p, main)]
        args, kwargs = self.get_params_for_optimizer("optimizer", named)
        self.optimizer_ = self.optimizer(*args, **kwargs)
        if module.discriminator is not None:
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
        return DeviceBatches(
            dataset,
            batch_size=self.batch_size,
            shuffle=training,
            device=self.device,
            generator=self._epoch_generator if training else None,
            last_batch="drop" if training else "merge",
        )

    def validation_step(self, batch, **fit_params) -> dict[str, Tensor]:
        """The module's ``validation_terms`` on held-out rows, in eval mode, without gradients."""
        self._set_training(False)
        x, index = batch
        x = to_memory_format(x, self._train_channels_last)
        with torch.no_grad(), autocast(self.device, self._train_precision):
            return self._bare_module().validation_terms(x, index, self._validation_generator)

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
                disc_loss = self._bare_module().discriminator_step_loss(terms)
            self._step(disc_loss, disc_optimizer)
            # The module may have logged the parts of its loss itself.
            terms.setdefault("discriminator", disc_loss)
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
        if not training:
            # The same held-out draws (augmentations, negatives) every epoch, so
            # that valid_loss changes only with the weights.
            self._validation_generator.manual_seed(validation_seed(self.seed))
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
            self.check_finite_weights(epoch)
        for key, value in means.items():
            if key == "loss" or not training:
                key = f"{prefix}_{key}"
            self.history.record(key, value)
        self.history.record(f"{prefix}_batch_count", len(iterator))
        if training and self.keep_last_finite:
            state = self.module_.state_dict()
            self.last_finite_state_ = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    def check_finite_weights(self, epoch: int) -> None:
        """Raise :class:`TrainingDiverged` if a weight is NaN, infinite or beyond WEIGHT_LIMIT."""
        # The last step of an epoch can overflow the weights while every loss
        # it computed was finite, and a loss of normalised embeddings (CMC's)
        # stays finite while the weights explode: both count as divergence.
        name = first_weight_beyond_limit(self.module_)
        if name is not None:
            raise TrainingDiverged(
                f"Training diverged at epoch {epoch}: the weights ({name}) became NaN, "
                f"infinite or larger than {WEIGHT_LIMIT:g}. Lower lr or change the loss "
                "weights.",
                epoch=epoch,
                term="weights",
            )

    def get_default_callbacks(self):
        return [("epoch_timer", EpochTimer()), ("print_log", PrintLog())]

    def __getstate__(self):
        state = self.__dict__.copy()
        if not state.pop("_pickle_training_state", True):
            for key in TRAINING_STATE:
                state.pop(key, None)
        # skorch pickles module_ apart from the other attributes, so the module
        # parameter, the same object, would be stored a second time.
        if state.get("module") is state.get("module_"):
            state["module"] = _SAME_AS_MODULE_
        shell = object.__new__(type(self))
        shell.__dict__ = state
        return NeuralNet.__getstate__(shell)

    def __setstate__(self, state):
        super().__setstate__(state)
        if isinstance(self.module, str) and self.module == _SAME_AS_MODULE_:
            self.module = self.module_

    def resume_optimizers(self, fitted: SelfSupervisedNet) -> bool:
        """Continue from the optimizer state of ``fitted``, a net training the same module.

        The state (Adam's moments and step counts, the gradient scaler's scale) is
        copied; the hyperparameters stay this net's, so that a changed ``lr`` or
        ``weight_decay`` takes effect. Returns False, changing nothing, when
        ``fitted`` holds no optimizer state (a lean pickle or a loaded file).
        """
        if not hasattr(fitted, "optimizer_"):
            return False
        for name in ("optimizer_", "optimizer_discriminator_"):
            mine, theirs = getattr(self, name, None), getattr(fitted, name, None)
            if mine is None or theirs is None:
                continue
            hyper = [{k: group[k] for k in ("lr", "weight_decay")} for group in mine.param_groups]
            mine.load_state_dict(theirs.state_dict())
            for group, values in zip(mine.param_groups, hyper, strict=True):
                group.update(values)
        scaler, theirs = self.grad_scaler_, getattr(fitted, "grad_scaler_", None)
        if scaler is not None and theirs is not None:
            scaler.load_state_dict(theirs.state_dict())
        return True

    def drop_optimizers(self) -> None:
        """Forget the optimizers' state (see :meth:`resume_optimizers`)."""
        for key in TRAINING_STATE:
            self.__dict__.pop(key, None)

    def sync_buffers(self) -> None:
        """Make the module's buffers the same in every process (one process: nothing to do)."""

    def restored_epoch(self) -> int | None:
        """The epoch whose weights early stopping restored at the end of training, or None."""
        for _, callback in getattr(self, "callbacks_", []):
            if isinstance(callback, LowestValidLoss):
                return getattr(callback, "restored_epoch_", None)
        return None

    def drop_incomplete_epoch(self) -> None:
        """Remove the history row of an epoch that did not complete (interrupted, diverged)."""
        if len(self.history) and "train_loss" not in self.history[-1]:
            del self.history[-1]


# No weight of a network that trains sensibly comes near this: beyond it, the
# features are meaningless even where the loss is still finite.
WEIGHT_LIMIT = 1e5
# Optimizer state: needed to continue training, not to transform.
TRAINING_STATE = ("optimizer_", "optimizer_discriminator_", "grad_scaler_")
_SAME_AS_MODULE_ = "<the module_ attribute>"


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


def without_training_state(net: SelfSupervisedNet) -> SelfSupervisedNet:
    """A shallow copy of ``net`` that pickles without its optimizers' state."""
    lean = object.__new__(type(net))
    lean.__dict__.update(net.__dict__)
    lean._pickle_training_state = False
    return lean


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's random draws, from the fit's seed and the epoch."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def validation_seed(seed: int) -> int:
    """The seed of every held-out pass's random draws, from the fit's seed.

    A stream of its own (a spawn key), apart from every epoch's.
    """
    return int(np.random.SeedSequence(seed, spawn_key=(1,)).generate_state(1)[0])


def _in(param: Tensor, params: list[Tensor]) -> bool:
    return any(param is p for p in params)


class AcceleratedSelfSupervisedNet(AccelerateMixin, SelfSupervisedNet):
    """A :class:`SelfSupervisedNet` trained through Hugging Face Accelerate.

    skorch's ``AccelerateMixin`` prepares the module (wrapped in
    ``DistributedDataParallel`` when there are several processes) and both
    optimizers, wraps each step in ``accelerator.accumulate`` and unwraps the
    module at the end of training. On top of it:

    - backward passes go through ``accelerator.backward`` (loss scaling;
      the estimators refuse gradient accumulation, which would add the
      encoder's gradients to the discriminator's); mixed precision is the accelerator's
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
    - the module's ``set_gather`` receives ``accelerator.gather`` (CMC passes it
      to its contrast, so that every process applies every process's
      memory-bank updates).

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
            self._bare_module().set_gather(self.accelerator.gather)
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
        self.sync_buffers()
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def sync_buffers(self) -> None:
        """Give every process process 0's buffers (batch-norm statistics)."""
        if self.accelerator.num_processes == 1:
            return
        from accelerate.utils import broadcast

        # DistributedDataParallel copies process 0's buffers to the others before
        # each forward, so the last step leaves them different: take process 0's,
        # so that every process ends with the same model.
        with torch.no_grad():
            for buffer in self.module_.buffers():
                buffer.copy_(broadcast(buffer, from_process=0))

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
        self.module_.set_gather(None)
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

    Training stops through :meth:`SelfSupervisedNet.stop_after_epoch`,
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


def make_net(
    module: torch.nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
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
    callbacks: Sequence = (),
    validation_data: Tensor | np.ndarray | None = None,
    n_iter_no_change: int | None = None,
    tol: float = 0.0,
) -> SelfSupervisedNet:
    """A :class:`SelfSupervisedNet` with Adam (L2 ``weight_decay``) and sk_dim's defaults.

    ``callbacks`` are skorch callbacks (or ``(name, callback)`` pairs), run
    after sk_dim's own. With ``validation_data``, every epoch also records
    the module's ``validation_terms`` on it (``valid_loss``,
    ``valid_<term>``); with ``n_iter_no_change`` as well, training stops once
    ``valid_loss`` has not improved by more than ``tol`` for that many epochs,
    and the weights of the epoch with the lowest ``valid_loss`` are restored
    (:class:`LowestValidLoss`).

    With an ``accelerate.Accelerator``, an :class:`AcceleratedSelfSupervisedNet`
    on the accelerator's device, whose mixed precision replaces ``precision``.
    """
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
        device, precision = str(accelerator.device), "float32"
    return cls(
        module=module,
        criterion=torch.nn.Identity,  # unused: the module computes its loss
        optimizer=torch.optim.Adam,
        lr=lr,
        optimizer__weight_decay=weight_decay,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=None if validation_data is None else HeldOut(validation_data),
        callbacks=own + list(callbacks),
        device=device,
        verbose=verbose,
        seed=seed,
        keep_last_finite=keep_last_finite,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        **extra,
    )


class HeldOut:
    """skorch ``train_split``: the training data as given, and fixed held-out data."""

    def __init__(self, data: Tensor | np.ndarray) -> None:
        self.data = data

    def __call__(self, dataset, y=None, **fit_params):
        return dataset, self.data


@torch.inference_mode()
def embed(
    net: NeuralNet,
    data: Tensor | np.ndarray,
    fn: Callable[[torch.nn.Module, Tensor], Tensor],
    batch_size: int,
    *,
    precision: str | None = None,
    channels_last: bool | None = None,
) -> np.ndarray:
    """Apply ``fn(module, batch)`` in eval mode, batch by batch, as float32 numpy.

    Only one batch of activations is alive at a time and the output is
    written into one preallocated array, so large data sets (numpy memmaps
    included, see :class:`DeviceBatches`) are embedded with memory bounded
    by the model, one batch and the output. Runs in ``precision`` and
    ``channels_last`` (resolved values; None: the net's own, resolved for its
    device, where float16 falls back to float32 off CUDA); the output is
    float32 either way.
    """
    net.module_.eval()
    if precision is None:
        precision = resolve_precision(net.precision, net.device, strict=False)
    if channels_last is None:
        channels_last = resolve_channels_last(net.channels_last, net.device)
    batches = DeviceBatches(data, batch_size=batch_size, shuffle=False, device=net.device)
    output = None
    for x, index in batches:
        with autocast(net.device, precision):
            features = fn(net.module_, to_memory_format(x, channels_last)).float().cpu()
        if output is None:
            output = np.empty((len(data), features.shape[1]), dtype=np.float32)
        start = int(index[0])
        output[start : start + len(features)] = features.numpy()
    return output
