"""sk_dim.views.crops: batched random resized crops and flips, and the crop scales."""

from __future__ import annotations

import pytest
import torch

from sk_dim.views import (
    AUGMENT_CROP_SCALE,
    CMC_CROP_SCALE,
    ColorViews,
    CropViews,
    ImageAugment,
    random_resized_crop_flip,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_resized_crop_output_shape_and_dtype():
    x = torch.rand(6, 5, 20, 30, generator=_gen(4))
    assert random_resized_crop_flip(x, 8, generator=_gen(0)).shape == (6, 5, 8, 8)
    assert random_resized_crop_flip(x, (8, 12), generator=_gen(0)).shape == (6, 5, 8, 12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resized_crop_full_no_flip_is_identity(dtype):
    x = torch.rand(4, 3, 10, 10, generator=_gen(5), dtype=dtype)
    out = random_resized_crop_flip(x, 10, scale=(1, 1), ratio=(1, 1), flip_p=0.0)
    assert out.dtype == dtype
    torch.testing.assert_close(out, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resized_crop_full_flip_is_mirror(dtype):
    x = torch.rand(4, 3, 10, 12, generator=_gen(6), dtype=dtype)
    out = random_resized_crop_flip(x, (10, 12), scale=(1, 1), ratio=(1.2, 1.2), flip_p=1.0)
    torch.testing.assert_close(out, x.flip(-1))


def test_resized_crop_flip_is_per_sample():
    x = torch.rand(1, 3, 8, 8, generator=_gen(7)).expand(64, -1, -1, -1)
    out = random_resized_crop_flip(x, 8, scale=(1, 1), ratio=(1, 1), flip_p=0.5, generator=_gen(1))
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(out, x.flip(-1), atol=1e-5).flatten(1).all(1)
    assert torch.all(same ^ mirrored)
    assert 10 < int(mirrored.sum()) < 54


def _coordinate_image(n: int, size: int) -> torch.Tensor:
    """(n, 2, size, size) image whose channels hold each pixel centre's (x, y)."""
    coords = torch.arange(size, dtype=torch.float64) + 0.5
    xx = coords.expand(size, size)
    return torch.stack((xx, xx.T)).expand(n, -1, -1, -1)


def test_resized_crop_geometry():
    # A quarter-area square crop of a 16x16 image is 8x8; resampled to 8x8 it is
    # a pure translation, so the coordinate channels step by exactly one pixel
    # (-1 when flipped) and stay inside the image.
    x = _coordinate_image(32, 16)
    out = random_resized_crop_flip(x, 8, scale=(0.25, 0.25), ratio=(1, 1), generator=_gen(2))
    dx = out[:, 0].diff(dim=-1)  # (N, 8, 7)
    dy = out[:, 1].diff(dim=-2)  # (N, 7, 8)
    step = dx[:, :1, :1]  # (N, 1, 1): +1 or -1
    torch.testing.assert_close(step.abs(), torch.ones_like(step))
    torch.testing.assert_close(dx, step.expand_as(dx))
    torch.testing.assert_close(dy, torch.ones_like(dy))
    torch.testing.assert_close(out[:, 0].diff(dim=-2), torch.zeros(32, 7, 8, dtype=x.dtype))
    assert out.min() >= 0.5 - 1e-9 and out.max() <= 15.5 + 1e-9
    # Crops land at different positions for different samples.
    assert out[:, :, 0, 0].unique(dim=0).shape[0] == 32


def test_resized_crop_respects_scale_and_ratio():
    x = _coordinate_image(200, 32)
    out = random_resized_crop_flip(
        x, 16, scale=(0.3, 0.6), ratio=(0.5, 2.0), flip_p=0.0, generator=_gen(3)
    )
    # Linear ramps resample exactly, so the crop extent is (span * out / (out - 1)).
    w = (out[:, 0, 0, -1] - out[:, 0, 0, 0]) * 16 / 15
    h = (out[:, 1, -1, 0] - out[:, 1, 0, 0]) * 16 / 15
    area, aspect = w * h / 32**2, w / h
    assert area.min() >= 0.3 - 1e-6 and area.max() <= 0.6 + 1e-6
    assert aspect.min() >= 0.5 - 1e-6 and aspect.max() <= 2.0 + 1e-6


def test_resized_crop_samples_differ():
    x = torch.rand(1, 3, 16, 16, generator=_gen(8)).expand(8, -1, -1, -1)
    out = random_resized_crop_flip(x, 12, generator=_gen(4))
    flat = out.flatten(1)
    dists = torch.cdist(flat, flat)
    assert (dists + torch.eye(8) > 1e-3).all()


def test_resized_crop_deterministic_with_generator():
    x = torch.rand(5, 3, 12, 12, generator=_gen(9))
    a = random_resized_crop_flip(x, 8, generator=_gen(123))
    b = random_resized_crop_flip(x, 8, generator=_gen(123))
    c = random_resized_crop_flip(x, 8, generator=_gen(124))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    # Without a generator it still runs (global RNG).
    assert random_resized_crop_flip(x, 8).shape == (5, 3, 8, 8)


def test_resized_crop_empty_batch():
    out = random_resized_crop_flip(torch.rand(0, 3, 8, 8), 4)
    assert out.shape == (0, 3, 4, 4)


def test_each_method_has_one_crop_scale_used_by_its_views():
    assert CMC_CROP_SCALE == (0.6, 1.0) and AUGMENT_CROP_SCALE == (0.3, 1.0)
    assert ColorViews("lab", 1.0).crop_scale == CMC_CROP_SCALE
    assert CropViews(torch.zeros(1), torch.ones(1)).crop_scale == CMC_CROP_SCALE
    assert ImageAugment().crop_scale == AUGMENT_CROP_SCALE


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"out_size": 0},
        {"out_size": (4, -1)},
        {"out_size": (4, 4, 4)},
        {"out_size": 4, "scale": (0.0, 1.0)},
        {"out_size": 4, "scale": (0.8, 0.2)},
        {"out_size": 4, "scale": (0.5, 1.5)},
        {"out_size": 4, "ratio": (0.0, 1.0)},
        {"out_size": 4, "flip_p": 1.5},
    ],
)
def test_resized_crop_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        random_resized_crop_flip(torch.rand(2, 3, 8, 8), **kwargs)


def test_augmentations_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_resized_crop_flip(torch.rand(3, 8, 8), 4)
