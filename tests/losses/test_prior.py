"""sk_dim.losses.prior: the discriminator's losses and gradient penalty (cortex_DIM's, weight 1)."""

import math

import pytest
import torch
from torch import nn

from sk_dim.losses.prior import (
    discriminator_loss,
    encoder_prior_loss,
    gradient_penalty,
    prior_input,
    sample_prior,
)
from sk_dim.modules.prior import PriorDiscriminator


def reference_penalty(discriminator, inputs: torch.Tensor) -> torch.Tensor:
    """``mean_i ||d D(x_i) / d x_i||^2``, one row at a time."""
    norms = []
    for row in inputs.detach():
        row = row.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(discriminator(row[None]).sum(), row)
        norms.append((grad**2).sum())
    return torch.stack(norms).mean()


def test_a_linear_discriminator_pays_its_squared_weight_norm():
    linear = nn.Linear(3, 1).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 2.0]]))
    penalty = gradient_penalty(lambda x: linear(x).squeeze(-1), torch.randn(7, 3).double())
    torch.testing.assert_close(penalty, torch.tensor(9.0, dtype=torch.float64))  # 1 + 4 + 4
    # The penalty trains the discriminator: d ||w||^2 / dw = 2w, and nothing for the bias.
    penalty.backward()
    torch.testing.assert_close(linear.weight.grad, 2 * linear.weight.detach())
    assert linear.bias.grad is None or not linear.bias.grad.any()


def test_the_penalty_of_the_prior_discriminator_matches_a_row_by_row_gradient():
    torch.manual_seed(0)
    discriminator = PriorDiscriminator(5).double()
    inputs = torch.rand(6, 5, dtype=torch.float64)
    penalty = gradient_penalty(discriminator, inputs)
    torch.testing.assert_close(penalty, reference_penalty(discriminator, inputs))
    # A double backward reaches the first layer's weights.
    penalty.backward()
    assert discriminator.net[0].weight.grad.abs().sum() > 0


def test_the_penalty_leaves_its_inputs_without_gradient_and_works_under_no_grad():
    discriminator = PriorDiscriminator(4)
    y = torch.randn(5, 4, requires_grad=True)
    with torch.no_grad():
        penalty = gradient_penalty(discriminator, y)
    assert penalty.requires_grad and y.grad is None


# -- the adversarial losses against their plain float64 formulas ----------------------------


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_discriminator_loss_is_the_binary_cross_entropy_of_real_prior_and_fake_y():
    g = torch.Generator().manual_seed(3)
    real = 4 * torch.randn(7, generator=g, dtype=torch.float64)
    fake = 4 * torch.randn(5, generator=g, dtype=torch.float64)
    # -log sigmoid(real) for the prior samples, -log(1 - sigmoid(fake)) for y.
    plain = (
        sum(_softplus(-r) for r in real.tolist()) / 7 + sum(_softplus(f) for f in fake.tolist()) / 5
    )
    loss = discriminator_loss(real, fake)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(plain, rel=1e-12)
    # bfloat16 logits (autocast) are scored in float32.
    assert discriminator_loss(real.bfloat16(), fake.bfloat16()).dtype == torch.float32


def test_encoder_prior_loss_wants_y_judged_real():
    logits = torch.tensor([-3.0, 0.0, 2.5], dtype=torch.float64)
    plain = sum(_softplus(-v) for v in logits.tolist()) / 3
    assert encoder_prior_loss(logits).item() == pytest.approx(plain, rel=1e-12)
    # The non-saturating loss: large where the discriminator is sure y is fake.
    assert encoder_prior_loss(torch.tensor([-20.0])).item() == pytest.approx(20.0, rel=1e-6)


def test_prior_input_squashes_only_for_the_uniform_prior():
    y = torch.tensor([[-2.0, 0.0, 3.0]], dtype=torch.float64)
    expected = torch.tensor([[1 / (1 + math.exp(2)), 0.5, 1 / (1 + math.exp(-3))]])
    torch.testing.assert_close(prior_input(y, squash=True), expected.double())
    assert prior_input(y, squash=False) is y


def test_sample_prior_draws_like_its_input_from_the_named_prior():
    like = torch.empty(20_000, 3, dtype=torch.float64)
    torch.manual_seed(0)
    uniform = sample_prior("uniform", like)
    gaussian = sample_prior("gaussian", like)
    assert uniform.shape == gaussian.shape == like.shape
    assert uniform.dtype == gaussian.dtype == torch.float64
    assert uniform.min() >= 0 and uniform.max() < 1
    # U[0, 1]: mean 1/2, variance 1/12; N(0, 1): mean 0, variance 1 (5 standard errors).
    assert abs(uniform.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / uniform.numel())
    assert abs(uniform.var().item() - 1 / 12) < 0.005
    assert abs(gaussian.mean().item()) < 5 / math.sqrt(gaussian.numel())
    assert abs(gaussian.var().item() - 1) < 0.05
    assert gaussian.min() < 0  # not folded onto [0, 1]
    with pytest.raises(ValueError, match=r"Unknown prior 'laplace'; expected one of \('uniform'"):
        sample_prior("laplace", like)
