"""sk_dim.modules.prior: the prior discriminator of Deep InfoMax, applied by hand."""

import torch

from sk_dim.modules.prior import PriorDiscriminator


def test_the_discriminator_is_the_papers_mlp():
    linears = [m for m in PriorDiscriminator(6).modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 1000), (1000, 200), (200, 1)]


def test_one_logit_per_row_as_the_layers_applied_by_hand():
    torch.manual_seed(0)
    discriminator = PriorDiscriminator(4).double()
    y = torch.randn(5, 4, dtype=torch.float64)
    first, _, second, _, last = discriminator.net
    expected = []
    for row in y:  # one row at a time: W3 relu(W2 relu(W1 y + b1) + b2) + b3
        hidden = torch.relu(first.weight @ row + first.bias)
        hidden = torch.relu(second.weight @ hidden + second.bias)
        expected.append((last.weight @ hidden + last.bias)[0])
    logits = discriminator(y)
    assert logits.shape == (5,)
    torch.testing.assert_close(logits, torch.stack(expected))


def test_in_place_relus_leave_the_input_alone():
    y = torch.randn(3, 2) - 5  # mostly negative: a ReLU on y itself would zero it
    before = y.clone()
    PriorDiscriminator(2)(y)
    assert torch.equal(y, before)
