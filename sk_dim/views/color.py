"""Colour-space views of RGB images, as Contrastive Multiview Coding uses them.

CMC (Tian, Krishnan & Isola, 2019) treats channel groups of one image as
different "views": the luminance ``L`` and the chrominance ``ab`` of CIELAB, or
``Y`` and ``CbCr`` of YCbCr. These are pure tensor functions on whole
``(N, 3, H, W)`` float batches with RGB values in ``[0, 1]``, on whatever device
the batch lives on.

The conversions stay hand-written rather than kornia's ``rgb_to_lab`` and
``rgb_to_ycbcr``: kornia's are as fast (Lab: ours 1.04x and 1.07x its speed on 32x32
RGB batches of 128 and 256, one CPU thread) or a little faster (YCbCr: ours 0.79x and
0.91x), but less exact: against a float64 reference of the standards its float32
results are off by up to 0.0049 (Lab) and 3e-4 (YCbCr), ours by 6.2e-5 and 1.1e-7
(its rounded constants, e.g. 0.564 for BT.601's 1/1.772), and either switch would
change the features a seed gives (``benchmarks/results/views.md``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .checks import check_image_batch

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

#: ITU-R BT.601 luma weights of R, G and B (torchvision's and kornia's grayscale).
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


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
    check_image_batch(rgb, "rgb", channels=3)
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
    check_image_batch(rgb, "rgb", channels=3)
    x = rgb.clamp(0.0, 1.0)
    r, g, b = x.unbind(dim=1)  # each (N, H, W)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    # 1.772 = 2 (1 - 0.114) and 1.402 = 2 (1 - 0.299) scale chroma to [-0.5, 0.5].
    cb = (b - y) / 1.772
    cr = (r - y) / 1.402
    return torch.stack((y, cb, cr), dim=1)  # (N, 3, H, W)


def rgb_to_gray(rgb: Tensor) -> Tensor:
    """BT.601 luma of RGB images, ``0.299 R + 0.587 G + 0.114 B``, at any pixel scale.

    Linear and unclipped (unlike :func:`rgb_to_lab`), so it serves the jitter of raw
    0..255 pixels as well as of ``[0, 1]`` ones.

    Parameters
    ----------
    rgb : Tensor of shape (N, 3, H, W)
        Floating point RGB values, any scale.

    Returns
    -------
    Tensor of shape (N, 1, H, W)
        Same dtype and device as the input.

    Examples
    --------
    >>> import torch
    >>> from sk_dim.views import rgb_to_gray
    >>> rgb_to_gray(torch.ones(1, 3, 1, 1) * 255)[0, 0, 0, 0].item()
    255.0
    """
    check_image_batch(rgb, "rgb", channels=3)
    weights = rgb.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (rgb * weights).sum(1, keepdim=True)


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
