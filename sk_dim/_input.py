"""What the estimators accept as X: validation, the input shape, batches, scaling.

X is checked (dtype, range, channels-first images), its shape resolved
(``image_shape``, or what ``"auto"`` reads a 2-D X as: see
:mod:`sk_dim._shapes`), and handed to the training engine without a copy
where possible. The networks' input scaling statistics are computed here
too, in chunks, so that a memmap never has to fit in memory.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import validate_data

from ._shapes import infer_image_shape
from .training import iter_row_chunks, memmap_of
from .views.makers import nonzero_std

# Rows read at a time for the scaling statistics: their float64 copy is 8x this.
STATS_CHUNK_BYTES = 2**20


def validate_input(estimator, X, *, reset: bool) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(X as a 2-D array, input shape)``, checked as ``estimator``'s fit or transform reads it.

    ``reset`` (fit) records ``n_features_in_`` and ``feature_names_in_`` on
    ``estimator`` and resolves the input shape from its ``image_shape``;
    otherwise X must match what it was fitted on.
    """
    nd_shape = None
    if isinstance(X, np.ndarray | torch.Tensor) and X.ndim >= 3:
        X = np.asarray(X)
        if X.ndim > 4:
            raise ValueError(f"Expected 2-D, 3-D or 4-D data, got shape {X.shape}")
        check_channels_first(X.shape)
        nd_shape = (1, *X.shape[1:]) if X.ndim == 3 else tuple(X.shape[1:])
        X = X.reshape(len(X), -1)
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=[np.float32, np.float64, np.uint8],
        ensure_min_samples=2 if reset else 1,
    )
    check_float32_range(X)
    if reset:
        return X, resolve_input_shape(estimator.image_shape, X, nd_shape)
    if nd_shape is not None and nd_shape != estimator.image_shape_:
        raise ValueError(
            f"X has images of shape {nd_shape}, but {type(estimator).__name__} was fitted on "
            f"images of shape {estimator.image_shape_}"
        )
    return X, estimator.input_shape_


def resolve_input_shape(image_shape, X: np.ndarray, nd_shape) -> tuple[int, ...]:
    """``(C, H, W)`` for images, ``(n_features,)`` for feature vectors, from ``image_shape``."""
    n_features = X.shape[1]
    shape = image_shape
    if shape == "auto":
        shape = nd_shape or infer_image_shape(X)
    elif shape is not None:
        if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in shape):
            raise ValueError(f"image_shape={image_shape} must hold 3 ints (C, H, W)")
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1 or math.prod(shape) != n_features:
            raise ValueError(
                f"image_shape={image_shape} does not match X with {n_features} "
                "features: expected (C, H, W) with C*H*W == n_features"
            )
        if nd_shape is not None and nd_shape != shape:
            raise ValueError(f"image_shape={shape} does not match X's images {nd_shape}")
    return tuple(shape) if shape is not None else (n_features,)


def split_validation(X: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X_train, X_valid)``: a random ``fraction`` of the rows held out (early stopping)."""
    n_valid = math.ceil(fraction * len(X))
    if n_valid < 2 or len(X) - n_valid < 2:
        raise ValueError(
            f"early_stopping needs at least 2 training and 2 validation samples: "
            f"validation_fraction={fraction} of {len(X)} samples leaves "
            f"{len(X) - n_valid} and {n_valid}"
        )
    order = np.random.default_rng(seed).permutation(len(X))
    # Sorted rows: sequential reads from a memmap. Both parts are copies.
    return X[np.sort(order[n_valid:])], X[np.sort(order[:n_valid])]


def scaling_statistics(
    X: np.ndarray, input_shape: tuple[int, ...], *, per_feature: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (images) or per-feature (vectors, or when asked) mean and std of X.

    Two passes over chunks of rows in float64: exact, with memory bounded
    by a chunk whatever the size of X (a memmap included).
    """
    images = len(input_shape) == 3 and not per_feature
    width = input_shape[0] if images else math.prod(input_shape)
    view = (1, width, 1, 1) if images else (1, width)

    def columns(chunk):  # (rows, width, values per row and column)
        return chunk.reshape(len(chunk), width, -1)

    total, count = np.zeros(width), 0
    for chunk in iter_row_chunks(X, chunk_bytes=STATS_CHUNK_BYTES):
        cols = columns(chunk)
        total += cols.sum(axis=(0, 2), dtype=np.float64)
        count += cols.shape[0] * cols.shape[2]
    mean = total / count
    squares = np.zeros(width)
    for chunk in iter_row_chunks(X, chunk_bytes=STATS_CHUNK_BYTES):
        centred = columns(chunk) - mean[None, :, None]
        squares += np.einsum("ijk,ijk->j", centred, centred)
    mean, std = torch.tensor(mean), torch.tensor(np.sqrt(squares / count))
    return mean.view(view), nonzero_std(std, mean).view(view)


def zero_rows(input_shape: tuple[int, ...]) -> np.ndarray:
    """Two rows of zeros shaped like the training data, without memory (a broadcast row)."""
    row = np.zeros((1, math.prod(input_shape)), dtype=np.float32)
    return np.broadcast_to(row, (2, row.shape[1]))


def as_tensor(X: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A (n, *input_shape) tensor sharing X's memory where possible."""
    if X.dtype == np.float64:
        X = X.astype(np.float32)
    elif not X.flags.writeable:  # e.g. a read-only memmap from joblib
        X = np.array(X)
    return torch.from_numpy(np.ascontiguousarray(X)).view(len(X), *input_shape)


def batch_source(X: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor | np.ndarray:
    """What the net reads batches from, shaped ``(n, *input_shape)``, without copying X.

    An in-memory uint8 or float32 array becomes a tensor sharing its memory;
    anything else (a memmap, a read-only or float64 array) stays a numpy
    array, read and converted one batch at a time.
    """
    in_memory = (
        memmap_of(X) is None
        and X.dtype != np.float64
        and X.flags.writeable
        and X.flags.c_contiguous
    )
    if in_memory:
        return torch.from_numpy(X).view(len(X), *input_shape)
    return X.reshape(len(X), *input_shape)


def check_channels_first(shape: tuple[int, ...]) -> None:
    """Refuse 4-D arrays that look channels-last ``(N, H, W, C)``; sk_dim reads ``(N, C, H, W)``."""
    if len(shape) == 4 and shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        raise ValueError(
            f"X has shape {shape}, which looks like channels-last images (N, H, W, C) with "
            f"C={shape[3]}; sk_dim reads (N, C, H, W): pass X.transpose(0, 3, 1, 2) (or "
            "np.moveaxis(X, -1, 1))"
        )


def check_float32_range(X: np.ndarray) -> None:
    """Refuse float64 values that float32, the network's arithmetic, turns into inf."""
    if X.dtype != np.float64:
        return
    limit = np.finfo(np.float32).max
    for chunk in iter_row_chunks(X):
        if max(chunk.max(initial=0.0), -chunk.min(initial=0.0)) > limit:
            raise ValueError(
                f"X has values beyond the float32 range (|x| > {limit:.3g}), which the network "
                "computes in; rescale X (e.g. with StandardScaler) first"
            )
