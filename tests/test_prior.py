"""Prior matching: what the discriminator sees, and that y moves towards the prior."""

import pytest
import torch
from torch import nn

from sk_dim.modules.infomax import DeepInfoMax


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
