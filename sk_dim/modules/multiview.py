"""Contrastive Multiview Coding (CMC) as one torch module.

:class:`MultiviewCoding` chains three parts:

1. a *view maker* that turns a batch of raw inputs ``(N, *input_shape)`` (uint8
   or float, as stored by the estimator) into a list of V view tensors, doing
   pixel scaling, colour conversion and (in training mode only) augmentation
   batched on the input's device;
2. one encoder per view (the :mod:`sk_dim.modules.encoders` contract), whose
   ``y`` is L2-normalised into the view's embedding;
3. a :class:`~sk_dim.losses.MultiviewContrast` with its memory bank, which scores
   every embedding against the other views' banks.

The contrast is training state only: :meth:`MultiviewCoding.drop_contrast`
removes it (and the ``V x N x D`` bank) once training is over; encoding and
feature extraction do not need it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import MultiviewContrast
from ..views import color_views, random_resized_crop_flip
from .base import SelfSupervisedModule
from .encoders import EncoderOutput, check_layer, select_layer, unpack

# Crop area range (fraction of the image) of the training augmentation for image
# views. CMC uses (0.2, 1) on ImageNet; small images (CIFAR, digits) lose too much
# there, and on 32x32 CIFAR-10 (0.6, 1) learned better features than (0.3, 1).
CROP_SCALE = (0.6, 1.0)
# What modules pickled before crop_scale existed were trained with; read through
# the class attribute, since their instance dicts have no crop_scale.
_OLD_CROP_SCALE = (0.3, 1.0)


def _augment(x: Tensor, crop_scale: tuple[float, float]) -> Tensor:
    """Random resized crop (back to the input size) and horizontal flip, per sample."""
    return random_resized_crop_flip(x, tuple(x.shape[-2:]), scale=crop_scale)


class ColorViews(nn.Module):
    """RGB images -> ``[luma (N, 1, H, W), chroma (N, 2, H, W)]`` (Lab or YCbCr).

    Raw values are multiplied by the ``scale`` buffer (1/255 for 0..255 pixels,
    learned at fit) to reach ``[0, 1]``. In training mode each image gets one
    random resized crop and flip, shared by both views (as in CMC's code, the
    crop is taken before the colour split).
    """

    crop_scale: tuple[float, float] = _OLD_CROP_SCALE

    def __init__(
        self,
        kind: str,
        scale: float,
        *,
        augment: bool = True,
        crop_scale: tuple[float, float] = CROP_SCALE,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.augment = augment
        self.crop_scale = tuple(crop_scale)
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: Tensor) -> list[Tensor]:
        rgb = (x.float() * self.scale).clamp_(0.0, 1.0)  # (N, 3, H, W)
        if self.training and self.augment:
            rgb = _augment(rgb, self.crop_scale)
        return color_views(rgb, self.kind)


class CropViews(nn.Module):
    """``n_views`` copies of the standardised image, each independently augmented.

    In training mode every copy gets its own random resized crop and flip, so the
    views are two looks at the same image; in eval mode all copies are the image.
    """

    crop_scale: tuple[float, float] = _OLD_CROP_SCALE

    def __init__(
        self,
        mean: Tensor,
        std: Tensor,
        n_views: int = 2,
        *,
        augment: bool = True,
        crop_scale: tuple[float, float] = CROP_SCALE,
    ) -> None:
        super().__init__()
        self.n_views = int(n_views)
        self.augment = augment
        self.crop_scale = tuple(crop_scale)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, x: Tensor) -> list[Tensor]:
        z = (x.float() - self.mean) / self.std  # (N, C, H, W)
        if self.training and self.augment:
            return [_augment(z, self.crop_scale) for _ in range(self.n_views)]
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

    def forward(self, x: Tensor) -> list[Tensor]:
        z = (x.float().flatten(1) - self.mean) / self.std  # (N, F)
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

    def forward(self, x: Tensor) -> list[Tensor]:
        x = x.float()
        return [
            (fn(x).float() - getattr(self, f"mean{v}")) / getattr(self, f"std{v}")
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


class MultiviewCoding(SelfSupervisedModule):
    """View maker, one encoder per view and the memory-bank contrast of CMC.

    ``forward(x, index)`` returns ``{"loss": total}`` plus one term per scoring
    direction, ``"contrast_i_j"``: view i's embedding scored against view j's
    memory bank. ``index`` holds the rows' positions in the training set (their
    memory-bank rows).
    """

    LAYERS = ("local", "conv", "fc", "embedding")
    training_state_prefixes = ("contrast.",)

    def __init__(
        self,
        views: nn.Module,
        encoders: Sequence[nn.Module],
        contrast: MultiviewContrast | None,
    ) -> None:
        super().__init__()
        self.views = views
        self.encoders = nn.ModuleList(encoders)
        self.contrast = contrast

    @property
    def n_views(self) -> int:
        return len(self.encoders)

    def encode(self, x: Tensor, views: Sequence[int] | None = None) -> list[EncoderOutput]:
        """Encoder outputs of the views ``views`` (all by default) of a raw batch."""
        # Views are preprocessing (colour conversion, crops): float32 even under
        # autocast, which would run the Lab matrix product in bfloat16.
        with torch.autocast(x.device.type, enabled=False):
            made = self.views(x)
        if len(made) != self.n_views:
            raise ValueError(f"the view maker returned {len(made)} views, expected {self.n_views}")
        chosen = range(self.n_views) if views is None else views
        return [unpack(self.encoders[v](check_view(made[v], v, len(x)))) for v in chosen]

    @staticmethod
    def embedding(out: EncoderOutput) -> Tensor:
        """The L2-normalised y of one view, (N, n_components)."""
        return F.normalize(out.y.float(), dim=1)

    def forward(self, x: Tensor, index: Tensor) -> dict[str, Tensor]:
        if self.contrast is None:
            raise RuntimeError(
                "The memory bank was dropped after fit; refit, or fit with "
                "keep_memory_bank=True to continue training"
            )
        embeddings = [self.embedding(out) for out in self.encode(x)]
        total, terms = self.contrast(embeddings, index)
        result = {"loss": total}
        for key, value in terms.items():
            result[f"contrast_{key}"] = total.new_tensor(value)
        return result

    def drop_contrast(self) -> None:
        """Remove the memory bank and NCE constants (training state only)."""
        self.contrast = None

    def features(
        self, x: Tensor, layer: str, pool_size: int, view: int | None = None
    ) -> Tensor:  # (N, ...) -> (N, D): the views' features side by side, or one view's
        check_layer(layer, self.LAYERS)
        if view is not None and view >= self.n_views:
            raise ValueError(f"view={view} is out of range: there are {self.n_views} views")
        outputs = self.encode(x, None if view is None else [view])
        if layer == "embedding":
            return torch.cat([self.embedding(out) for out in outputs], dim=1)
        return torch.cat([select_layer(out, layer, pool_size) for out in outputs], dim=1)

    def set_gather(self, gather) -> None:
        if self.contrast is not None:
            self.contrast.gather_across_processes = gather

    def inference_copy(self) -> MultiviewCoding:
        contrast, self.contrast = self.contrast, None
        try:
            return copy.deepcopy(self)
        finally:
            self.contrast = contrast

    def compile_targets(self) -> list[nn.Module]:
        """The submodules ``compile=True`` compiles: the encoders.

        The contrast reads its terms back as Python floats and draws negatives
        from a generator; compiled, it would break the graph and, specialising
        on the floats, recompile every batch.
        """
        return list(self.encoders)
