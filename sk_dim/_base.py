"""Estimator logic shared by the sk_dim transformers.

Input validation, image shapes, pixel scaling, device choice, seeding,
training through :mod:`sk_dim.nets` and batched transform live here; the
subclasses only say which torch module to train and which features to
return.
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from . import nets
from ._torch import (
    PRECISIONS,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
    seeded,
    torch_threads,
)

# Square images at least this wide are recognised without an image_shape.
MIN_INFERRED_SIDE = 8
# accelerate's names for the precisions (see ``precision_``).
_ACCELERATE_PRECISIONS = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}


def infer_image_shape(n_features: int) -> tuple[int, int, int] | None:
    """Square grayscale or RGB images, or ``None`` for feature vectors."""
    for channels in (1, 3):
        side = math.isqrt(n_features // channels)
        if side * side * channels == n_features and side >= MIN_INFERRED_SIDE:
            return (channels, side, side)
    return None


class BaseSelfSupervised(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class: fit a self-supervised torch module, transform with its encoder."""

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "image_shape": [StrOptions({"auto"}), tuple, None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "device": [str],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "accelerate": ["boolean", dict, None],
        "on_divergence": [StrOptions({"raise", "keep_last"})],
        "precision": [StrOptions(set(PRECISIONS))],
        "channels_last": [StrOptions({"auto"}), "boolean"],
        "compile": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # -- what subclasses provide ----------------------------------------------
    @abstractmethod
    def _build_module(self, X: np.ndarray, input_shape: tuple[int, ...]) -> nn.Module:
        """The torch module to train on X, called as ``module(x, index)``."""

    @abstractmethod
    def _features(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Features returned by ``transform`` for one batch of raw inputs."""

    def _check_params(self, input_shape: tuple[int, ...], n_samples: int) -> None:
        """Checks that need the data (the constraints cover the rest)."""

    # -- fit / transform ------------------------------------------------------
    def fit(self, X, y=None):
        """Train the network on X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data: flattened images (with ``image_shape``), 4-D image
            arrays, or feature vectors. uint8 pixels and floats both work.
        y : None
            Ignored; present for Pipeline compatibility.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._validate_params()
        with torch_threads(self.n_threads):
            return self._fit(X)

    def _fit(self, X):
        accelerator = self._make_accelerator()
        device = self._check_device(accelerator)
        X, input_shape = self._validate_input(X, reset=True)
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

        on_divergence = self.on_divergence
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if accelerator is not None and accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            # One seed for all processes, even with random_state=None: they
            # must draw the same order each epoch to take disjoint shards of it.
            seed = broadcast_object_list([seed])[0]
        data = _as_tensor(X, input_shape)
        with seeded(seed, device):
            module = self._checked_module(X, input_shape)
            net = nets.make_net(
                module,
                lr=self.lr,
                max_epochs=self.max_epochs,
                batch_size=batch_size,
                device=device,
                verbose=int(self.verbose),
                seed=seed,
                keep_last_finite=on_divergence == "keep_last",
                accelerator=accelerator,
                # The parameters, not precision_ / channels_last_: the net resolves
                # "auto" again wherever it later runs (e.g. unpickled on a CPU).
                precision=self.precision,
                channels_last=self.channels_last,
                compile=self.compile,
            )
            try:
                net.fit(data)
            except nets.TrainingDiverged as exc:
                if on_divergence == "raise" or net.last_finite_state_ is None:
                    raise
                net.module_.load_state_dict(net.last_finite_state_)
                warnings.warn(
                    f"{exc} on_divergence='keep_last': keeping the weights from the end of "
                    f"epoch {exc.epoch - 1}.",
                    UserWarning,
                    stacklevel=3,
                )
        del net.last_finite_state_  # a copy of the weights: not worth persisting
        if net.interrupted_ is not None:
            warnings.warn(
                f"Training was interrupted (KeyboardInterrupt) during epoch {net.interrupted_} "
                f"of {self.max_epochs}; the transformer keeps the weights reached then.",
                UserWarning,
                stacklevel=3,
            )

        # A plain net: it pickles, and transforms, without accelerate.
        self.net_ = net = nets.without_accelerator(net)
        self.history_ = _history_frame(net.history)
        self.versions_ = _versions()
        self._n_features_out = self._probe_width()
        return self

    def transform(self, X):
        """Embed X with the trained encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Data shaped like the training data.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out), dtype float32
            The learned features, computed batch by batch.
        """
        check_is_fitted(self)
        X, _ = self._validate_input(X, reset=False)
        data = _as_tensor(X, self.input_shape_)
        with torch_threads(self.n_threads):
            return nets.embed(self.net_, data, self._features, batch_size=self._inference_batch())

    def save(self, path) -> None:
        """Save the fitted transformer without pickle (see :func:`sk_dim.persistence.save`).

        Parameters
        ----------
        path : str or os.PathLike
            File to write: a zip of the parameters as JSON and the weights
            as tensors, read back with :func:`sk_dim.load`.
        """
        from .persistence import save

        save(self, path)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    def __setstate__(self, state):
        # Pickles from an older sk_dim lack the parameters added since. They get
        # the defaults, as sk_dim.load gives them, so that get_params, clone and
        # repr keep working; the trained network is unaffected.
        defaults = type(self)().get_params(deep=False)
        super().__setstate__({**defaults, **state})

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
                "accelerate=... needs Hugging Face Accelerate: pip install 'sk-dim[accelerate]'"
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
        return device

    def _check_batch_size(self, n_samples: int) -> int:
        """``batch_size``, capped with a warning at the number of samples.

        As in scikit-learn's MLPs: all the samples then make one batch, the
        most in-batch negatives the data allows.
        """
        if self.batch_size <= n_samples:
            return self.batch_size
        warnings.warn(
            f"batch_size={self.batch_size} is larger than the number of samples "
            f"(n_samples={n_samples}); using batch_size={n_samples}",
            UserWarning,
            stacklevel=4,
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
        # Zeros without memory: a broadcast row. Enough rows for state sized by
        # the data at build time (CMC checks its negatives against the bank).
        n_rows = max(2, getattr(self, "n_negatives_", 0) + 1)
        row = np.zeros((1, math.prod(self.input_shape_)), dtype=np.float32)
        dummy = np.broadcast_to(row, (n_rows, row.shape[1]))
        with seeded(0, device):
            module = self._build_module(dummy, self.input_shape_)
        if hasattr(module, "drop_contrast") and not any(
            key.startswith("contrast.") for key in state_dict
        ):
            module.drop_contrast()
        module.load_state_dict(state_dict, strict=True)
        net = nets.make_net(
            module,
            lr=self.lr,
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
        self.net_ = net
        self._n_features_out = self._probe_width()

    def _validate_input(self, X, *, reset: bool) -> tuple[np.ndarray, tuple[int, ...]]:
        nd_shape = None
        if isinstance(X, np.ndarray | torch.Tensor) and X.ndim >= 3:
            X = np.asarray(X)
            nd_shape = (1, *X.shape[1:]) if X.ndim == 3 else tuple(X.shape[1:])
            if X.ndim > 4:
                raise ValueError(f"Expected 2-D, 3-D or 4-D data, got shape {X.shape}")
            X = X.reshape(len(X), -1)
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float32, np.float64, np.uint8],
            ensure_min_samples=2 if reset else 1,
        )
        if reset:
            return X, self._resolve_input_shape(X.shape[1], nd_shape)
        if nd_shape is not None and nd_shape != self.image_shape_:
            raise ValueError(
                f"X has images of shape {nd_shape}, but {type(self).__name__} was fitted on "
                f"images of shape {self.image_shape_}"
            )
        return X, self.input_shape_

    def _resolve_input_shape(self, n_features: int, nd_shape) -> tuple[int, ...]:
        shape = self.image_shape
        if shape == "auto":
            shape = nd_shape or infer_image_shape(n_features)
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
        """Per-channel (images) or per-feature (vectors, or when asked) mean and std of X."""
        if len(self.input_shape_) == 3 and not per_feature:
            channels = self.input_shape_[0]
            rows = X.reshape(len(X), channels, -1)
            mean = rows.mean(axis=(0, 2), dtype=np.float64)
            std = rows.std(axis=(0, 2), dtype=np.float64)
            view = (1, channels, 1, 1)
        else:
            X = X.reshape(len(X), -1)
            mean = X.mean(axis=0, dtype=np.float64)
            std = X.std(axis=0, dtype=np.float64)
            view = (1, X.shape[1])
        std = np.where(std > 1e-8 * max(1.0, np.abs(mean).max()), std, 1.0)
        return torch.tensor(mean).view(view), torch.tensor(std).view(view)

    def _probe_width(self) -> int:
        probe = torch.zeros(2, *self.input_shape_, dtype=torch.float32)
        return nets.embed(self.net_, probe, self._features, batch_size=2).shape[1]

    def _inference_batch(self) -> int:
        return max(self.batch_size, 256)


def _as_tensor(X: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A (n, *input_shape) tensor sharing X's memory where possible."""
    if X.dtype == np.float64:
        X = X.astype(np.float32)
    elif not X.flags.writeable:  # e.g. a read-only memmap from joblib
        X = np.array(X)
    return torch.from_numpy(np.ascontiguousarray(X)).view(len(X), *input_shape)


def _history_frame(history) -> pd.DataFrame:
    """One row per completed epoch (an interrupted or diverged one is left out)."""
    rows = [
        {k: v for k, v in row.items() if k != "batches"} for row in history if "train_loss" in row
    ]
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="epoch", dtype=np.int64))
    return pd.DataFrame(rows).set_index("epoch")


def _versions() -> dict[str, str]:
    """Versions of sk_dim, torch and scikit-learn, recorded at fit."""
    import sklearn

    from . import __version__

    return {"sk_dim": __version__, "torch": torch.__version__, "scikit-learn": sklearn.__version__}
