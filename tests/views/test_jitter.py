"""sk_dim.views.jitter: colour jitter (clipped and not) and random grayscale."""

from __future__ import annotations

import torch

from sk_dim.views import (
    color_jitter,
    random_grayscale,
    rgb_to_gray,
    unclipped_color_jitter,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_grayscale_turns_a_fraction_gray():
    x = torch.rand(400, 3, 4, 4, generator=_gen(11))
    out = random_grayscale(x, 0.25, _gen(0))
    gray = (out == rgb_to_gray(x).expand_as(x)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(gray ^ kept)
    assert 60 < int(gray.sum()) < 140
    assert torch.equal(random_grayscale(x, 0.0, _gen(0)), x)


def test_unclipped_jitter_is_scale_free_and_clipped_jitter_clips():
    x = torch.rand(64, 3, 6, 6, generator=_gen(12), dtype=torch.float64)
    # Linear in the pixels: jittering 0..255 pixels is jittering 0..1 ones, times 255.
    torch.testing.assert_close(
        unclipped_color_jitter(x * 255, 0.4, generator=_gen(1)),
        unclipped_color_jitter(x, 0.4, generator=_gen(1)) * 255,
    )
    torch.testing.assert_close(unclipped_color_jitter(x, 0.4, p=0.0, generator=_gen(1)), x)
    out = color_jitter(x, 0.9, p=1.0, generator=_gen(2))
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, x)
    torch.testing.assert_close(color_jitter(x, 0.4, p=0.0, generator=_gen(2)), x)
