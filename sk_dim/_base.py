"""Estimator logic shared by the sk_dim transformers.

fit, partial_fit, warm starts and transform, and the public seams for code
beside the estimators. What X may be is :mod:`sk_dim._input`'s, where the
network computes :mod:`sk_dim._runtime`'s, and training
:mod:`sk_dim.training`'s; the subclasses only say which torch module to
train and which features to return.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted
from torch import nn

from . import training
from ._fitting import FittingMixin
from ._history import TrainingHistoryMixin
from ._input import (
    as_tensor,
    batch_source,
    scaling_statistics,
    validate_input,
    zero_rows,
)
from ._params import SharedParamsMixin
from ._presets import PresetsMixin
from ._runtime import Runtime, resolve_runtime
from ._torch import seeded, torch_threads
from ._version import DOCS_URL
from .modules.base import LayerFeatures, SelfSupervisedModule


class BaseSelfSupervised(
    FittingMixin,
    SharedParamsMixin,
    TrainingHistoryMixin,
    PresetsMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Base class: fit a self-supervised torch module, transform with its encoder."""

    # Parameters that change what transform returns, not what fit learns.
    _OUTPUT_PARAMS: tuple[str, ...] = ("layer", "pool_size")

    # The values of ``layer`` (each class's own).
    _LAYERS: tuple[str, ...] = ()

    # The HTML repr links to the class's API page (scikit-learn's mechanism).
    _doc_link_module = "sk_dim"
    _doc_link_template = DOCS_URL + "gen_modules/sk_dim.{estimator_name}.html" if DOCS_URL else ""

    # -- what subclasses provide ----------------------------------------------
    @abstractmethod
    def _build_module(self, X: np.ndarray, input_shape: tuple[int, ...]) -> SelfSupervisedModule:
        """The torch module for data like X, with what inference needs.

        Training-only state sized by the training data (CMC's memory bank) is
        :meth:`_prepare_training`'s to add.
        """

    def _check_params(self, input_shape: tuple[int, ...], n_samples: int) -> None:
        """Checks that need the data (the constraints cover the rest)."""

    def _prepare_training(self, module: nn.Module, X: np.ndarray, *, partial: bool) -> None:
        """Set up training-only state sized by the data X about to be trained on.

        Called before every training run: a new fit, a warm-started ``fit``
        and each ``partial_fit`` (``partial=True``).
        """

    def _finish_training(self, module: nn.Module, *, partial: bool) -> None:
        """Drop training-only state that inference does not need, after training."""

    # -- fit / transform ------------------------------------------------------
    def fit(self, X, y=None):
        """Train the network on X.

        With ``warm_start=True`` and a fitted transformer, training continues
        from the fitted network and optimizer state for ``max_epochs`` more
        epochs; otherwise it starts anew.

        Fitting is all or nothing: if it raises (bad input, a diverged
        training with ``on_divergence="raise"``), the transformer is left
        exactly as it was before the call, fitted or not.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data: flattened images (with ``image_shape``), 4-D image
            arrays, or feature vectors. uint8 pixels and floats both work. A
            ``numpy.memmap`` is read one batch at a time.
        y : None
            Ignored; present for Pipeline compatibility.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._validate_params()
        return self._train(X, epochs=None, partial=False)

    def partial_fit(self, X, y=None):
        """Train for one pass over X, continuing from the current network.

        The first call initialises the network (scaling statistics included)
        from X; later calls must pass data of the same shape. Use it to train
        on data that arrives in chunks or does not fit in memory (e.g. with
        ``dask_ml.wrappers.Incremental``). Each call is all or nothing, as
        :meth:`fit` is.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            A chunk of training data, at least 2 samples.
        y : None
            Ignored; present for Pipeline compatibility.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._validate_params()
        return self._train(X, epochs=1, partial=True)

    def _train(self, X, *, epochs: int | None, partial: bool):
        before = dict(self.__dict__)
        try:
            with torch_threads(self.n_threads):
                if (partial or self.warm_start) and self.__sklearn_is_fitted__():
                    self._continue_training(X, epochs, partial)
                else:
                    self._fit_new(X, epochs, partial)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        self._widths = {}
        return self

    def transform(self, X):
        """Embed X with the trained encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Data shaped like the training data. A ``numpy.memmap`` is read one
            batch at a time: memory holds the model, one batch and the output.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out), dtype float32
            The learned features, computed batch by batch.
        """
        check_is_fitted(self)
        self._check_module_params("transform")
        X, _ = validate_input(self, X, reset=False)
        data = batch_source(X, self.input_shape_)
        with torch_threads(self.n_threads):
            return self._embed(data, batch_size=self._inference_batch())

    def _embed(self, data, batch_size: int) -> np.ndarray:
        """Features of ``data`` in the precision and layout the parameters ask for now."""
        return training.embed(
            self.net_, data, self._features, batch_size, self._inference_runtime(self.net_.device)
        )

    def _inference_runtime(self, device: str) -> Runtime:
        """The parameters resolved for inference on ``device``, the network's.

        "auto" and float16 infer in float32 on a CPU that does not compute them.
        """
        return resolve_runtime(device, self.precision, self.channels_last, training=False)

    # -- seams for code beside the estimators (evaluation, persistence, your loops) --
    def to_tensor(self, X) -> torch.Tensor:
        """X validated as :meth:`transform` validates it, as one tensor.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Data shaped like the training data.

        Returns
        -------
        data : torch.Tensor of shape (n_samples,) + ``input_shape_``
            The raw values (uint8 or float32; the network scales its inputs
            itself), sharing X's memory where possible.
        """
        check_is_fitted(self)
        X, input_shape = validate_input(self, X, reset=False)
        return as_tensor(X, input_shape)

    def feature_extractor(self, layer: str | None = None) -> nn.Module:
        """The trained network's feature computation, as an independent torch module.

        Parameters
        ----------
        layer : str or None, default=None
            The layer to read (see the ``layer`` parameter); None reads the
            transformer's own ``layer``.

        Returns
        -------
        extractor : torch.nn.Module
            A copy (float32, in eval mode, on the network's device) of the parts
            of the network that compute the features, mapping a batch of
            :meth:`to_tensor` rows to ``(N, n_features)`` features. Training it
            (e.g. fine-tuning) leaves the transformer unchanged.
        """
        check_is_fitted(self)
        self._check_module_params("read features")
        options = self._feature_options()
        if layer is not None:
            options["layer"] = layer
        module = self.net_.module_
        copy_ = module.inference_copy().float().to(next(module.parameters()).device)
        extractor = LayerFeatures(copy_, options).eval()
        with torch.no_grad():  # an unknown layer raises here, not at first use
            extractor(torch.zeros(2, *self.input_shape_, device=next(copy_.parameters()).device))
        return extractor

    def build_module(self, X) -> SelfSupervisedModule:
        """The untrained torch module that ``fit`` would train on X.

        For training loops of your own: called as ``module(x, index)`` with a
        batch ``x`` of :meth:`to_tensor`-like rows and their positions ``index``
        in X, it returns a dict of loss terms whose ``"loss"`` is to be
        minimised (see :class:`~sk_dim.modules.base.SelfSupervisedModule`).
        The transformer itself is not changed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data.

        Returns
        -------
        module : SelfSupervisedModule
        """
        estimator = clone(self)
        X, input_shape = validate_input(estimator, X, reset=True)
        estimator._check_params(input_shape, len(X))
        estimator.input_shape_ = input_shape
        estimator.image_shape_ = input_shape if len(input_shape) == 3 else None
        module = estimator._build_checked_module(X, input_shape)
        estimator._prepare_training(module, X, partial=False)
        return module

    def inference_state(self) -> dict[str, torch.Tensor]:
        """The weights and buffers that :meth:`transform` needs (no training-only state).

        Raises a ValueError when a parameter the network was built from has been
        changed since fit (see :meth:`fit`): the weights would not match the
        parameters saved beside them.
        """
        check_is_fitted(self)
        self._check_module_params("save")
        module = self.net_.module_
        return {
            key: value
            for key, value in module.state_dict().items()
            if not key.startswith(module.training_state_prefixes)
        }

    def load_inference_state(self, state: dict[str, torch.Tensor], device: str = "cpu") -> None:
        """Build the network for the fitted attributes, load ``state`` into it, set ``net_``.

        The counterpart of :meth:`inference_state`, for code that stores a
        transformer's parts itself (:mod:`sk_dim.persistence` does). The fitted
        attributes (``input_shape_``, ``n_features_in_`` and those each class's
        ``fit`` sets) must be in place. The network is first built on PyTorch's
        ``meta`` device, which allocates nothing, and compared with ``state``
        key by key, so that parameters describing a huge network, or weights
        that fit none, are refused before anything is allocated; then it is
        built from zeros of ``input_shape_`` (the scaling statistics are
        buffers, which ``state`` overwrites) and ``state`` is loaded strictly.
        Training-only state that :meth:`inference_state` leaves out (CMC's
        memory bank) and the optimizers are not rebuilt: a warm-started fit
        starts them anew. A history set beforehand through ``history_`` is
        kept.

        Parameters
        ----------
        state : dict of str to torch.Tensor
            The weights and buffers, as :meth:`inference_state` returns them.
        device : str, default="cpu"
            Where the network is placed (a torch device, not ``"auto"``).

        Raises
        ------
        ValueError
            If the parameters and fitted attributes describe no network, or
            ``state`` does not fit it: the message names the missing, the
            unexpected and the mis-sized keys.
        """
        try:
            with torch.device("meta"):
                module = self._build_module(self._zeros(), self.input_shape_)
        except Exception as exc:  # whatever the builders raise on implausible parameters
            raise ValueError(
                f"the parameters and fitted attributes describe no network: {exc}"
            ) from None
        expected = {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}
        got = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
        if expected != got:
            missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
            problems = [f"Missing keys {missing!r:.80}"] if missing else []
            problems += [f"Unexpected keys {unexpected!r:.80}"] if unexpected else []
            problems += [
                f"size mismatch for {k}: the state has {got[k]}, the network {expected[k]}"
                for k in sorted(set(got) & set(expected))
                if got[k] != expected[k]
            ][:3]
            raise ValueError(f"the weights do not fit the network: {'; '.join(problems)}")
        try:
            with seeded(0, device):
                module = self._build_module(self._zeros(), self.input_shape_)
            module.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"the weights do not fit the network: {exc}") from None
        net = training.build_net(
            module,
            # Compiling would only slow the first transform.
            self._inference_runtime(device),
            lr=self.lr,
            weight_decay=self.weight_decay,
            # Unused: every training run builds its own net, with the epochs of its data.
            max_epochs=1,
            batch_size=self.batch_size,
            verbose=int(self.verbose),
            seed=0,
        )
        net.initialize()
        # New optimizers would look like saved ones: a warm fit must know it starts anew.
        net.drop_optimizers()
        for row in self.__dict__.pop("_restored_history", []):
            net.history.new_epoch()
            for key, value in row.items():
                net.history.record(key, value)
        self.net_ = net
        self._module_params = self._current_module_params()
        self._widths = {}

    @property
    def _n_features_out(self) -> int:
        # Measured for the current output-shaping parameters, which may have been
        # set since fit; remembered per setting, since a probe runs the network.
        self._check_module_params("measure the output")
        key = tuple(repr(getattr(self, name)) for name in self._OUTPUT_PARAMS)
        widths = self.__dict__.setdefault("_widths", {})
        if key not in widths:
            widths[key] = self._probe_width()
        return widths[key]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    def __getstate__(self):
        state = super().__getstate__()
        # Pickles hold what transform needs; the optimizers' state (twice the
        # weights, with Adam) only where warm_start will continue from it.
        if "net_" in state and not self.warm_start:
            state["net_"] = training.without_training_state(state["net_"])
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- helpers --------------------------------------------------------------
    def _scaling(
        self, X: np.ndarray, *, per_feature: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (images) or per-feature (vectors, or when asked) mean and std of X."""
        return scaling_statistics(X, self.input_shape_, per_feature=per_feature)

    def _zeros(self) -> np.ndarray:
        """Two rows of zeros shaped like the training data, without memory (a broadcast row)."""
        return zero_rows(self.input_shape_)

    def _feature_options(self) -> dict:
        """What ``module.features`` reads besides the batch: the output parameters."""
        return {name: getattr(self, name) for name in self._OUTPUT_PARAMS}

    def _features(self, module: SelfSupervisedModule, x: torch.Tensor) -> torch.Tensor:
        return module.features(x, **self._feature_options())

    def _probe_width(self) -> int:
        probe = torch.zeros(2, *self.input_shape_, dtype=torch.float32)
        return self._embed(probe, batch_size=2).shape[1]

    def _inference_batch(self) -> int:
        return max(self.batch_size, 256)
