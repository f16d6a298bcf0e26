"""sk_dim.losses.precision: losses compute in at least float32; float64 stays float64."""

import pytest
import torch

from sk_dim.losses.precision import at_least_float32


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
        (torch.int64, torch.float32),
    ],
)
def test_lower_precisions_widen_to_float32_and_float64_stays(dtype, expected):
    x = torch.tensor([0.0, -2.5, 3.0, 1024.0]).to(dtype)
    out = at_least_float32(x)
    assert out.dtype == expected
    # Widening is exact: every value of the narrower type is a float32.
    assert torch.equal(out.double(), x.double())


def test_float32_and_float64_are_returned_as_they_are():
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(5, dtype=dtype)
        assert at_least_float32(x) is x  # no copy on the common path


def test_a_sum_of_bfloat16_scores_keeps_float32_accuracy():
    # 1 + 256 * 2^-9 = 1.5: in bfloat16 (8 significant bits) each 2^-9 added to a
    # running value of 1 or more rounds away; widened first, the sum is exact.
    scores = torch.cat([torch.ones(1), torch.full((256,), 2.0**-9)]).bfloat16()

    def running_sum(values):
        total = values[0]
        for value in values[1:]:
            total = total + value  # in the tensors' own dtype
        return total.item()

    assert running_sum(at_least_float32(scores)) == 1.5
    assert running_sum(scores) == 1.0


def test_the_gradient_flows_back_to_the_low_precision_input():
    x = torch.tensor([0.5, -1.25, 3.0], dtype=torch.bfloat16, requires_grad=True)
    at_least_float32(x).pow(2).sum().backward()
    assert x.grad.dtype == torch.bfloat16
    assert torch.equal(x.grad, 2 * x.detach())  # d(x^2)/dx = 2x, exact for these values
