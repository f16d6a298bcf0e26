"""The skorch net: self-supervised training as skorch runs it.

skorch's defaults suit supervised nets; self-supervised training needs
different ones, all set here:

- no validation split (skorch holds out an unshuffled 20% by default),
  unless the estimator passes held-out data for early stopping
  (:class:`HeldOut`);
- batches from :mod:`.batching`, reshuffled every epoch; training skips the
  last incomplete batch, as the reference implementations do;
- held-out rows scored by the module's ``validation_terms`` with the same
  random draws every epoch;
- every epoch's random draws seeded from the fit's seed and the epoch
  number, so that a fit resumed from a checkpoint repeats the
  uninterrupted one;
- the module computes its own loss terms, returned as a dict;
- a second optimizer for an adversarial prior discriminator;
- per-term epoch means in ``history``, checked by :mod:`.callbacks`'
  divergence guard, optionally with a copy of the weights of the last
  finite epoch to fall back on; Ctrl-C handled there too, the epoch it
  stopped recorded in ``interrupted_``;
- pickles that leave out the optimizers' state on request, and store the
  module once;
- the precision and layout of its :class:`~sk_dim._runtime.Runtime`
  (autocast, with a gradient scaler for float16 shared by both
  optimizers; channels_last image batches), and an in-place
  ``torch.compile`` of the module that leaves its ``state_dict`` keys and
  pickling unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PrintLog
from torch import Tensor

from .._runtime import Runtime
from .batching import DeviceBatches
from .callbacks import (
    LowestValidLoss,
    check_finite_terms,
    check_finite_weights,
    stop_after_batch_on_sigint,
)

# Optimizer state: needed to continue training, not to transform.
TRAINING_STATE = ("optimizer_", "optimizer_discriminator_", "grad_scaler_")
_SAME_AS_MODULE_ = "<the module_ attribute>"


class SelfSupervisedNet(NeuralNet):
    """A skorch ``NeuralNet`` whose module returns its own loss terms.

    The module is a :class:`~sk_dim.modules.base.SelfSupervisedModule`: called as
    ``module(x, index)``, it returns a dict with ``"loss"`` (minimised by the main
    optimizer on ``module.encoder_parameters()``) and any other scalar terms to
    log. If its ``discriminator`` is not None, a second optimizer trains it on
    ``module.discriminator_step_loss(terms)``.

    ``runtime`` is the resolved precision and layout it trains and infers in
    (:func:`sk_dim._runtime.resolve_runtime`); None means float32 and the
    default layout. ``compile=True`` compiles ``module_`` in place with
    ``nn.Module.compile`` rather than skorch's wrapper, so ``state_dict``
    keys keep no ``_orig_mod.`` prefix, and for training only.
    """

    def __init__(
        self,
        *args,
        seed: int = 0,
        keep_last_finite: bool = False,
        runtime: Runtime | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.keep_last_finite = keep_last_finite
        self.runtime = runtime

    def applied_runtime(self) -> Runtime:
        """``runtime``, or float32 in the default layout on the net's device when None."""
        if self.runtime is None:
            return Runtime(str(self.device), "float32", False)
        return self.runtime

    # Overridden rather than a callback: no callback hook runs when training
    # raises, while the SIGINT handler and the compiled module must be restored
    # whatever ends training, and a Ctrl-C is told apart from a callback's stop.
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

    # Overridden: a callback that stops training must let the callbacks after
    # it (PrintLog, always the last) see the epoch first.
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
        if self.applied_runtime().channels_last:
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
        fp16 = self.applied_runtime().autocast_precision == "float16"
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
        runtime = self.applied_runtime()
        x = runtime.memory_format(x)
        with torch.no_grad(), runtime.autocast():
            return self._bare_module().validation_terms(x, index, self._validation_generator)

    def train_step(self, batch, **fit_params) -> dict[str, Tensor]:
        self._set_training(True)
        x, index = batch
        runtime = self.applied_runtime()
        x = runtime.memory_format(x)
        with runtime.autocast():
            terms = self.module_(x, index)
        self._step(terms["loss"], self.optimizer_)
        disc_optimizer = getattr(self, "optimizer_discriminator_", None)
        if disc_optimizer is not None:
            with runtime.autocast():
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

    # Overridden: skorch's records each batch's loss with a device sync, and a
    # callback would see the epoch's means only once recorded, after the
    # held-out pass, too late to refuse a diverged epoch.
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
        check_finite_terms(means, epoch)
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
        check_finite_weights(self.module_, epoch)

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


class HeldOut:
    """skorch ``train_split``: the training data as given, and fixed held-out data."""

    def __init__(self, data: Tensor | np.ndarray) -> None:
        self.data = data

    def __call__(self, dataset, y=None, **fit_params):
        return dataset, self.data
