"""Batched image augmentation for augmented-view Deep InfoMax (AMDIM).

AMDIM (Bachman, Hjelm & Buchwalter, NeurIPS 2019) draws two augmented copies
of every image and maximizes the MI between the global vector of one copy
and the local features of the other. :class:`ImageAugment` makes one such
copy of a whole batch at once, on the batch's device: a random resized crop
and horizontal flip (:func:`sk_dim.views.random_resized_crop_flip`), then,
as in AMDIM's transforms, colour jitter (brightness, contrast and saturation
by up to ``jitter``, with probability ``jitter_p``) and random grayscale
(``gray_p``), the last two only for RGB images.

It works on the raw pixels the estimator stores (0..255 or 0..1, or any
other scale): every colour operation is linear in the pixel values and
nothing is clipped, so the scale does not need to be known.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..losses.precision import at_least_float32
from .crops import random_resized_crop_flip

# Crop area range (fraction of the image). AMDIM crops (0.3, 1) of 64x64 and
# 128x128 images; 32x32 images lose too much below that.
CROP_SCALE = (0.3, 1.0)
# ITU-R BT.601 luma weights, as torchvision's grayscale conversion.
_LUMA = (0.299, 0.587, 0.114)


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``U(0, 1)`` numbers on ``like``'s device, from ``generator`` when given.

    A generator draws on its own device (a CPU one for held-out scoring), and
    the few numbers are copied over.
    """
    if generator is None:
        return torch.rand(shape, device=like.device)
    return torch.rand(shape, generator=generator, device=generator.device).to(like.device)


def _factors(apply: Tensor, strength: float, generator: torch.Generator | None) -> Tensor:
    """Factors ``U(1 - strength, 1 + strength)`` where ``apply`` (N,), else 1: (N, 1, 1, 1)."""
    u = _rand(tuple(apply.shape), apply, generator)  # (N,)
    factor = torch.where(apply, 1 + strength * (2 * u - 1), torch.ones_like(u))
    return factor.view(-1, 1, 1, 1)


def _gray(x: Tensor) -> Tensor:  # (N, 3, H, W) -> (N, 1, H, W)
    weights = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


class ImageAugment(nn.Module):
    """One random augmented copy of a batch of images, ``(N, C, H, W)`` float.

    Parameters
    ----------
    crop_scale : (float, float)
        Range of the crops' area as a fraction of the image.
    jitter : float
        Strength of brightness, contrast and saturation jitter: each factor
        is drawn from ``U(1 - jitter, 1 + jitter)`` (AMDIM: 0.4).
    jitter_p : float
        Probability that a sample is colour-jittered (AMDIM: 0.8).
    gray_p : float
        Probability that an RGB sample is turned to grayscale (AMDIM: 0.25).
    """

    def __init__(
        self,
        crop_scale: tuple[float, float] = CROP_SCALE,
        jitter: float = 0.4,
        jitter_p: float = 0.8,
        gray_p: float = 0.25,
    ) -> None:
        super().__init__()
        self.crop_scale = tuple(crop_scale)
        self.jitter, self.jitter_p, self.gray_p = jitter, jitter_p, gray_p

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:  # (N, C, H, W) -> (N, C, H, W) float32
        """One augmented copy of ``x``; every draw from ``generator`` when given.

        Without a generator the draws come from torch's global generator (on
        ``x``'s device for the colour operations), as in training; held-out
        scoring passes one re-seeded identically every epoch, so that it
        scores the same copies each time.
        """
        x = at_least_float32(x)
        x = random_resized_crop_flip(
            x, tuple(x.shape[-2:]), scale=self.crop_scale, generator=generator
        )
        n, channels = x.shape[:2]
        if self.jitter > 0:
            # One draw decides whether a sample is jittered at all, as RandomApply does.
            apply = _rand((n,), x, generator) < self.jitter_p  # (N,)
            x = x * _factors(apply, self.jitter, generator)  # brightness
            mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
            x = mean + _factors(apply, self.jitter, generator) * (x - mean)  # contrast
            if channels == 3:
                gray = _gray(x)  # (N, 1, H, W)
                x = gray + _factors(apply, self.jitter, generator) * (x - gray)  # saturation
        if channels == 3 and self.gray_p > 0:
            to_gray = _rand((n, 1, 1, 1), x, generator) < self.gray_p  # (N, 1, 1, 1)
            x = torch.where(to_gray, _gray(x).expand_as(x), x)
        return x
