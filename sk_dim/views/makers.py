"""View makers: torch modules that turn a batch of raw inputs into CMC's views.

A view maker takes the batch ``(N, *input_shape)`` as the estimator stores it
(uint8 or float) and returns a list of V view tensors, each ``(N, F_v)`` or
``(N, C_v, H, W)``, doing pixel scaling, standardisation, colour conversion and
(in training mode only) augmentation batched on the input's device. Their
scaling statistics are buffers measured on the training data, so a fitted
maker is self-contained. :func:`build_view_maker` picks and fits the maker for
a ``views`` value resolved by :func:`sk_dim.views.resolve_views`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..losses.precision import at_least_float32
from .color import COLOR_VIEW_KINDS, color_views
from .crops import CMC_CROP_SCALE, random_resized_crop_flip
from .jitter import color_jitter

# Colour jitter of the RGB image before the colour split. CMC's L/ab training script
# (train_CMC.py) has none; its "CJ" option (random grayscale, then ColorJitter) belongs to
# its single-view MoCo/InsDis script. Jitter without grayscale scored higher at each of
# three seeds on CIFAR-10 (benchmarks/results/cmc_color_jitter_3seeds.md); grayscale stays
# out, as a grey image's ab view is a constant with nothing to match.
COLOR_JITTER = 0.4


def _augment(
    x: Tensor, crop_scale: tuple[float, float], generator: torch.Generator | None = None
) -> Tensor:
    """Random resized crop (back to the input size) and horizontal flip, per sample."""
    return random_resized_crop_flip(x, tuple(x.shape[-2:]), scale=crop_scale, generator=generator)


class ColorViews(nn.Module):
    """RGB images -> ``[luma (N, 1, H, W), chroma (N, 2, H, W)]`` (Lab or YCbCr).

    Raw values are multiplied by the ``scale`` buffer (1/255 for 0..255 pixels,
    learned at fit) to reach ``[0, 1]``. In training mode each image gets one
    random resized crop and flip, shared by both views (as in CMC's code, the
    crop is taken before the colour split), and, when ``color_jitter > 0``,
    brightness, contrast and saturation jitter of that strength for 80% of the
    images (:func:`sk_dim.views.color_jitter`). Nothing turns an image gray: its chroma view
    would be a constant, and its pair of views would carry no information.
    """

    def __init__(
        self,
        kind: str,
        scale: float,
        *,
        augment: bool = True,
        crop_scale: tuple[float, float] = CMC_CROP_SCALE,
        color_jitter: float = 0.0,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.augment = augment
        self.crop_scale = tuple(crop_scale)
        self.color_jitter = float(color_jitter)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """The two views; ``generator`` draws the training-mode augmentation."""
        rgb = (at_least_float32(x) * self.scale).clamp_(0.0, 1.0)  # (N, 3, H, W)
        if self.training and self.augment:
            rgb = _augment(rgb, self.crop_scale, generator)
            if self.color_jitter > 0:
                rgb = color_jitter(rgb, self.color_jitter, generator=generator)
        return color_views(rgb, self.kind)


class CropViews(nn.Module):
    """``n_views`` copies of the standardised image, each independently augmented.

    In training mode every copy gets its own random resized crop and flip, so the
    views are two looks at the same image; in eval mode all copies are the image.
    """

    def __init__(
        self,
        mean: Tensor,
        std: Tensor,
        n_views: int = 2,
        *,
        augment: bool = True,
        crop_scale: tuple[float, float] = CMC_CROP_SCALE,
    ) -> None:
        super().__init__()
        self.n_views = int(n_views)
        self.augment = augment
        self.crop_scale = tuple(crop_scale)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """The views; ``generator`` draws the training-mode crops and flips."""
        z = (at_least_float32(x) - self.mean) / self.std  # (N, C, H, W)
        if self.training and self.augment:
            return [_augment(z, self.crop_scale, generator) for _ in range(self.n_views)]
        return [z] * self.n_views


class ColumnViews(nn.Module):
    """Groups of columns of the standardised, flattened input: ``[(N, F_v)]``."""

    def __init__(self, mean: Tensor, std: Tensor, columns: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().reshape(1, -1))
        self.register_buffer("std", std.float().reshape(1, -1))
        self.n_views = len(columns)
        for v, cols in enumerate(columns):
            self.register_buffer(f"columns{v}", torch.as_tensor(list(cols), dtype=torch.long))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """The views; ``generator`` is unused (nothing is random)."""
        z = (at_least_float32(x).flatten(1) - self.mean) / self.std  # (N, F)
        return [z[:, getattr(self, f"columns{v}")] for v in range(self.n_views)]


class CallableViews(nn.Module):
    """User functions ``fn(x float (N, *input_shape)) -> view tensor``, each standardised.

    Each view's output is standardised with a mean and std (per channel for 4-D
    views, per feature for 2-D views) measured on the training data at fit.
    """

    def __init__(
        self,
        functions: Sequence[Callable[[Tensor], Tensor]],
        means: Sequence[Tensor],
        stds: Sequence[Tensor],
    ) -> None:
        super().__init__()
        self.functions = list(functions)
        for v, (mean, std) in enumerate(zip(means, stds, strict=True)):
            self.register_buffer(f"mean{v}", mean.float())
            self.register_buffer(f"std{v}", std.float())

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """The views; ``generator`` is unused (the functions are not augmented)."""
        x = at_least_float32(x)
        return [
            (at_least_float32(fn(x)) - getattr(self, f"mean{v}")) / getattr(self, f"std{v}")
            for v, fn in enumerate(self.functions)
        ]


def check_view(out, v: int, n: int) -> Tensor:
    """Raise a clear error unless a view maker's output ``out`` is (n, F) or (n, C, H, W)."""
    if not isinstance(out, Tensor):
        raise TypeError(f"view {v} must be a torch.Tensor, got {type(out).__name__}")
    if out.dim() not in (2, 4) or out.shape[0] != n or out[0].numel() == 0:
        raise ValueError(
            f"view {v} must have shape (N, F) or (N, C, H, W) with N={n}, got {tuple(out.shape)}"
        )
    return out


# The one rule for constant columns (the networks' input scaling, the view statistics, the
# probes' standardisation and the image-shape check all use it): a column whose std is at
# most this fraction of the data's magnitude is constant. float32 rounding alone gives a
# constant column of values near 1e4 a std of ~1e-4, which dividing by would blow up.
RELATIVE_CONSTANT_STD = 1e-8


def nonzero_std(std: Tensor, mean: Tensor) -> Tensor:
    """``std`` with 1 for constant columns, which standardising then only centres.

    A column is constant when its std is at most ``RELATIVE_CONSTANT_STD`` times the
    largest absolute mean (at least 1). ``std`` must come from two passes (the mean
    first), so that a column of identical values has exactly 0.
    """
    # A tensor floor, not .item(): persistence builds networks on the meta device.
    floor = RELATIVE_CONSTANT_STD * mean.abs().max().clamp(min=1.0)
    return torch.where(std > floor, std, torch.ones_like(std))


@torch.no_grad()
def callable_view_stats(functions: Sequence, X: np.ndarray, input_shape, chunk: int = 1024):
    """Per-channel (4-D views) or per-feature (2-D views) mean and std of each view on X.

    Each chunk's mean and sum of squared deviations are computed in two passes and
    merged (Chan et al.): a constant column's std is then exactly 0, where the one-pass
    ``E[x^2] - E[x]^2`` left rounding noise above the constant-column floor.
    """
    moments = [None] * len(functions)  # (count, mean, sum of squared deviations)
    shapes = [None] * len(functions)
    for start in range(0, len(X), chunk):
        x = torch.as_tensor(np.asarray(X[start : start + chunk], dtype=np.float32))
        x = x.view(-1, *input_shape)
        for v, fn in enumerate(functions):
            out = check_view(fn(x), v, len(x)).double()
            dims = (0, 2, 3) if out.dim() == 4 else (0,)
            n = out.numel() // out.shape[1]  # N (2-D) or N*H*W (4-D)
            mean = out.mean(dims)
            shape = (1, -1, 1, 1) if out.dim() == 4 else (1, -1)
            squares = ((out - mean.view(shape)) ** 2).sum(dims)
            moments[v] = _merge_moments(moments[v], (n, mean, squares))
            shapes[v] = shape
    means, stds = [], []
    for (n, mean, squares), shape in zip(moments, shapes, strict=True):
        std = (squares / n).sqrt()
        means.append(mean.view(shape))
        stds.append(nonzero_std(std, mean).view(shape))
    return means, stds


def _merge_moments(a, b):
    """Count, mean and sum of squared deviations of two parts together (Chan et al.)."""
    if a is None:
        return b
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta * delta * (n_a * n_b / n)


def build_view_maker(
    views: str | list,
    X: np.ndarray,
    input_shape: tuple[int, ...],
    *,
    augment: bool,
    crop_scale: tuple[float, float],
    color_jitter: float = 0.0,
    scaling: Callable[[bool], tuple[Tensor, Tensor]],
) -> nn.Module:
    """The view maker for resolved ``views``, with its statistics measured on X.

    ``scaling(per_feature)`` returns the mean and std of X per channel (images)
    or per feature, shaped to broadcast against a batch. ``color_jitter``
    concerns colour views only (see :class:`ColorViews`).
    """
    if views in COLOR_VIEW_KINDS:
        low, high = float(X.min()), float(X.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"views={views!r} needs RGB pixels in [0, 1] or [0, 255], got values in "
                f"[{low:g}, {high:g}]"
            )
        scale = 1.0 / 255 if X.dtype == np.uint8 or high > 1 else 1.0
        return ColorViews(
            views, scale, augment=augment, crop_scale=crop_scale, color_jitter=color_jitter
        )
    if views == "crops":
        return CropViews(*scaling(False), n_views=2, augment=augment, crop_scale=crop_scale)
    if callable(views[0]):
        return CallableViews(views, *callable_view_stats(views, X, input_shape))
    return ColumnViews(*scaling(True), views)
