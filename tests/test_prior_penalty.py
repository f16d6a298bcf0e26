"""The prior discriminator's gradient penalty (cortex_DIM's, weight 1)."""

import pytest
import torch
from torch import nn

from sk_dim.losses import discriminator_loss
from sk_dim.losses.prior import gradient_penalty, prior_input, sample_prior
from sk_dim.modules.infomax import GRADIENT_PENALTY, DeepInfoMax
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


class LinearEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):  # (N, 8) -> local (N, 8, 1, 1), y (N, 3)
        return x[:, :, None, None], self.linear(x)


@pytest.mark.parametrize("prior", ["uniform", "gaussian"])
def test_the_discriminator_step_adds_the_penalty_on_prior_samples_and_on_y(prior):
    torch.manual_seed(0)
    module = DeepInfoMax(
        LinearEncoder(),
        (8,),
        alpha=0.0,
        beta=1.0,
        gamma=1.0,
        mi_estimator="jsd",
        local_critic="dot",
        prior=prior,
    )
    terms = module(torch.randn(16, 8))
    torch.manual_seed(1)
    loss = module.discriminator_step_loss(terms)

    # Reference: cortex_DIM's Discriminator.routine, loss = -difference + gp with
    # gp = 0.5 * (penalty on the real (prior) samples + penalty on the fake (y)).
    torch.manual_seed(1)
    disc = module.discriminator
    y = prior_input(terms["y"].detach(), squash=prior == "uniform")
    real = sample_prior(prior, y)
    cross_entropy = discriminator_loss(disc(real), disc(y))
    penalty = 0.5 * (reference_penalty(disc, real) + reference_penalty(disc, y))
    assert GRADIENT_PENALTY == 1.0
    torch.testing.assert_close(loss, cross_entropy + penalty)
    # Both parts are logged; "discriminator" stays the cross-entropy.
    torch.testing.assert_close(terms["discriminator"], cross_entropy.detach())
    torch.testing.assert_close(terms["gradient_penalty"], penalty.detach())
    assert not terms["discriminator"].requires_grad
