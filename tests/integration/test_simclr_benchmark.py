"""The SimCLR baseline of the image benchmarks (Chen et al., ICML 2020): benchmarks/simclr.py."""

import colorsys
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

PATH = Path(__file__).parents[2] / "benchmarks" / "simclr.py"
spec = importlib.util.spec_from_file_location("simclr_benchmark", PATH)
simclr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(simclr)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


def reference_nt_xent(z1, z2, temperature):
    """NT-Xent from its definition, in float64, one anchor at a time."""
    z = np.concatenate([z1, z2]).astype(np.float64)  # (2N, D)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    losses = []
    for i in range(n2):
        partner = (i + n2 // 2) % n2
        scores = {k: math.exp(z[i] @ z[k] / temperature) for k in range(n2) if k != i}
        assert len(scores) == n2 - 1  # the positive and 2N - 2 negatives
        losses.append(-math.log(scores[partner] / sum(scores.values())))
    return float(np.mean(losses))


@pytest.mark.parametrize("n, d, temperature", [(1, 3, 0.5), (5, 7, 0.5), (8, 4, 0.1)])
def test_nt_xent_matches_the_definition(n, d, temperature):
    rng = np.random.default_rng(n)
    z1, z2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    expected = reference_nt_xent(z1, z2, temperature)
    exact = simclr.nt_xent(torch.from_numpy(z1), torch.from_numpy(z2), temperature)
    assert exact.dtype == torch.float64
    assert exact.item() == pytest.approx(expected, rel=1e-12)
    single = simclr.nt_xent(torch.from_numpy(z1).float(), torch.from_numpy(z2).float(), temperature)
    assert single.dtype == torch.float32
    assert single.item() == pytest.approx(expected, rel=1e-5)
    # bfloat16 inputs (autocast) are scored in float32.
    low = simclr.nt_xent(torch.from_numpy(z1).bfloat16(), torch.from_numpy(z2).bfloat16())
    assert low.dtype == torch.float32


def test_nt_xent_is_symmetric_and_scale_free():
    rng = np.random.default_rng(0)
    z1, z2 = (torch.from_numpy(rng.normal(size=(6, 5))) for _ in range(2))
    loss = simclr.nt_xent(z1, z2)
    assert simclr.nt_xent(z2, z1).item() == pytest.approx(loss.item(), rel=1e-12)
    assert simclr.nt_xent(3 * z1, 0.5 * z2).item() == pytest.approx(loss.item(), rel=1e-12)


def test_hsv_matches_colorsys_and_inverts():
    rgb = torch.rand(4, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rgb[0, :, 0, 0] = 0.5  # a gray pixel: hue and saturation 0
    rgb[0, :, 0, 1] = 0.0  # black
    hsv = simclr.rgb_to_hsv(rgb)
    pixels = rgb.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    expected = torch.tensor([colorsys.rgb_to_hsv(*p) for p in pixels], dtype=torch.float64)
    torch.testing.assert_close(hsv.permute(0, 2, 3, 1).reshape(-1, 3), expected)
    torch.testing.assert_close(simclr.hsv_to_rgb(hsv), rgb)
    zero = torch.zeros(4, 1, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(simclr.adjust_hue(rgb, zero), rgb)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    green = simclr.adjust_hue(red, torch.full((1, 1, 1, 1), 1 / 3))
    torch.testing.assert_close(green.flatten(), torch.tensor([0.0, 1.0, 0.0]))


def test_colour_adjustments_at_their_extremes():
    x = torch.rand(3, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    one, zero = torch.ones(3, 1, 1, 1), torch.zeros(3, 1, 1, 1)
    for adjust in (simclr.adjust_brightness, simclr.adjust_contrast, simclr.adjust_saturation):
        torch.testing.assert_close(adjust(x, one), x)
    assert simclr.adjust_brightness(x, zero).abs().max() == 0
    torch.testing.assert_close(simclr.adjust_saturation(x, zero), simclr.grayscale(x).expand_as(x))
    flat = simclr.adjust_contrast(x, zero)
    torch.testing.assert_close(flat, simclr.grayscale(x).mean((1, 2, 3), keepdim=True).expand_as(x))


def test_two_views_of_one_image_differ():
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(0)
    v1, v2 = (simclr.simclr_view(x.clone(), generator) for _ in range(2))
    assert v1.shape == v2.shape == x.shape
    assert v1.min() >= 0 and v1.max() <= 1
    differs = (v1 - v2).flatten(1).abs().amax(1) > 1e-3
    assert differs.all()
    gray = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    g1, g2 = (simclr.simclr_view(gray, generator) for _ in range(2))
    assert g1.shape == gray.shape and ((g1 - g2).flatten(1).abs().amax(1) > 1e-3).all()


def test_grayscale_and_jitter_rates():
    x = torch.rand(2000, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    view = simclr.simclr_view(x, torch.Generator().manual_seed(5))
    gray = (view.amax(1) - view.amin(1)).amax((1, 2)) < 1e-6
    assert abs(gray.float().mean().item() - simclr.GRAYSCALE_P) < 0.03


def test_resnet18_shapes_and_size():
    net = simclr.ResNet18(3).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 32, 32))
    shapes = [tuple(b.shape[1:]) for b in out.blocks]
    assert shapes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert out.fc.shape == (2, 512) and out.conv.shape == (2, 512, 4, 4)
    # The CIFAR ResNet-18 without its classifier: 11,168,832 parameters.
    assert sum(p.numel() for p in net.parameters()) == 11_168_832
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())


def test_projection_head():
    net = simclr.SimCLRNet(*simclr.build_backbone("conv", (3, 16, 16)))
    kinds = [type(m) for m in net.head]
    assert kinds == [torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU, torch.nn.Linear]
    assert (net.head[0].in_features, net.head[0].out_features) == (512, 512)
    assert net.head[-1].out_features == 128


@pytest.mark.parametrize("shape", [(3, 16, 16), (1, 12, 12)])
def test_two_steps_on_random_images(shape):
    X = np.random.default_rng(0).integers(0, 256, (40, int(np.prod(shape))), dtype=np.uint8)
    model = simclr.SimCLR("conv", image_shape=shape, seconds=None, max_steps=2, batch_size=16)
    before = simclr.SimCLR("conv", image_shape=shape, seconds=None, max_steps=1, lr=0.0).fit(X)
    model.fit(X)
    assert model.n_steps_ == 2 and len(model.loss_curve_) == 2
    assert np.isfinite(model.loss_curve_).all()
    # Two positives among 2 * 16 projections: the loss starts near log(31).
    assert abs(model.loss_curve_[0] - math.log(31)) < 1.0
    assert model.lr_ == pytest.approx(0.06 * 16 / 128)
    weights = model.network_.backbone.local[0].weight
    assert not torch.equal(weights, before.network_.backbone.local[0].weight)
    for layer in simclr.LAYERS:
        Z = model.set_params(layer=layer).transform(X[:5])
        assert Z.dtype == np.float32 and Z.shape[0] == 5 and np.isfinite(Z).all()
    np.testing.assert_array_equal(model.transform(X[:5]), model.transform(X[:5]))


def test_the_time_budget_stops_training():
    X = np.random.default_rng(1).integers(0, 256, (64, 3 * 8 * 8), dtype=np.uint8)
    model = simclr.SimCLR("conv", image_shape=(3, 8, 8), seconds=0.5, batch_size=16).fit(X)
    assert model.n_steps_ >= 1
    assert model.fit_seconds_ < 2.0


def test_budget_comes_from_the_cmc_row():
    rows = [
        {"method": "k-means", "fit s": 3.0},
        {"method": "CMC (L/ab), random weights", "fit s": 1.0},
        {"method": "CMC (L/ab), 5 epochs", "fit s": 42.0},
    ]
    assert simclr.budget(rows)[0] == 42.0
    assert simclr.budget(rows, 7)[0] == 7.0
    assert simclr.budget([{"method": "DIM (defaults)", "fit s": 9.0}])[0] == 9.0
    with pytest.raises(ValueError, match="budget"):
        simclr.budget(rows[:1])


def test_resnet18_trains_one_step_and_reads_every_layer():
    X = np.random.default_rng(2).integers(0, 256, (8, 3 * 8 * 8), dtype=np.uint8)
    model = simclr.SimCLR("resnet18", image_shape=(3, 8, 8), seconds=None, max_steps=1)
    model.set_params(batch_size=4).fit(X)
    assert model.n_steps_ == 1 and np.isfinite(model.loss_curve_).all()
    widths = {
        layer: model.set_params(layer=layer).transform(X[:2]).shape[1] for layer in simclr.LAYERS
    }
    # 8x8 input: stages of 8x8, 4x4, 2x2, 1x1, each pooled to at most 4x4.
    assert widths == {
        "blocks": 64 * 16 + 128 * 16 + 256 * 4 + 512,
        "conv": 512,
        "fc": 512,
        "local": 1024,
    }


def test_simclr_rows_name_each_seed_with_the_steps_it_trained():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (48, 3 * 8 * 8), dtype=np.uint8)
    y = np.arange(48) % 2
    data = (X[:32], y[:32], X[32:], y[32:])
    rows, notes = simclr.simclr_rows(
        "conv", X, data, None, [4, 5], probe=("fc",), image_shape=(3, 8, 8), max_steps=2,
        batch_size=16,
    )  # fmt: skip
    assert [r["method"] for r in rows] == [
        "SimCLR-conv, seed 4, 2 steps (0.7 epochs)",
        "SimCLR-conv, seed 5, 2 steps (0.7 epochs)",
    ]
    assert [r["layer"] for r in rows] == ["fc", "fc"]
    (note,) = notes
    assert note.startswith("- SimCLR-conv, layer fc: ")
