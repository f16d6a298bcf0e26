"""How a fit runs: a new network, or training continued from the fitted one.

:meth:`FittingMixin._fit_new` and :meth:`FittingMixin._continue_training`
are what ``fit`` and ``partial_fit`` (in :mod:`sk_dim._base`) call: they
validate X, resolve the fit's :class:`~sk_dim._runtime.Runtime` once, build
the net through :mod:`sk_dim.training` and train it. The estimator
provides ``_build_module``, ``_check_params``, ``_prepare_training`` and
``_finish_training``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from sklearn.utils import check_random_state
from torch import nn

from . import training
from ._input import batch_source, split_validation, validate_input
from ._runtime import Runtime, resolve_runtime
from ._torch import seeded
from ._version import versions
from ._warn import warn_user


class FittingMixin:
    """A new fit and a continued one, for :class:`~sk_dim._base.BaseSelfSupervised`."""

    # What max_epochs="auto" means: (optimizer steps, most epochs). Every estimator
    # sets its own (the shared constraints accept "auto").
    _AUTO_EPOCHS: tuple[int, int]

    def _epochs_for(self, n_samples: int, batch_size: int) -> int:
        """``max_epochs``, or the epochs ``"auto"`` trains on ``n_samples`` rows."""
        if isinstance(self.max_epochs, str):  # "auto": the constraints allow no other string
            steps, most = self._AUTO_EPOCHS
            # Training skips an incomplete last batch when there is a full one.
            per_epoch = max(1, n_samples // batch_size)
            return min(most, math.ceil(steps / per_epoch))
        return int(self.max_epochs)

    def _fit_new(self, X, epochs: int | None, partial: bool) -> None:
        runtime = self._training_runtime()
        X, input_shape = validate_input(self, X, reset=True)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        seed = runtime.shared_seed(seed)
        X, X_valid = self._split_validation(X, seed)
        self._check_params(input_shape, len(X))
        batch_size = self._check_batch_size(len(X))
        self.input_shape_ = input_shape
        self.image_shape_ = input_shape if len(input_shape) == 3 else None
        with seeded(seed, runtime.device):
            module = self._build_checked_module(X, input_shape)
            self._prepare_training(module, X, partial=partial)
            net = self._build_net(
                module,
                runtime,
                seed=seed,
                batch_size=batch_size,
                max_epochs=self._epochs_for(len(X), batch_size),
                validation_data=None if X_valid is None else batch_source(X_valid, input_shape),
            )
            self._train_net(net, batch_source(X, input_shape), epochs)
        # A plain net: it pickles, and transforms, without accelerate.
        self.net_ = training.without_accelerator(net)
        self._finish_training(self.net_.module_, partial=partial)
        self._module_params = self._current_module_params()
        self.versions_ = versions()

    def _training_runtime(self) -> Runtime:
        """Where and how this fit computes, resolved once (float16 on a CPU raises).

        What ``"auto"`` meant is recorded in ``precision_`` and ``channels_last_``.
        """
        runtime = resolve_runtime(
            self.device, self.precision, self.channels_last, self.accelerate, training=True
        )
        self.precision_, self.channels_last_ = runtime.precision, runtime.channels_last
        return runtime

    def _build_net(
        self,
        module: nn.Module,
        runtime: Runtime,
        *,
        seed: int,
        batch_size: int,
        max_epochs: int,
        validation_data=None,
    ):
        """The net that trains ``module`` with the training parameters as they are now.

        Every fit builds one, a warm one included, so that ``set_params`` of a
        training parameter (``lr``, ``callbacks``, ``early_stopping``, ...) takes
        effect at the next fit.
        """
        return training.build_net(
            module,
            runtime,
            lr=self.lr,
            weight_decay=self.weight_decay,
            max_epochs=max_epochs,
            batch_size=batch_size,
            verbose=int(self.verbose),
            seed=seed,
            keep_last_finite=self.on_divergence == "keep_last",
            compile=self.compile,
            callbacks=copy.deepcopy(list(self.callbacks or ())),
            validation_data=validation_data,
            n_iter_no_change=self.n_iter_no_change if self.early_stopping else None,
            tol=self.tol,
        )

    def _continue_training(self, X, epochs: int | None, partial: bool) -> None:
        """Train a copy of the fitted network, then keep it if training succeeds.

        ``epochs`` more epochs; None: ``max_epochs`` more (resolved on X when "auto").
        """
        if self.accelerate not in (None, False):
            raise ValueError(
                "warm_start and partial_fit continue training without accelerate; set "
                "accelerate=None, or fit anew (warm_start=False)"
            )
        self._check_module_params("continue training")
        X, input_shape = validate_input(self, X, reset=False)
        fitted = self.net_
        runtime = self._training_runtime()
        X, X_valid = self._split_validation(X, fitted.seed + len(fitted.history))
        batch_size = self._check_batch_size(len(X))
        epochs = epochs or self._epochs_for(len(X), batch_size)
        net = self._build_net(
            copy.deepcopy(fitted.module_),
            runtime,
            seed=fitted.seed,
            batch_size=batch_size,
            max_epochs=epochs,
            validation_data=None if X_valid is None else batch_source(X_valid, input_shape),
        )
        net.initialize()
        net.history = copy.deepcopy(fitted.history)
        if not net.resume_optimizers(fitted):
            warn_user(
                f"{type(self).__name__} continues training with new optimizer state: this "
                "transformer was loaded from a file or a pickle that holds only what transform "
                "needs (pickles keep Adam's state with warm_start=True)",
                UserWarning,
            )
        with seeded(net.seed, net.device):
            self._prepare_training(net.module_, X, partial=partial)
            self._train_net(net, batch_source(X, input_shape), epochs, continuing=True)
        self.net_ = net
        self._finish_training(net.module_, partial=partial)

    def _train_net(self, net, data, epochs: int | None, *, continuing: bool = False) -> None:
        training.train(net, data, epochs, on_divergence=self.on_divergence, continuing=continuing)

    def _split_validation(self, X, seed: int):
        """``(X_train, X_valid)``: a random ``validation_fraction`` held out, or ``(X, None)``."""
        if not self.early_stopping:
            return X, None
        return split_validation(X, self.validation_fraction, seed)

    def _check_batch_size(self, n_samples: int) -> int:
        """``batch_size``, capped with a warning at the number of samples.

        As in scikit-learn's MLPs: all the samples then make one batch, the
        most in-batch negatives the data allows.
        """
        if self.batch_size <= n_samples:
            return self.batch_size
        warn_user(
            f"batch_size={self.batch_size} is larger than the number of samples "
            f"(n_samples={n_samples}); using batch_size={n_samples}",
            UserWarning,
        )
        return n_samples

    def _build_checked_module(self, X: np.ndarray, input_shape: tuple[int, ...]) -> nn.Module:
        """``_build_module``, with a user encoder's torch errors made readable."""
        try:
            return self._build_module(X, input_shape)
        except RuntimeError as exc:
            encoder = getattr(self, "encoder", None)
            if not isinstance(encoder, nn.Module | list | tuple):
                raise
            raise ValueError(
                f"The encoder failed on a batch of shape (2, {', '.join(map(str, input_shape))}) "
                f"before training: {exc}"
            ) from exc
