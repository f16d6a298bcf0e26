"""Estimator logic shared by the sk_dim transformers.

Input validation, image shapes, pixel scaling, device choice, seeding,
training through :mod:`sk_dim.nets` and batched transform live here; the
subclasses only say which torch module to train and which features to
return.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from . import nets
from ._shapes import infer_image_shape
from ._torch import (
    PRECISIONS,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
    seeded,
    torch_threads,
)
from ._version import DOCS_URL, versions
from ._warn import warn_user
from .modules.base import LayerFeatures, SelfSupervisedModule
from .views.makers import nonzero_std

# Rows read at a time for the scaling statistics: their float64 copy is 8x this.
_STATS_CHUNK_BYTES = 2**20
# More threads than any machine has cores: libgomp would abort the process
# allocating their stacks rather than raise.
MAX_THREADS = 1024
# accelerate's names for the precisions (see ``precision_``).
_ACCELERATE_PRECISIONS = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of constructor parameters (see ``from_preset``), with its use and cost."""

    params: dict
    use: str
    cost: str


class BaseSelfSupervised(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class: fit a self-supervised torch module, transform with its encoder."""

    _parameter_constraints: dict = {
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "image_shape": [StrOptions({"auto"}), tuple, None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "device": [str],
        "n_threads": [Interval(Integral, 1, MAX_THREADS, closed="both"), None],
        "accelerate": ["boolean", dict, None],
        "on_divergence": [StrOptions({"raise", "keep_last"})],
        "precision": [StrOptions(set(PRECISIONS))],
        "channels_last": [StrOptions({"auto"}), "boolean"],
        "compile": ["boolean"],
        "warm_start": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "callbacks": [list, tuple, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # Parameters that change what transform returns, not what fit learns.
    _OUTPUT_PARAMS: tuple[str, ...] = ("layer", "pool_size")

    # Parameters the torch module is built from. Once fitted, the network holds
    # them: changing one makes transform, save and further training refuse (see
    # fit); every other parameter takes effect at the next call that uses it.
    _MODULE_PARAMS: tuple[str, ...] = ("embedding_dim", "encoder", "image_shape")

    # The values of ``layer`` (each class's own).
    _LAYERS: tuple[str, ...] = ()

    # Named parameter sets measured in the benchmarks: {name: Preset}, listed by
    # presets() and documented in each subclass's Notes.
    _PRESETS: dict[str, Preset] = {}

    # The HTML repr links to the class's API page (scikit-learn's mechanism).
    _doc_link_module = "sk_dim"
    _doc_link_template = DOCS_URL + "gen_modules/sk_dim.{estimator_name}.html" if DOCS_URL else ""

    @classmethod
    def from_preset(cls, name: str, **params):
        """A new transformer with the parameters of the preset ``name``, then ``params``.

        A preset is only a set of constructor parameters: the result is an
        ordinary unfitted transformer, and ``params`` override the preset's
        values (e.g. ``random_state``, or ``max_epochs`` for another budget).

        Parameters
        ----------
        name : str
            A preset of this class (see the class's Notes).
        **params
            Further constructor parameters.

        Returns
        -------
        transformer
            ``cls(**{**preset, **params})``.
        """
        if name not in cls._PRESETS:
            raise ValueError(
                f"{cls.__name__} has no preset {name!r}; the presets are {sorted(cls._PRESETS)}"
            )
        return cls(**{**cls._PRESETS[name].params, **params})

    @classmethod
    def presets(cls) -> pd.DataFrame:
        """The presets of :meth:`from_preset`: what each sets, what it is for and costs.

        Returns
        -------
        presets : pandas.DataFrame
            One row per preset (the index is its name), with the columns
            ``params`` (the constructor parameters it sets), ``use`` (the data
            it was tuned for) and ``cost`` (the fit time measured in the
            benchmarks, on 2 CPU cores).
        """
        rows = {name: copy.deepcopy(vars(preset)) for name, preset in cls._PRESETS.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["params", "use", "cost"])

    def _validate_params(self) -> None:
        super()._validate_params()
        # bool is an int to Python and to scikit-learn's Interval: embedding_dim=True
        # would pass, and fail later in torch with an unreadable error.
        for name, constraints in self._parameter_constraints.items():
            value = getattr(self, name)
            if (
                isinstance(value, bool | np.bool_)
                and "boolean" not in constraints
                and any(isinstance(c, Interval) and c.type is Integral for c in constraints)
            ):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, "
                    f"got the bool {value!r}"
                )

    # -- what subclasses provide ----------------------------------------------
    @abstractmethod
    def _build_module(self, X: np.ndarray, input_shape: tuple[int, ...]) -> SelfSupervisedModule:
        """The torch module for data like X, with what inference needs.

        Training-only state sized by the training data (CMC's memory bank) is
        :meth:`_prepare_training`'s to add.
        """

    def _check_params(self, input_shape: tuple[int, ...], n_samples: int) -> None:
        """Checks that need the data (the constraints cover the rest)."""

    def _check_fitted_attributes(self) -> None:
        """Check fitted attributes read from a file (sizes, counts) before anything is built.

        Subclasses extend it for their own fitted attributes.
        """
        shape, n_features = self.input_shape_, self.n_features_in_
        if not (
            isinstance(shape, tuple)
            and len(shape) in (1, 3)
            and all(isinstance(s, int) and s >= 1 for s in shape)
            and math.prod(shape) == n_features
        ):
            raise ValueError(f"invalid input_shape_ {shape!r:.80}")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and (
            not isinstance(names, np.ndarray) or names.shape != (n_features,)
        ):
            raise ValueError("feature_names_in_ does not hold n_features_in_ names")

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
                    self._continue_training(X, epochs or self.max_epochs, partial)
                else:
                    self._fit_new(X, epochs, partial)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        self._widths = {}
        return self

    def _fit_new(self, X, epochs: int | None, partial: bool) -> None:
        accelerator = self._make_accelerator()
        device = self._check_device(accelerator)
        X, input_shape = self._validate_input(X, reset=True)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if accelerator is not None and accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            # One seed for all processes, even with random_state=None: they
            # must draw the same order each epoch to take disjoint shards of it.
            seed = broadcast_object_list([seed])[0]
        X, X_valid = self._split_validation(X, seed)
        self._check_params(input_shape, len(X))
        batch_size = self._check_batch_size(len(X))
        self.input_shape_ = input_shape
        self.image_shape_ = input_shape if len(input_shape) == 3 else None
        # What "auto" meant on this device, recorded; float16 on a CPU raises.
        self.precision_ = resolve_precision(self.precision, device)
        self.channels_last_ = resolve_channels_last(self.channels_last, device)
        if accelerator is not None:  # then the accelerator's mixed precision applies
            self.precision_ = _ACCELERATE_PRECISIONS.get(
                accelerator.mixed_precision, str(accelerator.mixed_precision)
            )
        with seeded(seed, device):
            module = self._checked_module(X, input_shape)
            self._prepare_training(module, X, partial=partial)
            net = self._make_net(
                module,
                device=device,
                seed=seed,
                batch_size=batch_size,
                accelerator=accelerator,
                validation_data=None if X_valid is None else _batch_source(X_valid, input_shape),
            )
            self._run(net, _batch_source(X, input_shape), epochs)
        # A plain net: it pickles, and transforms, without accelerate.
        self.net_ = nets.without_accelerator(net)
        self._finish_training(self.net_.module_, partial=partial)
        self._module_params = self._current_module_params()
        self.versions_ = versions()

    def _make_net(
        self,
        module: nn.Module,
        *,
        device: str,
        seed: int,
        batch_size: int,
        accelerator=None,
        validation_data=None,
    ):
        """The net that trains ``module`` with the training parameters as they are now.

        Every fit builds one, a warm one included, so that ``set_params`` of a
        training parameter (``lr``, ``callbacks``, ``early_stopping``, ...) takes
        effect at the next fit.
        """
        return nets.make_net(
            module,
            lr=self.lr,
            weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            batch_size=batch_size,
            device=device,
            verbose=int(self.verbose),
            seed=seed,
            keep_last_finite=self.on_divergence == "keep_last",
            accelerator=accelerator,
            # The parameters, not precision_ / channels_last_: the net resolves
            # "auto" again wherever it later runs (e.g. unpickled on a CPU).
            precision=self.precision,
            channels_last=self.channels_last,
            compile=self.compile,
            callbacks=copy.deepcopy(list(self.callbacks or ())),
            validation_data=validation_data,
            n_iter_no_change=self.n_iter_no_change if self.early_stopping else None,
            tol=self.tol,
        )

    def _continue_training(self, X, epochs: int, partial: bool) -> None:
        """Train a copy of the fitted network, then keep it if training succeeds."""
        if self.accelerate not in (None, False):
            raise ValueError(
                "warm_start and partial_fit continue training without accelerate; set "
                "accelerate=None, or fit anew (warm_start=False)"
            )
        self._check_module_params("continue training")
        X, input_shape = self._validate_input(X, reset=False)
        fitted = self.net_
        device = self._check_device()
        X, X_valid = self._split_validation(X, fitted.seed + len(fitted.history))
        net = self._make_net(
            copy.deepcopy(fitted.module_),
            device=device,
            seed=fitted.seed,
            batch_size=self._check_batch_size(len(X)),
            validation_data=None if X_valid is None else _batch_source(X_valid, input_shape),
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
        self.precision_ = resolve_precision(self.precision, device)
        self.channels_last_ = resolve_channels_last(self.channels_last, device)
        with seeded(net.seed, net.device):
            self._prepare_training(net.module_, X, partial=partial)
            self._run(net, _batch_source(X, input_shape), epochs, continuing=True)
        self.net_ = net
        self._finish_training(net.module_, partial=partial)

    def _run(self, net, data, epochs: int | None, *, continuing: bool = False) -> None:
        """Train ``net`` on ``data``, applying ``on_divergence`` and reporting Ctrl-C."""
        try:
            if continuing:
                net.partial_fit(data, epochs=epochs)
            else:
                net.fit(data, epochs=epochs)
            # Callbacks run after each epoch's own check and may have changed the weights.
            net.check_finite_weights(len(net.history))
        except nets.TrainingDiverged as exc:
            if self.on_divergence == "raise" or net.last_finite_state_ is None:
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

    def _split_validation(self, X, seed: int):
        """``(X_train, X_valid)``: a random ``validation_fraction`` held out, or ``(X, None)``."""
        if not self.early_stopping:
            return X, None
        n_valid = math.ceil(self.validation_fraction * len(X))
        if n_valid < 2 or len(X) - n_valid < 2:
            raise ValueError(
                f"early_stopping needs at least 2 training and 2 validation samples: "
                f"validation_fraction={self.validation_fraction} of {len(X)} samples leaves "
                f"{len(X) - n_valid} and {n_valid}"
            )
        order = np.random.default_rng(seed).permutation(len(X))
        # Sorted rows: sequential reads from a memmap. Both parts are copies.
        return X[np.sort(order[n_valid:])], X[np.sort(order[:n_valid])]

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
        X, _ = self._validate_input(X, reset=False)
        data = _batch_source(X, self.input_shape_)
        with torch_threads(self.n_threads):
            return self._embed(data, batch_size=self._inference_batch())

    def _embed(self, data, batch_size: int) -> np.ndarray:
        """Features of ``data`` in the precision and layout the parameters ask for now."""
        device = self.net_.device
        return nets.embed(
            self.net_,
            data,
            self._features,
            batch_size=batch_size,
            # Resolved for the device the network is on: "auto" and float16 infer in
            # float32 on a CPU that does not compute them.
            precision=resolve_precision(self.precision, device, strict=False),
            channels_last=resolve_channels_last(self.channels_last, device),
        )

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
        X, input_shape = self._validate_input(X, reset=False)
        return _as_tensor(X, input_shape)

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

    def make_module(self, X) -> SelfSupervisedModule:
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
        X, input_shape = estimator._validate_input(X, reset=True)
        estimator._check_params(input_shape, len(X))
        estimator.input_shape_ = input_shape
        estimator.image_shape_ = input_shape if len(input_shape) == 3 else None
        module = estimator._checked_module(X, input_shape)
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

    @classmethod
    def from_saved(
        cls,
        params: dict,
        fitted: dict | None = None,
        state: dict[str, torch.Tensor] | None = None,
        *,
        history: pd.DataFrame | None = None,
        device: str = "cpu",
    ):
        """A transformer rebuilt from what :meth:`inference_state` and its attributes hold.

        :func:`sk_dim.load` reads these from a file; they are checked as
        untrusted: the parameters against their constraints, the fitted
        attributes for plausible sizes, then the network is built on PyTorch's
        meta device (no memory) and compared with ``state`` key by key, so that
        a file describing a huge network, or weights that fit no network, is
        refused before anything is allocated; non-finite weights are refused too.

        Parameters
        ----------
        params : dict
            Constructor parameters.
        fitted : dict or None, default=None
            Fitted attributes (``input_shape_``, ``n_features_in_``, ...); None
            for an unfitted transformer.
        state : dict of str to torch.Tensor or None, default=None
            The weights, as returned by :meth:`inference_state`.
        history : pandas.DataFrame or None, default=None
            The training history to restore as ``history_``.
        device : str, default="cpu"
            Where the network is placed.

        Returns
        -------
        transformer : object

        Raises
        ------
        ValueError
            Naming what does not fit.
        """
        estimator = cls(**params)
        estimator._validate_params()
        if fitted is None:
            return estimator
        for key, value in fitted.items():
            setattr(estimator, key, value)
        if history is not None:
            estimator.history_ = history
        estimator._load_inference_state(state, device)
        return estimator

    def _load_inference_state(self, state: dict[str, torch.Tensor], device: str) -> None:
        self._check_fitted_attributes()
        try:
            with torch.device("meta"):
                module = self._build_module(self._zeros(), self.input_shape_)
        except Exception as exc:  # whatever the builders raise on parameters from a file
            raise ValueError(
                f"the saved parameters and fitted attributes describe no network: {exc}"
            ) from None
        expected = {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}
        got = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
        if expected != got:
            missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
            problems = [f"Missing keys {missing!r:.80}"] if missing else []
            problems += [f"Unexpected keys {unexpected!r:.80}"] if unexpected else []
            problems += [
                f"size mismatch for {k}: the file has {got[k]}, the network {expected[k]}"
                for k in sorted(set(got) & set(expected))
                if got[k] != expected[k]
            ][:3]
            raise ValueError(f"the weights do not fit the network: {'; '.join(problems)}")
        for key, value in state.items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise ValueError(
                    f"the weight {key!r} holds NaN or infinite values; the transformer "
                    "would return non-finite features"
                )
        try:
            self._rebuild_for_inference(state, device)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"the weights do not fit the network: {exc}") from None
        self._check_finite_features()

    @property
    def history_(self) -> pd.DataFrame:
        """One row per completed epoch, read from the network: always in step with it."""
        if "net_" not in self.__dict__:
            raise AttributeError("history_: the transformer is not fitted")
        return _history_frame(self.net_.history)

    @history_.setter
    def history_(self, frame: pd.DataFrame) -> None:
        # sk_dim.load restores a saved history before it rebuilds the network.
        self._restored_history = [
            {"epoch": int(epoch), **{k: v for k, v in row.items() if pd.notna(v)}}
            for epoch, row in frame.to_dict("index").items()
        ]

    @property
    def n_iter_(self) -> int:
        """Number of epochs trained so far, over all ``fit`` and ``partial_fit`` calls."""
        return len(self.history_)

    @property
    def loss_curve_(self) -> list[float]:
        """The training loss of every epoch trained so far (``history_["train_loss"]``)."""
        return self.history_["train_loss"].tolist() if "train_loss" in self.history_ else []

    @property
    def validation_scores_(self) -> list[float] | None:
        """The held-out loss of every epoch (``history_["valid_loss"]``), or None.

        NaN for an epoch trained without ``early_stopping`` (in a warm start);
        None when no epoch was. Losses, not scores: lower is better.
        """
        history = self.history_
        return history["valid_loss"].tolist() if "valid_loss" in history else None

    @property
    def best_loss_(self) -> float | None:
        """The lowest held-out loss of the last fit, whose epoch's weights were kept; or None.

        Read from ``history_``: the ``valid_loss`` of the last epoch marked
        ``valid_loss_best``. None when the last epoch was trained without
        ``early_stopping``.
        """
        history = self.history_
        if "valid_loss_best" not in history or pd.isna(history["valid_loss"].iloc[-1]):
            return None
        best = history.index[history["valid_loss_best"].eq(True)]
        return float(history.loc[best[-1], "valid_loss"])

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
            state["net_"] = nets.without_training_state(state["net_"])
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- helpers --------------------------------------------------------------
    def _make_accelerator(self):
        """The ``accelerate.Accelerator`` of this fit, or None to train with plain skorch.

        Made per fit from plain options, so that clones and pickles of the
        transformer never carry an accelerator and the modules it prepared.
        """
        if self.accelerate is None or self.accelerate is False:
            return None
        if self.precision not in ("auto", "float32"):
            raise ValueError(
                f"precision={self.precision!r} cannot be combined with accelerate: set the "
                "accelerator's instead, e.g. accelerate={'mixed_precision': 'bf16'}"
            )
        try:
            from accelerate import Accelerator
        except ImportError:
            raise ImportError(
                "accelerate=... needs Hugging Face Accelerate: pip install accelerate (or "
                "pip install -e '.[accelerate]' from a source checkout)"
            ) from None
        accelerator = Accelerator(**({} if self.accelerate is True else self.accelerate))
        if accelerator.gradient_accumulation_steps > 1:
            # Skipped zero_grad calls would add the encoder's loss gradients to
            # those of DIM's discriminator.
            raise ValueError(
                "accelerate: gradient accumulation is not supported; raise batch_size or "
                "train on more processes"
            )
        return accelerator

    def _check_device(self, accelerator=None) -> str:
        if accelerator is not None:
            # accelerate places the module (e.g. on this process's GPU under
            # `accelerate launch`); the batches must go to the same device.
            device, placed = str(accelerator.device), accelerator.device
            wanted = torch.device(resolve_device(self.device))
            if wanted.type != placed.type or wanted.index not in (None, placed.index):
                raise ValueError(
                    f"device={self.device!r} differs from the accelerator's device {device!r}; "
                    "leave device='auto' with accelerate (choose devices through accelerate, "
                    "e.g. accelerate={'cpu': True} or `accelerate launch`)"
                )
            return device
        device = resolve_device(self.device)
        try:
            parsed = torch.device(device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"device={self.device!r} is not a torch device: {exc}") from None
        if parsed.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} needs CUDA, which is not available; use "
                "device='cpu' or 'auto'"
            )
        if parsed.type not in ("cpu", "cuda"):
            try:
                torch.empty(1, device=parsed)
            except (RuntimeError, AssertionError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
                raise ValueError(
                    f"device={self.device!r} is not available here ({reason}); use "
                    "device='cpu' or 'auto'"
                ) from None
        return device

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

    def _checked_module(self, X: np.ndarray, input_shape: tuple[int, ...]) -> nn.Module:
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

    def _rebuild_for_inference(self, state_dict: dict, device: str) -> None:
        """Rebuild ``net_`` untrained for the fitted input shape, then load weights.

        The fitted attributes (``input_shape_`` and those ``_check_params``
        sets) must be in place. The module is built from zeros of the saved
        shape: the scaling statistics are buffers, overwritten by
        ``state_dict``. Training-only state absent from ``state_dict`` (CMC's
        memory bank) is dropped. Loads strictly: missing or unexpected keys
        and wrong shapes raise.
        """
        with seeded(0, device):
            module = self._build_module(self._zeros(), self.input_shape_)
        module.load_state_dict(state_dict, strict=True)
        net = nets.make_net(
            module,
            lr=self.lr,
            weight_decay=self.weight_decay,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            device=device,
            verbose=int(self.verbose),
            seed=0,
            # Resolved for the load device: "auto" and float16 infer in float32
            # on a CPU; compiling would only slow the first transform.
            precision=self.precision,
            channels_last=self.channels_last,
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

    def _check_finite_features(self) -> None:
        """Refuse weights that are finite but give non-finite features.

        A zero standard deviation, a huge weight or a negative running variance
        turns finite inputs into inf or NaN: every layer is run on a few probe rows
        (zeros, ones, and uniform values on the 0..1 and 0..255 pixel scales).
        """
        key = nets.first_weight_beyond_limit(self.net_.module_)
        if key is not None:
            raise ValueError(
                f"the weight {key!r} holds values larger than {nets.WEIGHT_LIMIT:g}, which "
                "training never produces; the transformer would return meaningless features"
            )
        width = math.prod(self.input_shape_)
        generator = torch.Generator().manual_seed(0)
        probe = torch.cat(
            [
                torch.zeros(1, width),
                torch.ones(1, width),
                torch.rand(1, width, generator=generator),
                255 * torch.rand(1, width, generator=generator),
            ]
        ).view(4, *self.input_shape_)
        for layer in self._LAYERS:
            options = {**self._feature_options(), "layer": layer}
            try:
                features = nets.embed(
                    self.net_,
                    probe,
                    lambda module, x, options=options: module.features(x, **options),
                    batch_size=4,
                    precision="float32",
                )
            except ValueError:  # a layer this encoder does not have (e.g. "conv" of an MLP)
                continue
            if not np.isfinite(features).all():
                raise ValueError(
                    f"the weights give non-finite features at layer={layer!r} on finite "
                    "inputs (e.g. a zero standard deviation or a negative running variance)"
                )

    def _current_module_params(self) -> dict:
        """The values of the parameters the network is built from, as they are now."""
        return {
            name: value if _holds_module(value) else copy.deepcopy(value)
            for name, value in ((n, getattr(self, n)) for n in self._MODULE_PARAMS)
        }

    def _check_module_params(self, action: str) -> None:
        """Refuse to ``action`` when a parameter the network was built from changed since fit."""
        built = self.__dict__.get("_module_params")
        if built is None:  # unfitted, or pickled by a version that did not record them
            return
        changed = [name for name, value in built.items() if not _same(getattr(self, name), value)]
        if changed:
            details = "; ".join(
                f"{name}={built[name]!r:.60} at fit, {getattr(self, name)!r:.60} now"
                for name in changed
            )
            raise ValueError(
                f"Cannot {action}: {details}. The fitted network was built from these "
                "parameters; set them back, or fit anew (with warm_start=False)"
            )

    def _validate_input(self, X, *, reset: bool) -> tuple[np.ndarray, tuple[int, ...]]:
        nd_shape = None
        if isinstance(X, np.ndarray | torch.Tensor) and X.ndim >= 3:
            X = np.asarray(X)
            if X.ndim > 4:
                raise ValueError(f"Expected 2-D, 3-D or 4-D data, got shape {X.shape}")
            _check_channels_first(X.shape)
            nd_shape = (1, *X.shape[1:]) if X.ndim == 3 else tuple(X.shape[1:])
            X = X.reshape(len(X), -1)
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float32, np.float64, np.uint8],
            ensure_min_samples=2 if reset else 1,
        )
        _check_float32_range(X)
        if reset:
            return X, self._resolve_input_shape(X, nd_shape)
        if nd_shape is not None and nd_shape != self.image_shape_:
            raise ValueError(
                f"X has images of shape {nd_shape}, but {type(self).__name__} was fitted on "
                f"images of shape {self.image_shape_}"
            )
        return X, self.input_shape_

    def _resolve_input_shape(self, X: np.ndarray, nd_shape) -> tuple[int, ...]:
        n_features = X.shape[1]
        shape = self.image_shape
        if shape == "auto":
            shape = nd_shape or infer_image_shape(X)
        elif shape is not None:
            if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in shape):
                raise ValueError(f"image_shape={self.image_shape} must hold 3 ints (C, H, W)")
            shape = tuple(int(s) for s in shape)
            if len(shape) != 3 or min(shape) < 1 or math.prod(shape) != n_features:
                raise ValueError(
                    f"image_shape={self.image_shape} does not match X with {n_features} "
                    "features: expected (C, H, W) with C*H*W == n_features"
                )
            if nd_shape is not None and nd_shape != shape:
                raise ValueError(f"image_shape={shape} does not match X's images {nd_shape}")
        return tuple(shape) if shape is not None else (n_features,)

    def _scaling(
        self, X: np.ndarray, *, per_feature: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (images) or per-feature (vectors, or when asked) mean and std of X.

        Two passes over chunks of rows in float64: exact, with memory bounded
        by a chunk whatever the size of X (a memmap included).
        """
        images = len(self.input_shape_) == 3 and not per_feature
        width = self.input_shape_[0] if images else math.prod(self.input_shape_)
        view = (1, width, 1, 1) if images else (1, width)

        def columns(chunk):  # (rows, width, values per row and column)
            return chunk.reshape(len(chunk), width, -1)

        total, count = np.zeros(width), 0
        for chunk in nets.iter_row_chunks(X, chunk_bytes=_STATS_CHUNK_BYTES):
            cols = columns(chunk)
            total += cols.sum(axis=(0, 2), dtype=np.float64)
            count += cols.shape[0] * cols.shape[2]
        mean = total / count
        squares = np.zeros(width)
        for chunk in nets.iter_row_chunks(X, chunk_bytes=_STATS_CHUNK_BYTES):
            centred = columns(chunk) - mean[None, :, None]
            squares += np.einsum("ijk,ijk->j", centred, centred)
        mean, std = torch.tensor(mean), torch.tensor(np.sqrt(squares / count))
        return mean.view(view), nonzero_std(std, mean).view(view)

    def _zeros(self) -> np.ndarray:
        """Two rows of zeros shaped like the training data, without memory (a broadcast row)."""
        row = np.zeros((1, math.prod(self.input_shape_)), dtype=np.float32)
        return np.broadcast_to(row, (2, row.shape[1]))

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


def _as_tensor(X: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A (n, *input_shape) tensor sharing X's memory where possible."""
    if X.dtype == np.float64:
        X = X.astype(np.float32)
    elif not X.flags.writeable:  # e.g. a read-only memmap from joblib
        X = np.array(X)
    return torch.from_numpy(np.ascontiguousarray(X)).view(len(X), *input_shape)


def _batch_source(X: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor | np.ndarray:
    """What the net reads batches from, shaped ``(n, *input_shape)``, without copying X.

    An in-memory uint8 or float32 array becomes a tensor sharing its memory;
    anything else (a memmap, a read-only or float64 array) stays a numpy
    array, read and converted one batch at a time.
    """
    in_memory = (
        nets.memmap_of(X) is None
        and X.dtype != np.float64
        and X.flags.writeable
        and X.flags.c_contiguous
    )
    if in_memory:
        return torch.from_numpy(X).view(len(X), *input_shape)
    return X.reshape(len(X), *input_shape)


def _holds_module(value) -> bool:
    """Whether a parameter value is or contains torch modules (compared by identity)."""
    if isinstance(value, list | tuple):
        return any(_holds_module(v) for v in value)
    return isinstance(value, nn.Module)


def _same(a, b) -> bool:
    """Whether two parameter values are the same (modules: the same objects)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays, whose == is elementwise
        return False


def _check_channels_first(shape: tuple[int, ...]) -> None:
    """Refuse 4-D arrays that look channels-last ``(N, H, W, C)``; sk_dim reads ``(N, C, H, W)``."""
    if len(shape) == 4 and shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        raise ValueError(
            f"X has shape {shape}, which looks like channels-last images (N, H, W, C) with "
            f"C={shape[3]}; sk_dim reads (N, C, H, W): pass X.transpose(0, 3, 1, 2) (or "
            "np.moveaxis(X, -1, 1))"
        )


def _check_float32_range(X: np.ndarray) -> None:
    """Refuse float64 values that float32, the network's arithmetic, turns into inf."""
    if X.dtype != np.float64:
        return
    limit = np.finfo(np.float32).max
    for chunk in nets.iter_row_chunks(X):
        if max(chunk.max(initial=0.0), -chunk.min(initial=0.0)) > limit:
            raise ValueError(
                f"X has values beyond the float32 range (|x| > {limit:.3g}), which the network "
                "computes in; rescale X (e.g. with StandardScaler) first"
            )


def _history_frame(history) -> pd.DataFrame:
    """One row per completed epoch (an interrupted or diverged one is left out)."""
    rows = [
        {k: v for k, v in row.items() if k != "batches"} for row in history if "train_loss" in row
    ]
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="epoch", dtype=np.int64))
    return pd.DataFrame(rows).set_index("epoch")
