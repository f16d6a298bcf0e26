"""Each critic against a plain formula: explicit loops over pairs, the layers applied by hand.

The layouts matter as much as the values: DIM's critics give ``scores[i, j, l] =
T(y_i, M_j at location l)`` and the pair critics ``scores[i, j] = T(x_j, y_i)``, with
the positives on the diagonal (what :mod:`sk_dim.losses` expects).
"""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sk_dim.modules.critics import (
    ConcatCritic,
    ConcatLocalCritic,
    DotLocalCritic,
    GlobalCritic,
    ResidualMLP,
    SeparableCritic,
)

N, C, H, W, D, U = 3, 4, 2, 3, 5, 6


def _seeded(module: nn.Module, seed: int) -> nn.Module:
    """float64, eval mode, with every parameter and batch-norm statistic random (not 0/1)."""
    g = torch.Generator().manual_seed(seed)
    module = module.double().eval()
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            with torch.no_grad():
                tensor.copy_(torch.rand(tensor.shape, generator=g, dtype=tensor.dtype) + 0.5)
    return module


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    local = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    y = torch.randn(N, D, generator=g, dtype=torch.float64)
    return local, y


def _linear(layer: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """A Linear or 1x1 convolution applied to one vector v (n_in,)."""
    weight = layer.weight.reshape(layer.weight.shape[0], -1)
    out = weight @ v
    return out + layer.bias if layer.bias is not None else out


def _batch_norm(bn: nn.Module, v: torch.Tensor) -> torch.Tensor:
    return (v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def _layer_norm(ln: nn.LayerNorm, v: torch.Tensor) -> torch.Tensor:
    centred = v - v.mean()
    return centred / torch.sqrt((centred**2).mean() + ln.eps) * ln.weight + ln.bias


def _residual(net: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """LayerNorm(W2 relu(BN(W1 v)) + b2 + W_s v): ResidualMLP, and Residual1x1 at one place."""
    first, bn, _, second = net.block
    hidden = torch.relu(_batch_norm(bn, _linear(first, v)))
    return _layer_norm(net.norm, _linear(second, hidden) + _linear(net.shortcut, v))


def test_residual_mlp_is_its_formula():
    net = _seeded(ResidualMLP(D, U), 1)
    _, y = _inputs()
    expected = torch.stack([_residual(net, y[i]) for i in range(N)])
    torch.testing.assert_close(net(y), expected)


def test_dot_local_critic_scores_every_y_against_every_location():
    critic = _seeded(DotLocalCritic(C, D, n_units=U), 2)
    local, y = _inputs()
    scores = critic(local, y)
    assert scores.shape == (N, N, H * W)
    for i in range(N):
        g = _residual(critic.embed_global, y[i])
        for j in range(N):
            for loc in range(H * W):
                m = _residual(critic.embed_local, local[j].flatten(1)[:, loc])
                torch.testing.assert_close(scores[i, j, loc], g @ m / math.sqrt(U))


def test_concat_local_critic_is_an_mlp_on_y_concatenated_with_each_location():
    critic = _seeded(ConcatLocalCritic(C, D, n_units=U), 3)
    local, y = _inputs()
    scores = critic(local, y)
    assert scores.shape == (N, N, H * W)
    # The paper's form: one layer on the concatenation [M_j[l]; y_i], then the MLP.
    first = torch.cat([critic.from_local.weight[:, :, 0], critic.from_global.weight], dim=1)
    _, second, _, last = critic.rest
    for i in range(N):
        for j in range(N):
            for loc in range(H * W):
                pair = torch.cat([local[j].flatten(1)[:, loc], y[i]])  # (C + D,)
                hidden = torch.relu(first @ pair + critic.from_local.bias)
                hidden = torch.relu(_linear(second, hidden))
                torch.testing.assert_close(scores[i, j, loc], _linear(last, hidden)[0])


def test_global_critic_scores_every_y_against_every_whole_map():
    critic = _seeded(GlobalCritic((C, H, W), D, n_units=U), 4)
    local, y = _inputs()
    scores = critic(local, y)
    assert scores.shape == (N, N, 1)
    conv, bn, _ = critic.reduce
    for i in range(N):
        g = _residual(critic.embed_global, y[i])
        for j in range(N):
            columns = local[j].flatten(1)  # (C, H*W)
            reduced = torch.stack(
                [torch.relu(_batch_norm(bn, _linear(conv, columns[:, k]))) for k in range(H * W)],
                dim=1,
            )  # (32, H*W), flattened channel-major as torch flattens (32, H, W)
            m = _residual(critic.embed_local, reduced.flatten())
            torch.testing.assert_close(scores[i, j, 0], g @ m / math.sqrt(U))


def _mlp(net: nn.Sequential, v: torch.Tensor) -> torch.Tensor:
    layers = [layer for layer in net if isinstance(layer, nn.Linear)]
    for layer in layers[:-1]:
        v = F.relu(_linear(layer, v))
    return _linear(layers[-1], v)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_concat_critic_is_an_mlp_on_x_concatenated_with_y(n_layers):
    critic = _seeded(ConcatCritic(3, 2, hidden_units=4, n_layers=n_layers), 5)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(N, 3, generator=g, dtype=torch.float64)
    y = torch.randn(N, 2, generator=g, dtype=torch.float64)
    scores = critic.scores(x, y)
    for i in range(N):
        for j in range(N):
            torch.testing.assert_close(scores[i, j], _mlp(critic.net, torch.cat([x[j], y[i]]))[0])
    torch.testing.assert_close(critic(x, y), scores.diagonal())


def test_separable_critic_is_a_dot_product_of_two_embeddings():
    critic = _seeded(SeparableCritic(3, 2, hidden_units=4), 7)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(N, 3, generator=g, dtype=torch.float64)
    y = torch.randn(N, 2, generator=g, dtype=torch.float64)
    scores = critic.scores(x, y)
    for i in range(N):
        for j in range(N):
            torch.testing.assert_close(scores[i, j], _mlp(critic.g, x[j]) @ _mlp(critic.h, y[i]))
    torch.testing.assert_close(critic(x, y), scores.diagonal())
