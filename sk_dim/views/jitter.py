"""Random colour jitter and random grayscale of whole image batches.

Two jitters, because the two methods see pixels at different scales:
:func:`color_jitter` is CMC's, on RGB in ``[0, 1]`` before the colour split, and
clips back to ``[0, 1]`` as torchvision's ColorJitter does; :func:`unclipped_color_jitter`
is DIM's (AMDIM's augmentation), on the raw pixels the estimator stores (0..255, 0..1
or any other scale): every step is linear in the pixel values and nothing is clipped,
so the scale need not be known. Their random draws differ in order (one call for all
factors against one call per factor) and stay as they are: the same seed gives the
same augmentations as before.

They stay hand-written rather than kornia's ``ColorJitter`` / ``RandomGrayscale``: on
32x32 RGB batches of 128 and 256 (one CPU thread), the jitter is 2.1x and 1.9x as fast
and the random grayscale 1.7x and 1.3x (``benchmarks/results/views.md``); kornia's
jitter also clamps to ``[0, 1]``, which DIM's raw-scale pixels would not survive, and
its own random draws would change the augmentations a seed gives.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .color import rgb_to_gray

# Probability that an image is jittered at all (torchvision's RandomApply, AMDIM and
# CMC's "CJ" option both use 0.8).
JITTER_P = 0.8


def _uniform_like(
    shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None
) -> Tensor:
    """``U(0, 1)`` numbers on ``like``'s device, from ``generator`` when given.

    A generator draws on its own device (a CPU one for held-out scoring), and the
    few numbers are copied over.
    """
    if generator is None:
        return torch.rand(shape, device=like.device)
    return torch.rand(shape, generator=generator, device=generator.device).to(like.device)


def _factors(apply: Tensor, strength: float, generator: torch.Generator | None) -> Tensor:
    """Factors ``U(1 - strength, 1 + strength)`` where ``apply`` (N,), else 1: (N, 1, 1, 1)."""
    u = _uniform_like(tuple(apply.shape), apply, generator)  # (N,)
    factor = torch.where(apply, 1 + strength * (2 * u - 1), torch.ones_like(u))
    return factor.view(-1, 1, 1, 1)


def unclipped_color_jitter(
    x: Tensor, strength: float, p: float = JITTER_P, generator: torch.Generator | None = None
) -> Tensor:
    """Brightness, contrast and (RGB only) saturation jitter at any pixel scale, ``(N, C, H, W)``.

    For a fraction ``p`` of the images (one draw per image decides, as torchvision's
    RandomApply does), each of the three is scaled by its own factor from
    ``U(1 - strength, 1 + strength)``, in that order: brightness multiplies, contrast
    scales about the image's mean over all channels, saturation about the BT.601 luma.
    Nothing is clipped. Draws come from ``generator`` when given, else from torch's
    global generator on ``x``'s device.
    """
    n, channels = x.shape[:2]
    apply = _uniform_like((n,), x, generator) < p  # (N,)
    x = x * _factors(apply, strength, generator)  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    x = mean + _factors(apply, strength, generator) * (x - mean)  # contrast
    if channels == 3:
        gray = rgb_to_gray(x)  # (N, 1, H, W)
        x = gray + _factors(apply, strength, generator) * (x - gray)  # saturation
    return x


def random_grayscale(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """RGB images ``(N, 3, H, W)`` with a fraction ``p`` of them turned to grayscale.

    A gray image keeps three (equal) channels, its BT.601 luma; any pixel scale.
    """
    to_gray = _uniform_like((len(x), 1, 1, 1), x, generator) < p  # (N, 1, 1, 1)
    return torch.where(to_gray, rgb_to_gray(x).expand_as(x), x)


def _clipped_jitter_factors(
    n: int, strength: float, p: float, generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """Factors ``U(1 - strength, 1 + strength)`` for a fraction ``p`` of the images, else 1.

    Returns (3, N, 1, 1, 1): one factor per image for brightness, contrast and
    saturation. One draw decides whether an image is jittered at all, as
    torchvision's RandomApply does; drawn on the generator's device (the CPU
    without one), then moved to the batch's.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(4, n, generator=generator, device=device)  # (4, N)
    apply = u[0] < p  # (N,)
    factors = torch.where(apply, 1 + strength * (2 * u[1:] - 1), torch.ones_like(u[1:]))
    return factors.to(device=like.device, dtype=like.dtype).view(3, n, 1, 1, 1)


def color_jitter(
    rgb: Tensor, strength: float, p: float = JITTER_P, generator: torch.Generator | None = None
) -> Tensor:
    """Brightness, contrast and saturation jitter of RGB images in ``[0, 1]``, ``(N, 3, H, W)``.

    For a fraction ``p`` of the images, each of the three is scaled by its own
    factor from ``U(1 - strength, 1 + strength)``, in that order, as torchvision's
    ColorJitter does without hue (contrast about the mean over all channels,
    saturation about the BT.601 luma); the result is clipped to ``[0, 1]``. No
    image is turned to grayscale.
    """
    brightness, contrast, saturation = _clipped_jitter_factors(
        len(rgb), strength, p, generator, rgb
    )
    x = rgb * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    x = mean + contrast * (x - mean)
    gray = rgb_to_gray(x)  # (N, 1, H, W)
    x = gray + saturation * (x - gray)
    return x.clamp_(0.0, 1.0)
