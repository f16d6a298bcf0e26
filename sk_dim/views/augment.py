"""Batched image augmentation for augmented-view Deep InfoMax (AMDIM).

AMDIM (Bachman, Hjelm & Buchwalter, NeurIPS 2019) draws two augmented copies
of every image and maximizes the MI between the global vector of one copy
and the local features of the other. :class:`ImageAugment` makes one such
copy of a whole batch at once, on the batch's device: a random resized crop
and horizontal flip (:func:`sk_dim.views.random_resized_crop_flip`), then,
as in AMDIM's transforms, colour jitter (brightness, contrast and saturation
by up to ``jitter``, with probability ``jitter_p``) and random grayscale
(``gray_p``), the last two only for RGB images (:mod:`sk_dim.views.jitter`).

It works on the raw pixels the estimator stores (0..255 or 0..1, or any
other scale): every colour operation is linear in the pixel values and
nothing is clipped, so the scale does not need to be known.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..losses.precision import at_least_float32
from .crops import AUGMENT_CROP_SCALE, random_resized_crop_flip
from .jitter import JITTER_P, random_grayscale, unclipped_color_jitter


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
        crop_scale: tuple[float, float] = AUGMENT_CROP_SCALE,
        jitter: float = 0.4,
        jitter_p: float = JITTER_P,
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
        if self.jitter > 0:
            x = unclipped_color_jitter(x, self.jitter, self.jitter_p, generator)
        if x.shape[1] == 3 and self.gray_p > 0:
            x = random_grayscale(x, self.gray_p, generator)
        return x
