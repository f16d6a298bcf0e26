"""sk_dim.views.checks: the argument checks of the view functions, by their messages."""

import numpy as np
import pytest
import torch

from sk_dim.views.checks import check_image_batch, check_range


def test_a_float_image_batch_passes():
    check_image_batch(torch.zeros(2, 5, 4, 4), "x")
    check_image_batch(torch.zeros(0, 3, 4, 4, dtype=torch.float16), "rgb", channels=3)


def test_image_batch_errors_name_the_argument_and_what_it_got():
    with pytest.raises(TypeError, match="^x must be a torch.Tensor, got ndarray$"):
        check_image_batch(np.zeros((2, 3, 4, 4)), "x")
    with pytest.raises(
        ValueError, match=r"^x must have shape \(N, C, H, W\), got 3-D shape \(3, 4, 4\)$"
    ):
        check_image_batch(torch.zeros(3, 4, 4), "x")
    with pytest.raises(ValueError, match=r"^rgb must have shape \(N, 3, H, W\), got 2-D"):
        check_image_batch(torch.zeros(3, 4), "rgb", channels=3)
    with pytest.raises(
        ValueError,
        match=r"^rgb must have shape \(N, 3, H, W\) \(RGB channels first\), got shape "
        r"\(2, 4, 4, 3\)$",
    ):
        check_image_batch(torch.zeros(2, 4, 4, 3), "rgb", channels=3)
    with pytest.raises(TypeError, match="^x must be a floating point tensor .* torch.uint8$"):
        check_image_batch(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "x")


@pytest.mark.parametrize("value", [(0.5, 1.0), (1.0, 1.0), [0.1, 0.2], (np.float32(0.3), 1)])
def test_a_pair_within_its_bounds_passes(value):
    check_range("scale", value, 0.0, 1.0)


@pytest.mark.parametrize("value", [(0.0, 1.0), (0.8, 0.2), (0.5, 1.5)])
def test_a_pair_outside_its_bounds_names_the_rule(value):
    rule = rf"^scale must satisfy 0.0 < min <= max <= 1.0, got {value!r}$"
    with pytest.raises(ValueError, match=rule.replace("(", r"\(").replace(")", r"\)")):
        check_range("scale", value, 0.0, 1.0)


@pytest.mark.parametrize("value", [0.5, (0.5,), (0.1, 0.2, 0.3), ("a", "b"), None])
def test_anything_but_a_pair_of_numbers_is_refused(value):
    with pytest.raises(ValueError, match=r"^ratio must be a pair \(min, max\), got "):
        check_range("ratio", value, 0.0, float("inf"))
