"""sk_dim.modules.infomax: Deep InfoMax's objective.

Prior matching (what the discriminator sees, that y moves towards the prior, the
gradient penalty of its step) and the held-out objective."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import sk_dim
from sk_dim.losses import discriminator_loss, mi_bound
from sk_dim.losses.prior import prior_input, sample_prior
from sk_dim.modules.encoders import unpack
from sk_dim.modules.infomax import GRADIENT_PENALTY, DeepInfoMax

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- prior matching ----------------------------------------------------------------------


class LinearEncoder(nn.Module):
    """A linear "encoder" whose y starts concentrated near 0."""

    def __init__(self, n_in: int = 8, n_out: int = 2):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            self.linear.weight.mul_(0.1)
            self.linear.bias.zero_()

    def forward(self, x):
        return x[:, :, None, None], self.linear(x)


def prior_only(prior: str) -> DeepInfoMax:
    # No MI term: the encoder is trained against the discriminator alone.
    return DeepInfoMax(
        LinearEncoder(),
        (8,),
        alpha=0.0,
        beta=0.0,
        gamma=1.0,
        mi_estimator="jsd",
        local_critic="dot",
        prior=prior,
    )


def ks_to_uniform(u: torch.Tensor) -> torch.Tensor:
    """Kolmogorov-Smirnov distance of each column of u (N, D) to U[0, 1]: (D,)."""
    s, _ = u.sort(0)
    n = len(s)
    i = torch.arange(1, n + 1, dtype=s.dtype)[:, None]
    return torch.maximum(i / n - s, s - (i - 1) / n).max(0).values


class Recorder(nn.Module):
    """A discriminator that records its inputs."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, y):
        self.seen.append(y.detach().clone())
        return self.scale * y.sum(1)


@pytest.mark.parametrize(("prior", "squash"), [("uniform", True), ("gaussian", False)])
def test_both_players_see_the_squashed_y_for_the_uniform_prior(prior, squash):
    module = prior_only(prior)
    module.discriminator = Recorder()
    x = torch.randn(16, 8)
    terms = module(x)
    module.discriminator_step_loss(terms)
    y = module.encoder(x)[1].detach()
    expected = torch.sigmoid(y) if squash else y
    seen = module.discriminator.seen
    encoder_view, prior_samples, discriminator_view = seen[:3]
    torch.testing.assert_close(encoder_view, expected)
    torch.testing.assert_close(discriminator_view, expected)
    # The gradient penalty is taken on the same prior samples and squashed y.
    torch.testing.assert_close(seen[3], prior_samples)
    torch.testing.assert_close(seen[4], expected)
    # The prior samples live where the squashed y can go: [0, 1] for the uniform prior.
    assert bool(((prior_samples >= 0) & (prior_samples <= 1)).all()) == squash


def test_training_against_the_discriminator_moves_sigmoid_y_towards_uniform():
    torch.manual_seed(0)
    module = prior_only("uniform")
    encoder_opt = torch.optim.Adam(module.encoder_parameters(), lr=1e-2)
    disc_opt = torch.optim.Adam(module.discriminator.parameters(), lr=1e-3)
    x_eval = torch.randn(1000, 8)

    def ks():
        with torch.no_grad():
            return ks_to_uniform(torch.sigmoid(module.encoder(x_eval)[1])).max().item()

    before = ks()
    for _ in range(80):  # the two steps of training.SelfSupervisedNet.train_step
        terms = module(torch.randn(64, 8))
        encoder_opt.zero_grad()
        terms["loss"].backward()
        encoder_opt.step()
        disc_loss = module.discriminator_step_loss(terms)
        disc_opt.zero_grad()
        disc_loss.backward()
        disc_opt.step()
    assert before > 0.4  # sigmoid(y) starts in a narrow band around 0.5
    assert ks() < 0.15


# -- the discriminator's step: cross-entropy and gradient penalty -------------------------


def reference_penalty(discriminator, inputs: torch.Tensor) -> torch.Tensor:
    """``mean_i ||d D(x_i) / d x_i||^2``, one row at a time."""
    norms = []
    for row in inputs.detach():
        row = row.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(discriminator(row[None]).sum(), row)
        norms.append((grad**2).sum())
    return torch.stack(norms).mean()


class LinearEncoder3(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x):  # (N, 8) -> local (N, 8, 1, 1), y (N, 3)
        return x[:, :, None, None], self.linear(x)


@pytest.mark.parametrize("prior", ["uniform", "gaussian"])
def test_the_discriminator_step_adds_the_penalty_on_prior_samples_and_on_y(prior):
    torch.manual_seed(0)
    module = DeepInfoMax(
        LinearEncoder3(),
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


# -- the held-out objective --------------------------------------------------------------


def small_dim(augment):
    torch.manual_seed(0)
    est = sk_dim.DeepInfoMaxTransformer(embedding_dim=8, augment=augment)
    return est.build_module(load_digits().data[:64].reshape(-1, 1, 8, 8).astype(np.float32))


def test_dim_validation_terms_match_forward_less_the_prior_term():
    module = small_dim(augment=False).eval()
    x = torch.from_numpy(load_digits().data[:32].astype(np.float32)).view(32, 1, 8, 8)
    with torch.no_grad():
        terms = module(x)
        held_out = module.validation_terms(x, torch.arange(32), torch.Generator())
    assert set(held_out) == {"loss", "global_mi", "local_mi"}
    torch.testing.assert_close(held_out["loss"], terms["loss"] - module.gamma * terms["prior"])


def test_dim_augmented_validation_is_the_cross_view_objective_with_fixed_draws():
    module = small_dim(augment=True).eval()
    x = torch.from_numpy(load_digits().data[:32].astype(np.float32)).view(32, 1, 8, 8)

    def held_out(seed):
        torch.manual_seed(seed + 100)  # the global generator must not matter
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return module.validation_terms(x, torch.arange(32), generator)

    first, again, other = held_out(0), held_out(0), held_out(1)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert not torch.equal(first["loss"], other["loss"])

    # By hand: two copies from the generator, each y against the other copy's map.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        copies = [module.augment(x, generator), module.augment(x, generator)]
        (m1, y1), (m2, y2) = (
            (out.local, out.y) for out in map(unpack, map(module.encoder, copies))
        )

        def mi(critic):
            bounds = [mi_bound(critic(m2, y1), "infonce"), mi_bound(critic(m1, y2), "infonce")]
            return (bounds[0] + bounds[1]) / 2

        loss = -(module.alpha * mi(module.global_critic) + module.beta * mi(module.local_critic))
    torch.testing.assert_close(first["loss"], loss, rtol=1e-5, atol=1e-5)
