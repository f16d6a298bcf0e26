"""Estimator logic shared by the sk_dim transformers.

Input validation, image shapes, pixel scaling, device choice, seeding,
training through :mod:`sk_dim.nets` and batched transform live here; the
subclasses only say which torch module to train and which features to
return.
"""

from __future__ import annotations

import math
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
from ._torch import resolve_device, seeded

# Square images at least this wide are recognised without an image_shape.
MIN_INFERRED_SIDE = 8


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
        X, input_shape = self._validate_input(X, reset=True)
        self._check_params(input_shape, len(X))
        self.input_shape_ = input_shape
        self.image_shape_ = input_shape if len(input_shape) == 3 else None

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)
        data = _as_tensor(X, input_shape)
        with seeded(seed, device):
            module = self._build_module(X, input_shape)
            net = nets.make_net(
                module,
                lr=self.lr,
                max_epochs=self.max_epochs,
                batch_size=min(self.batch_size, len(X)),
                device=device,
                verbose=int(self.verbose),
                seed=seed,
            )
            net.fit(data)

        self.net_ = net
        self.history_ = _history_frame(net.history)
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
        return nets.embed(self.net_, data, self._features, batch_size=self._inference_batch())

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- helpers --------------------------------------------------------------
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
            shape = tuple(int(s) for s in shape)
            if len(shape) != 3 or math.prod(shape) != n_features:
                raise ValueError(
                    f"image_shape={self.image_shape} does not match X with {n_features} "
                    "features: expected (C, H, W) with C*H*W == n_features"
                )
            if nd_shape is not None and nd_shape != shape:
                raise ValueError(f"image_shape={shape} does not match X's images {nd_shape}")
        return tuple(shape) if shape is not None else (n_features,)

    def _scaling(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (images) or per-feature (vectors) mean and std of X."""
        if len(self.input_shape_) == 3:
            channels = self.input_shape_[0]
            rows = X.reshape(len(X), channels, -1)
            mean = rows.mean(axis=(0, 2), dtype=np.float64)
            std = rows.std(axis=(0, 2), dtype=np.float64)
            view = (1, channels, 1, 1)
        else:
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
    rows = [{k: v for k, v in row.items() if k != "batches"} for row in history]
    return pd.DataFrame(rows).set_index("epoch")
