"""sk_dim.views.color: Lab, YCbCr and gray, against published values and plain formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sk_dim.views import (
    COLOR_VIEW_KINDS,
    LUMA_WEIGHTS,
    color_views,
    rgb_to_gray,
    rgb_to_lab,
    rgb_to_ycbcr,
)


def _pixels(colors: list[tuple[float, float, float]], dtype=torch.float64) -> torch.Tensor:
    """A (1, 3, 1, K) image holding the given RGB colours side by side."""
    return torch.tensor(colors, dtype=dtype).T.reshape(1, 3, 1, len(colors))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- Lab


KNOWN_LAB = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
    ((1.0, 1.0, 0.0), (97.14, -21.55, 94.48)),
    ((0.0, 1.0, 1.0), (91.11, -48.09, -14.13)),
    ((1.0, 0.0, 1.0), (60.32, 98.23, -60.82)),
]


@pytest.mark.parametrize("rgb, lab", KNOWN_LAB)
def test_lab_known_colours(rgb, lab):
    out = rgb_to_lab(_pixels([rgb]))[0, :, 0, 0]
    torch.testing.assert_close(out, torch.tensor(lab, dtype=torch.float64), atol=0.05, rtol=0)


def test_lab_gray_is_achromatic_and_monotone():
    levels = torch.linspace(0, 1, 21, dtype=torch.float64)
    lab = rgb_to_lab(_pixels([(v, v, v) for v in levels.tolist()]))[0, :, 0, :]  # (3, 21)
    torch.testing.assert_close(lab[1:], torch.zeros_like(lab[1:]), atol=1e-4, rtol=0)
    assert torch.all(lab[0, 1:] > lab[0, :-1])


def test_lab_dark_gray_uses_linear_segment():
    # Below t = (6/29)^3 CIE defines L = kappa * Y with kappa = (29/3)^3 = 24389/27,
    # and for a dark gray Y is the sRGB linear segment v / 12.92.
    v = 0.01
    lab = rgb_to_lab(_pixels([(v, v, v)]))[0, :, 0, 0]
    assert lab[0].item() == pytest.approx((29 / 3) ** 3 * v / 12.92, rel=1e-6)


# Float32 error bound of rgb_to_lab: the colour mix and the gamma curve leave XYZ within
# a few ulps (8 assumed); the cube root keeps the relative error, and a = 500 * (fx - fy)
# turns two such errors into an absolute one of 500 * 2 * 8 ulps (b and L get less). The
# batch size changes the matrix kernel, and so which of these roundings happen.
_LAB_FLOAT32_ATOL = 500 * 2 * 8 * torch.finfo(torch.float32).eps  # ~1e-3 of a range of 200


def test_lab_batched_and_per_image_match_float64_and_clamps():
    x = torch.rand(5, 3, 7, 6, generator=_gen(0))
    reference = rgb_to_lab(x.double())
    batched = rgb_to_lab(x)
    torch.testing.assert_close(batched.double(), reference, atol=_LAB_FLOAT32_ATOL, rtol=0)
    for i in range(len(x)):
        torch.testing.assert_close(
            rgb_to_lab(x[i : i + 1]).double(), reference[i : i + 1], atol=_LAB_FLOAT32_ATOL, rtol=0
        )
    # Out-of-range input is clamped to [0, 1] first.
    torch.testing.assert_close(rgb_to_lab(x * 3 - 1), rgb_to_lab((x * 3 - 1).clamp(0, 1)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_lab_preserves_dtype(dtype):
    x = torch.rand(2, 3, 4, 4, generator=_gen(1))
    out = rgb_to_lab(x.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), rgb_to_lab(x.double()), atol=0.1, rtol=1e-2)


def test_lab_gradient_finite_at_black():
    x = torch.zeros(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    rgb_to_lab(x).sum().backward()
    assert torch.isfinite(x.grad).all()


# ------------------------------------------------------------------------ YCbCr


def _ycbcr_reference(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 full-range (JFIF) YCbCr of (..., 3) RGB in [0, 1], chroma centred."""
    m = np.array(
        [
            [0.299, 0.587, 0.114],
            [-0.168736, -0.331264, 0.5],
            [0.5, -0.418688, -0.081312],
        ]
    )
    ycc = rgb @ m.T + np.array([0.0, 0.5, 0.5])  # JFIF adds 128/255 ~ 0.5 to chroma
    ycc[..., 1:] -= 0.5  # sk_dim centres chroma on 0
    return ycc


def test_ycbcr_matches_bt601_reference():
    x = torch.rand(3, 3, 5, 4, generator=_gen(2), dtype=torch.float64)
    expected = _ycbcr_reference(x.permute(0, 2, 3, 1).numpy())  # (N, H, W, 3)
    out = rgb_to_ycbcr(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_ycbcr_ranges():
    corners = [(r, g, b) for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)]
    ycc = rgb_to_ycbcr(_pixels(corners))[0, :, 0, :]  # (3, 8)
    assert ycc[0].min() >= 0 and ycc[0].max() <= 1 + 1e-12
    assert ycc[1:].abs().max() == pytest.approx(0.5)
    # White and black have zero chroma.
    torch.testing.assert_close(ycc[1:, 0], torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(ycc[1:, -1], torch.zeros(2, dtype=torch.float64))


# ------------------------------------------------------------------------- gray


def test_rgb_to_gray_is_bt601_luma_at_any_scale():
    x = torch.rand(3, 3, 4, 5, generator=_gen(10), dtype=torch.float64) * 255
    expected = sum(w * x[:, i : i + 1] for i, w in enumerate(LUMA_WEIGHTS))
    torch.testing.assert_close(rgb_to_gray(x), expected)
    assert LUMA_WEIGHTS == (0.299, 0.587, 0.114)


# ------------------------------------------------------------------ color_views


@pytest.mark.parametrize("kind", COLOR_VIEW_KINDS)
def test_color_views_shapes(kind):
    x = torch.rand(4, 3, 9, 8, generator=_gen(3))
    views = color_views(x, kind)
    assert [tuple(v.shape) for v in views] == [(4, 1, 9, 8), (4, 2, 9, 8)]
    assert all(v.dtype == x.dtype for v in views)


@pytest.mark.parametrize("kind", COLOR_VIEW_KINDS)
def test_color_views_gamut_maps_to_unit_range(kind):
    # The RGB cube's corners contain the extremes of every channel, so they span
    # [-1, 1] (up to the rounding of the published gamut constants).
    corners = [(r, g, b) for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)]
    z = torch.cat(color_views(_pixels(corners), kind), dim=1)[0, :, 0, :]  # (3, 8)
    torch.testing.assert_close(
        z.min(dim=1).values, -torch.ones(3, dtype=z.dtype), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(z.max(dim=1).values, torch.ones(3, dtype=z.dtype), atol=1e-3, rtol=0)


def test_color_views_lab_values():
    lab = rgb_to_lab(_pixels([(0.2, 0.5, 0.7)]))
    l_view, ab_view = color_views(_pixels([(0.2, 0.5, 0.7)]), "lab")
    torch.testing.assert_close(l_view, (lab[:, :1] - 50) / 50)
    a_mid, a_half = (-86.183 + 98.233) / 2, (86.183 + 98.233) / 2
    torch.testing.assert_close(ab_view[:, :1], (lab[:, 1:2] - a_mid) / a_half)


def test_color_views_unknown_kind():
    with pytest.raises(ValueError, match="lab.*ycbcr"):
        color_views(torch.rand(1, 3, 2, 2), "hsv")


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("fn", [rgb_to_lab, rgb_to_ycbcr, color_views])
@pytest.mark.parametrize("shape", [(3, 4, 4), (2, 4, 4, 4), (2, 1, 4, 4)])
def test_colour_functions_reject_bad_shapes(fn, shape):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fn(torch.rand(shape))


def test_colour_functions_reject_integer_images():
    with pytest.raises(TypeError, match="floating point"):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
