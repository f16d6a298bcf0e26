"""Colour-space views and batched augmentations for self-supervised training.

Contrastive Multiview Coding (Tian, Krishnan & Isola, 2019) treats different
channel groups of one image as different "views": e.g. the luminance ``L`` and
the chrominance ``ab`` of CIELAB, or ``Y`` and ``CbCr`` of YCbCr.  This module
provides those conversions plus a random-resized-crop/flip augmentation, all
as pure tensor functions working on whole ``(N, C, H, W)`` batches on whatever
device the batch already lives on.  Doing the augmentation on the batch (rather
than per PIL image in a ``Dataset``) keeps the GPU fed without DataLoader
workers and makes every call reproducible from a single ``torch.Generator``.

All functions expect float images with RGB values in ``[0, 1]``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "COLOR_VIEW_KINDS",
    "color_views",
    "random_crop_flip",
    "random_resized_crop_flip",
    "rgb_to_lab",
    "rgb_to_ycbcr",
]

#: Valid values of the ``kind`` argument of :func:`color_views`.
COLOR_VIEW_KINDS: tuple[str, ...] = ("lab", "ycbcr")

# Linear sRGB -> CIE XYZ for the D65 white point (IEC 61966-2-1, 7-digit form
# popularised by Bruce Lindbloom).  Rows sum to the D65 white below, so sRGB
# white maps to a == b == 0 up to float rounding.
_SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
# D65 reference white (X_n, Y_n, Z_n), i.e. the row sums of the matrix above.
_D65_WHITE = (0.95047, 1.0, 1.08883)

# CIELAB's f(t): cube root above epsilon, linear segment below it so that the
# curve and its slope are continuous at t = (6/29)^3.
_LAB_DELTA = 6.0 / 29.0
_LAB_EPSILON = _LAB_DELTA**3

# Normalisation of L, a, b to roughly [-1, 1]: centre and half-range of the
# sRGB gamut in CIELAB.  These are the constants of CMC's official code
# (L in [0, 100], a in [-86.183, 98.233], b in [-107.857, 94.478]); they depend
# only on the colour space, not on a data set, so no statistics need fitting.
_LAB_CENTER = (50.0, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2)
_LAB_HALF_RANGE = (50.0, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2)

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _check_image_batch(x: Tensor, name: str, channels: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a float ``(N, C, H, W)`` tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    c = "3" if channels == 3 else "C"
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have shape (N, {c}, H, W), got {x.ndim}-D shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (N, {channels}, H, W) (RGB channels first), "
            f"got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        # Integer images (e.g. uint8 0..255) would silently be clamped to {0, 1}.
        raise TypeError(
            f"{name} must be a floating point tensor with values in [0, 1], got dtype {x.dtype}"
        )


def _work_dtype(x: Tensor) -> torch.dtype:
    # Half precision loses ~0.1 L units through the cube root; compute in at
    # least float32 and cast back, which costs nothing noticeable.
    return torch.promote_types(x.dtype, torch.float32)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Convert sRGB images to CIELAB (D65 white point).

    Parameters
    ----------
    rgb : Tensor of shape (N, 3, H, W)
        Floating point sRGB (gamma-encoded) values in ``[0, 1]``; values outside
        are clamped.

    Returns
    -------
    Tensor of shape (N, 3, H, W)
        Channels ``(L, a, b)`` with ``L`` in ``[0, 100]`` and ``a``, ``b``
        within about ``[-108, 99]`` for in-gamut colours.  Same dtype and device
        as the input.

    See Also
    --------
    color_views : L and ab normalised to about ``[-1, 1]``, as CMC uses them.
    rgb_to_ycbcr : The YCbCr alternative.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] CIE 15:2004, "Colorimetry", 3rd edition; IEC 61966-2-1 (sRGB).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.views import rgb_to_lab
    >>> white_and_black = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    >>> rgb_to_lab(white_and_black)[:, :, 0, 0].round(decimals=2).abs()
    tensor([[100.,   0.,   0.],
            [  0.,   0.,   0.]])
    """
    _check_image_batch(rgb, "rgb", channels=3)
    x = rgb.to(_work_dtype(rgb)).clamp(0.0, 1.0)  # (N, 3, H, W)

    # sRGB transfer function -> linear light.  torch.where evaluates both
    # branches; both are finite with finite gradients on [0, 1].
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)

    # Linear RGB -> XYZ relative to the white point, i.e. X/X_n, Y/Y_n, Z/Z_n.
    m = torch.tensor(_SRGB_TO_XYZ, dtype=x.dtype, device=x.device)  # (3, 3)
    white = torch.tensor(_D65_WHITE, dtype=x.dtype, device=x.device)  # (3,)
    m = m / white[:, None]  # fold the white-point division into the matrix
    t = torch.einsum("ij,njhw->nihw", m, linear)  # (N, 3, H, W)

    # Clamp before the cube root: the pow gradient is infinite at 0 and the
    # unused branch of torch.where would otherwise turn that into NaN grads.
    cube_root = t.clamp(min=_LAB_EPSILON) ** (1.0 / 3.0)
    linear_seg = t / (3.0 * _LAB_DELTA**2) + 4.0 / 29.0
    f = torch.where(t > _LAB_EPSILON, cube_root, linear_seg)  # (N, 3, H, W)

    fx, fy, fz = f.unbind(dim=1)  # each (N, H, W)
    lab = torch.stack(
        (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1
    )  # (N, 3, H, W)
    return lab.to(rgb.dtype)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """Convert sRGB images to full-range ITU-R BT.601 YCbCr with centred chroma.

    Uses ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = (B - Y) / 1.772`` and
    ``Cr = (R - Y) / 1.402`` (the JPEG/JFIF full-range variant, no 16..235
    head-room).  Unlike JPEG, the ``+0.5`` (``+128``) chroma offset is *not*
    added, so chroma is zero for gray pixels.

    Parameters
    ----------
    rgb : Tensor of shape (N, 3, H, W)
        Floating point sRGB values in ``[0, 1]``; values outside are clamped.

    Returns
    -------
    Tensor of shape (N, 3, H, W)
        Channels ``(Y, Cb, Cr)`` with ``Y`` in ``[0, 1]`` and ``Cb``, ``Cr`` in
        ``[-0.5, 0.5]``.  Same dtype and device as the input.

    See Also
    --------
    color_views : Y and CbCr normalised to ``[-1, 1]``.
    rgb_to_lab : The CIELAB alternative, CMC's main setting.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] ITU-R Recommendation BT.601; JPEG File Interchange Format 1.02.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.views import rgb_to_ycbcr
    >>> gray = torch.full((1, 3, 2, 2), 0.5)
    >>> rgb_to_ycbcr(gray)[0, :, 0, 0]
    tensor([0.5000, 0.0000, 0.0000])
    """
    _check_image_batch(rgb, "rgb", channels=3)
    x = rgb.clamp(0.0, 1.0)
    r, g, b = x.unbind(dim=1)  # each (N, H, W)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    # 1.772 = 2 (1 - 0.114) and 1.402 = 2 (1 - 0.299) scale chroma to [-0.5, 0.5].
    cb = (b - y) / 1.772
    cr = (r - y) / 1.402
    return torch.stack((y, cb, cr), dim=1)  # (N, 3, H, W)


def color_views(rgb: Tensor, kind: Literal["lab", "ycbcr"] | str = "lab") -> list[Tensor]:
    """Split RGB images into two normalised colour views, as in CMC.

    Every returned channel is mapped by a fixed affine function so that the
    colour-space range (the sRGB gamut) becomes ``[-1, 1]``:

    * ``"lab"``: ``L' = (L - 50) / 50``; ``a`` and ``b`` are mapped from the
      sRGB gamut extremes ``a in [-86.183, 98.233]``, ``b in [-107.857,
      94.478]`` to ``[-1, 1]`` -- the same constants as CMC's official code.
    * ``"ycbcr"``: ``Y' = 2 Y - 1``, ``Cb' = 2 Cb``, ``Cr' = 2 Cr``
      (see :func:`rgb_to_ycbcr`).

    Fixed constants (rather than per-data-set mean/std) keep the function
    stateless; natural images then have channel means within a few tenths of
    zero and standard deviations of roughly 0.1-0.5, which batch-normalised
    encoders handle without trouble.

    Parameters
    ----------
    rgb : Tensor of shape (N, 3, H, W)
        Floating point sRGB values in ``[0, 1]``.
    kind : {"lab", "ycbcr"}
        Which colour space to split.

    Returns
    -------
    list of two Tensors
        ``[luma (N, 1, H, W), chroma (N, 2, H, W)]``, i.e. ``[L, ab]`` or
        ``[Y, CbCr]``.

    See Also
    --------
    rgb_to_lab, rgb_to_ycbcr : The colour conversions.
    sk_dim.CMCTransformer : Trains one encoder per view (``views="lab"``).

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.views import color_views
    >>> rgb = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> L, ab = color_views(rgb, "lab")
    >>> tuple(L.shape), tuple(ab.shape)
    ((4, 1, 8, 8), (4, 2, 8, 8))
    >>> bool(L.abs().max() <= 1)
    True
    """
    if kind not in COLOR_VIEW_KINDS:
        raise ValueError(f"kind must be one of {list(COLOR_VIEW_KINDS)}, got {kind!r}")
    if kind == "lab":
        lab = rgb_to_lab(rgb)  # (N, 3, H, W), validates rgb
        center = torch.tensor(_LAB_CENTER, dtype=lab.dtype, device=lab.device)
        half = torch.tensor(_LAB_HALF_RANGE, dtype=lab.dtype, device=lab.device)
        z = (lab - center[:, None, None]) / half[:, None, None]  # (N, 3, H, W)
    else:
        ycc = rgb_to_ycbcr(rgb)  # (N, 3, H, W), validates rgb
        # Y in [0, 1] -> [-1, 1]; centred chroma in [-0.5, 0.5] -> [-1, 1].
        offset = torch.tensor((1.0, 0.0, 0.0), dtype=ycc.dtype, device=ycc.device)
        z = 2.0 * ycc - offset[:, None, None]  # (N, 3, H, W)
    # Slices are views of z; make them contiguous so downstream convs and
    # in-place ops on one view cannot touch the other.
    return [z[:, :1].contiguous(), z[:, 1:].contiguous()]  # (N,1,H,W), (N,2,H,W)


def _as_size(out_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(out_size, int):  # bools are rejected by the final check
        size = (out_size, out_size)
    else:
        try:
            h, w = out_size
        except (TypeError, ValueError):
            raise ValueError(
                f"out_size must be an int or (height, width), got {out_size!r}"
            ) from None
        size = (h, w)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"out_size must contain positive ints, got {out_size!r}")
    return size


def check_range(name: str, value: tuple[float, float], lo: float, hi: float) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a pair lo < min <= max <= hi."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (min, max), got {value!r}") from None
    if not (lo < a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} < min <= max <= {hi}, got {value!r}")


def _check_flip_p(flip_p: float) -> None:
    if not 0.0 <= flip_p <= 1.0:
        raise ValueError(f"flip_p must be in [0, 1], got {flip_p!r}")


def _uniform(n: int, k: int, generator: torch.Generator | None) -> Tensor:
    # Draw on the generator's device (CPU for the default/no generator) in
    # float64: the numbers then depend only on the seed, not on the data's
    # device or dtype, and there are only O(N) of them so the host->device copy
    # afterwards is negligible.
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(n, k, generator=generator, dtype=torch.float64, device=device)


def random_resized_crop_flip(
    x: Tensor,
    out_size: int | tuple[int, int],
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    flip_p: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random resized crop plus random horizontal flip of a whole batch at once.

    Behaves like torchvision's ``RandomResizedCrop`` followed by
    ``RandomHorizontalFlip``, but every sample of the batch gets its own crop
    and flip in a single ``affine_grid``/``grid_sample`` call on ``x``'s device.

    For each sample a crop covering a fraction ``U(scale)`` of the image area
    with aspect ratio (width / height) drawn log-uniformly from ``ratio`` is
    proposed up to 10 times; the first proposal that fits inside the image is
    used (as torchvision does).  If none fits, the first proposal's width and
    height are clamped to the image.  The crop's position is uniform over all
    placements inside the image.  Crop boxes are continuous (sub-pixel), and the
    crop is resampled to ``out_size`` bilinearly (``align_corners=False``, edge
    pixels replicated), without antialiasing: strong downscaling aliases a bit
    more than torchvision's antialiased resize.

    Parameters
    ----------
    x : Tensor of shape (N, C, H, W)
        Floating point image batch (any number of channels).
    out_size : int or (int, int)
        Output ``(height, width)``; an int gives a square output.
    scale : (float, float)
        Range of the crop area as a fraction of the image area, in ``(0, 1]``.
    ratio : (float, float)
        Range of the crop aspect ratio ``width / height``.
    flip_p : float
        Probability of flipping each sample horizontally.
    generator : torch.Generator, optional
        Source of randomness, for reproducible augmentations.

    Returns
    -------
    Tensor of shape (N, C, out_h, out_w)
        Same dtype and device as ``x``.

    See Also
    --------
    random_crop_flip : Pad-and-crop augmentation without resizing.

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).
    .. [2] C. Szegedy et al., "Going deeper with convolutions", CVPR 2015
       (the random-resized-crop augmentation).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.views import random_resized_crop_flip
    >>> x = torch.rand(5, 3, 32, 32)
    >>> g = torch.Generator().manual_seed(0)
    >>> random_resized_crop_flip(x, 16, scale=(0.3, 1.0), generator=g).shape
    torch.Size([5, 3, 16, 16])
    """
    _check_image_batch(x, "x")
    out_h, out_w = _as_size(out_size)
    check_range("scale", scale, 0.0, 1.0)
    check_range("ratio", ratio, 0.0, math.inf)
    _check_flip_p(flip_p)

    n, c, h, w = x.shape
    if n == 0:
        return x.new_empty((0, c, out_h, out_w))

    tries = 10
    u = _uniform(n, 2 * tries + 3, generator)  # (N, 2T + 3)
    u_area, u_ratio = u[:, :tries], u[:, tries : 2 * tries]  # each (N, T)
    u_left, u_top, u_flip = u[:, -3], u[:, -2], u[:, -1]  # each (N,)

    area = (scale[0] + (scale[1] - scale[0]) * u_area) * (h * w)  # (N, T) in pixels^2
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)  # (N, T), width / height
    crop_w = torch.sqrt(area * aspect)  # (N, T)
    crop_h = torch.sqrt(area / aspect)  # (N, T)

    # First proposal that fits; argmax returns the first maximal index, and 0
    # when nothing fits, in which case clamping below makes proposal 0 fit.
    fits = (crop_w <= w) & (crop_h <= h)  # (N, T)
    pick = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # (N, 1)
    crop_w = crop_w.gather(1, pick).squeeze(1).clamp(max=w)  # (N,)
    crop_h = crop_h.gather(1, pick).squeeze(1).clamp(max=h)  # (N,)

    left = u_left * (w - crop_w)  # (N,) in pixels, so the crop stays inside
    top = u_top * (h - crop_h)  # (N,)

    # affine_grid maps output coords in [-1, 1] to input coords in [-1, 1]
    # (pixel edges, align_corners=False): x_in = s_x * x_out + t_x.  Negating
    # s_x mirrors the crop about its own centre, i.e. a horizontal flip.
    sign = 1.0 - 2.0 * (u_flip < flip_p).to(u.dtype)  # (N,), -1 = flip
    theta = torch.zeros(n, 2, 3, dtype=torch.float64, device=u.device)  # (N, 2, 3)
    theta[:, 0, 0] = sign * crop_w / w
    theta[:, 0, 2] = (2.0 * left + crop_w) / w - 1.0
    theta[:, 1, 1] = crop_h / h
    theta[:, 1, 2] = (2.0 * top + crop_h) / h - 1.0
    theta = theta.to(device=x.device, dtype=x.dtype)

    grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)  # (N, oh, ow, 2)
    # "border" padding: near the crop edges bilinear taps can fall up to half a
    # pixel outside the outermost pixel centres; zero padding would darken the
    # rim there, replicating edge pixels matches torchvision's resize.
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # (N, C, out_h, out_w)


def random_crop_flip(
    x: Tensor,
    padding: int,
    *,
    flip_p: float = 0.5,
    padding_mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pad-and-random-crop plus random horizontal flip of a whole batch at once.

    The usual CIFAR training augmentation (torchvision's ``RandomCrop(size,
    padding)`` + ``RandomHorizontalFlip``): pad every side by ``padding``
    pixels, then cut out an ``H x W`` window at a uniformly random integer
    offset, per sample.  Pure indexing, so no interpolation blur.

    Parameters
    ----------
    x : Tensor of shape (N, C, H, W)
        Image batch (any dtype).
    padding : int
        Pixels of padding on each side; the maximum shift.
    flip_p : float
        Probability of flipping each sample horizontally.
    padding_mode : {"constant", "reflect", "replicate", "circular"}
        Passed to :func:`torch.nn.functional.pad`; ``"constant"`` pads with 0.
    generator : torch.Generator, optional
        Source of randomness, for reproducible augmentations.

    Returns
    -------
    Tensor of shape (N, C, H, W)
        Same dtype and device as ``x``.

    See Also
    --------
    random_resized_crop_flip : Crops of random area and aspect ratio, resized.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image
       recognition", CVPR 2016 (the padded-crop CIFAR augmentation).

    Examples
    --------
    >>> import torch
    >>> from sk_dim.views import random_crop_flip
    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> out = random_crop_flip(x, 1, generator=torch.Generator().manual_seed(0))
    >>> out.shape
    torch.Size([1, 1, 4, 4])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {x.ndim}-D shape {tuple(x.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"padding_mode must be one of {list(_PAD_MODES)}, got {padding_mode!r}")
    _check_flip_p(flip_p)

    n, _, h, w = x.shape
    u = _uniform(n, 3, generator).to(x.device)  # (N, 3)
    # floor(U * (2p + 1)) is uniform on {0, ..., 2p}; the clamp is only a float safety net.
    off_y = (u[:, 0] * (2 * padding + 1)).long().clamp(max=2 * padding)  # (N,)
    off_x = (u[:, 1] * (2 * padding + 1)).long().clamp(max=2 * padding)  # (N,)
    flip = u[:, 2] < flip_p  # (N,)

    if padding > 0:
        pad = (padding,) * 4
        if padding_mode == "constant":
            xp = F.pad(x, pad, mode="constant", value=0.0)
        else:
            xp = F.pad(x, pad, mode=padding_mode)
    else:
        xp = x  # (N, C, H + 2p, W + 2p)

    ar_h = torch.arange(h, device=x.device)  # (H,)
    ar_w = torch.arange(w, device=x.device)  # (W,)
    rows = off_y[:, None] + ar_h  # (N, H)
    # A flipped sample reads its window's columns right-to-left.
    cols = off_x[:, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]  # (N, 1, 1)
    # Advanced indexing with broadcast (N, H, W) index tensors gathers all
    # windows at once; indexing channels-last keeps C as the trailing dim.
    out = xp.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
