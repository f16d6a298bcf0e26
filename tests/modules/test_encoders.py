"""sk_dim.modules.encoders: the encoder contract, the built-in encoders and their layers."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sk_dim.modules.encoders import (
    ConvEncoder,
    EncoderFeatures,
    EncoderOutput,
    MLPEncoder,
    PaperEncoder32,
    Standardize,
    build_encoder,
    check_layer,
    pool_map,
    select_layer,
    unpack,
)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- the contract -------------------------------------------------------------------------


def test_unpack_reads_every_tuple_form():
    local, conv, fc, y = _rand(2, 3, 4, 4), _rand(2, 5, 2, 2), _rand(2, 6), _rand(2, 7)
    out = unpack((local, y))
    assert out.local is local and out.y is y and out.fc is None and out.conv is None
    out = unpack((local, fc, y))
    assert out.fc is fc and out.conv is None
    out = unpack([local, conv, fc, y])
    assert (out.local, out.conv, out.fc, out.y) == (local, conv, fc, y)
    given = EncoderOutput(local, fc, y)
    assert unpack(given) is given
    # A 2-D "map" is one location.
    assert unpack((fc, y)).local.shape == (2, 6, 1, 1)


def test_unpack_names_the_forms_it_accepts():
    with pytest.raises(ValueError, match=r"got shapes \[\(2, 3, 4\), \(2, 7\)\]"):
        unpack((_rand(2, 3, 4), _rand(2, 7)))
    with pytest.raises(ValueError, match="local, conv"):
        unpack((_rand(2, 3, 4, 4), _rand(2, 5), _rand(2, 6), _rand(2, 7)))  # a 2-D conv
    with pytest.raises(TypeError, match="got Tensor"):
        unpack(_rand(2, 7))
    with pytest.raises(TypeError, match="got tuple"):
        unpack((_rand(2, 7),))


def test_feature_maps_are_the_blocks_or_local_and_conv():
    local, conv, fc, y = _rand(2, 3, 4, 4), _rand(2, 5, 2, 2), _rand(2, 6), _rand(2, 7)
    assert EncoderOutput(local, fc, y).feature_maps() == (local,)
    assert EncoderOutput(local, fc, y, conv).feature_maps() == (local, conv)
    assert EncoderOutput(local, fc, y, conv, (conv,)).feature_maps() == (conv,)


# -- layers -------------------------------------------------------------------------------


def test_pool_map_averages_blocks_of_the_map_and_keeps_small_maps():
    m = torch.arange(2 * 3 * 4 * 4, dtype=torch.float64).reshape(2, 3, 4, 4)
    pooled = pool_map(m, 2)  # 2x2 averages of each channel, flattened channel-major
    expected = m.reshape(2, 3, 2, 2, 2, 2).mean(dim=(3, 5)).flatten(1)
    torch.testing.assert_close(pooled, expected)
    assert pooled.shape == (2, 3 * 2 * 2)
    torch.testing.assert_close(pool_map(m, 8), m.flatten(1))  # smaller than pool_size: as is


def test_select_layer_reads_each_layer():
    local, conv, fc, y = _rand(2, 3, 4, 4), _rand(2, 5, 2, 2), _rand(2, 6), _rand(2, 7)
    out = EncoderOutput(local, fc, y, conv)
    assert select_layer(out, "y", 2) is y and select_layer(out, "fc", 2) is fc
    torch.testing.assert_close(select_layer(out, "conv", 2), conv.flatten(1))
    torch.testing.assert_close(select_layer(out, "local", 2), pool_map(local, 2))
    blocks = select_layer(out, "blocks", 1)  # each map pooled to 1x1: its channel means
    torch.testing.assert_close(blocks, torch.cat([local.mean((2, 3)), conv.mean((2, 3))], 1))
    with pytest.raises(ValueError, match="layer='fc' needs an encoder"):
        select_layer(EncoderOutput(local, None, y), "fc", 2)
    with pytest.raises(ValueError, match="layer='conv' needs an encoder"):
        select_layer(EncoderOutput(local, fc, y), "conv", 2)
    with pytest.raises(ValueError, match="Unknown layer 'z'"):
        select_layer(out, "z", 2)


def test_check_layer_names_the_valid_layers():
    check_layer("y", ("local", "y"))
    with pytest.raises(ValueError, match=r"^Unknown layer 'fc'; expected one of \('local', 'y'\)$"):
        check_layer("fc", ["local", "y"])


def test_encoder_features_checks_the_layer_then_reads_it():
    encoder = MLPEncoder(5, 3, hidden=8).eval()
    reader = EncoderFeatures(encoder, ["y", "local"])
    x = _rand(4, 5)
    torch.testing.assert_close(reader.features(x, "y", 2), encoder(x).y)
    with pytest.raises(ValueError, match="Unknown layer 'fc'"):
        reader.features(x, "fc", 2)


# -- the built-in encoders ----------------------------------------------------------------


def test_standardize_is_x_minus_mean_over_std_in_at_least_float32():
    mean, std = torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [4.0]])
    scale = Standardize(mean, std)
    x = torch.tensor([[3, 7], [10, 2]], dtype=torch.uint8)  # raw pixels
    out = scale(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[1.0, 3.0], [2.0, 0.0]]))
    assert scale(x.double()).dtype == torch.float64
    assert set(scale.state_dict()) == {"mean", "std"}  # saved with the network


def test_mlp_encoder_is_its_layers_with_the_lower_layer_as_one_location():
    torch.manual_seed(0)
    encoder = MLPEncoder(6, 3, hidden=8).eval()
    x = _rand(5, 2, 3)  # flattened to 6 features
    out = encoder(x)
    assert out.local.shape == (5, 8, 1, 1) and out.fc.shape == (5, 8) and out.y.shape == (5, 3)

    def bn_relu(bn, v):
        return F.relu((v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight)

    lower = bn_relu(encoder.lower[1], x.flatten(1) @ encoder.lower[0].weight.T)
    fc = bn_relu(encoder.upper[1], lower @ encoder.upper[0].weight.T)
    torch.testing.assert_close(out.local[:, :, 0, 0], lower)
    torch.testing.assert_close(out.y, fc @ encoder.head.weight.T + encoder.head.bias)


def test_conv_encoder_keeps_every_block_and_refuses_tiny_images():
    out = ConvEncoder((1, 16, 16), 4).eval()(torch.zeros(2, 1, 16, 16))
    assert [tuple(b.shape[1:]) for b in out.blocks] == [(64, 8, 8), (128, 8, 8), (256, 4, 4)]
    assert out.blocks[-1] is out.conv and out.blocks[-2] is out.local
    with pytest.raises(ValueError, match=r"at least 4x4, got image_shape=\(1, 3, 8\)"):
        ConvEncoder((1, 3, 8), 4)


def test_build_encoder_picks_by_name_and_input_shape():
    assert isinstance(build_encoder("auto", (1, 8, 8), 4), ConvEncoder)
    assert isinstance(build_encoder("auto", (10,), 4), MLPEncoder)
    assert isinstance(build_encoder("dcgan32", (3, 32, 32), 4), PaperEncoder32)
    half = build_encoder("conv", (1, 8, 8), 4, width=0.5)
    assert half.head.in_features == 512  # FC 1024 at half width
    mlp = build_encoder("mlp", (2, 3, 3), 4)
    assert mlp.lower[0].in_features == 18  # an image flattened
    own = nn.Linear(3, 3)
    assert build_encoder(own, (3,), 4) is own
    with pytest.raises(ValueError, match="encoder='conv' needs images"):
        build_encoder("conv", (10,), 4)
    with pytest.raises(ValueError, match="needs 32x32 images"):
        build_encoder("dcgan32", (3, 28, 28), 4)
    with pytest.raises(ValueError, match="Unknown encoder 'resnet'"):
        build_encoder("resnet", (3, 32, 32), 4)
