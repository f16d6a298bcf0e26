"""Encoders: map inputs to a local feature map, hidden layers and a global vector.

The contract every encoder follows (built-in or a user's ``nn.Module``)::

    forward(x: Tensor (N, C, H, W) or (N, F))
        -> (local, y), (local, fc, y), (local, conv, fc, y) or an EncoderOutput
        local: (N, C_local, H_local, W_local)   feature map "M" of the DIM paper
        conv:  (N, C_conv, H_conv, W_conv)       optional last convolutional layer
        fc:    (N, D_fc)                          optional last hidden layer
        y:     (N, n_components)                  global representation
        blocks: every convolutional block's output, lowest first (EncoderOutput
                only; by default local and conv)

Inputs arrive standardised (see :class:`Standardize`), as float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOCAL_CHANNELS = 128
FC_UNITS = 1024
MIN_IMAGE_SIDE = 4


class EncoderOutput(NamedTuple):
    local: Tensor  # (N, C_local, H_local, W_local)
    fc: Tensor | None  # (N, D_fc)
    y: Tensor  # (N, n_components)
    # Last fields, with defaults, so that EncoderOutput(local, fc, y) still works.
    conv: Tensor | None = None  # (N, C_conv, H_conv, W_conv)
    blocks: tuple[Tensor, ...] | None = None  # each (N, C_b, H_b, W_b), lowest first

    def feature_maps(self) -> tuple[Tensor, ...]:
        """Every convolutional block's output, lowest first (layer "blocks")."""
        if self.blocks is not None:
            return self.blocks
        return (self.local,) if self.conv is None else (self.local, self.conv)


def unpack(out) -> EncoderOutput:
    """Normalise an encoder's return value to :class:`EncoderOutput`."""
    if isinstance(out, EncoderOutput):
        return out
    if isinstance(out, (tuple, list)) and len(out) in (2, 3, 4):
        local, *middle, y = out
        conv = middle[0] if len(middle) == 2 else None
        fc = middle[-1] if middle else None
        if local.dim() == 2:  # a vector "map": one location
            local = local[:, :, None, None]
        if local.dim() != 4 or y.dim() != 2 or (conv is not None and conv.dim() != 4):
            raise ValueError(
                "An encoder must return (local (N, C, H, W), y (N, D)), (local, fc, y) or "
                f"(local, conv (N, C, H, W), fc, y); got shapes {[tuple(t.shape) for t in out]}"
            )
        return EncoderOutput(local, fc, y, conv)
    raise TypeError(
        "An encoder must return a tuple (local_map, y), (local_map, fc, y) or "
        f"(local_map, conv, fc, y), got {type(out).__name__}"
    )


def check_layer(layer: str, layers: Sequence[str]) -> None:
    """Raise a ValueError naming the valid ``layers`` unless ``layer`` is one of them.

    ``transform`` calls it: ``set_params`` after fit is not validated.
    """
    if layer not in layers:
        raise ValueError(f"Unknown layer {layer!r}; expected one of {tuple(layers)}")


def select_layer(out: EncoderOutput, layer: str, pool_size: int) -> Tensor:
    """Features of one ``layer`` ("local", "blocks", "conv", "fc" or "y") as (N, D) rows.

    "local" average-pools the local map M to at most ``pool_size`` x
    ``pool_size``, so its width is ``C_local * min(pool_size, H)
    * min(pool_size, W)`` whatever the input size. "blocks" pools every
    convolutional block's output the same way and concatenates them, lowest
    first: a linear probe then sees edges and colours as well as parts.
    "conv" is the last convolutional layer, flattened (the DIM paper's
    "conv" features).
    """
    if layer == "y":
        return out.y
    if layer == "fc":
        if out.fc is None:
            raise ValueError("layer='fc' needs an encoder that returns (local, fc, y)")
        return out.fc
    if layer == "conv":
        if out.conv is None:
            raise ValueError(
                "layer='conv' needs an encoder with a last convolutional layer that it "
                "returns as (local, conv, fc, y), as the built-in convolutional encoders "
                "do; this encoder does not (feature vectors have none): use layer='local'"
            )
        return out.conv.flatten(1)
    if layer == "local":
        return pool_map(out.local, pool_size)
    if layer == "blocks":
        return torch.cat([pool_map(m, pool_size) for m in out.feature_maps()], dim=1)
    raise ValueError(
        f"Unknown layer {layer!r}; expected one of ('local', 'blocks', 'conv', 'fc', 'y')"
    )


def pool_map(feature_map: Tensor, pool_size: int) -> Tensor:  # (N, C, H, W) -> (N, C * h * w)
    """Average-pool a map to at most ``pool_size`` x ``pool_size`` and flatten it."""
    height, width = feature_map.shape[2:]
    grid = (min(pool_size, height), min(pool_size, width))
    return F.adaptive_avg_pool2d(feature_map, grid).flatten(1)


def encoder_features(
    encoder: nn.Module, x: Tensor, layer: str, pool_size: int, layers: Sequence[str]
) -> Tensor:  # (N, ...) -> (N, D)
    """Features of one of ``layers`` computed by ``encoder`` (see :func:`select_layer`)."""
    check_layer(layer, layers)
    return select_layer(unpack(encoder(x)), layer, pool_size)


class EncoderFeatures(nn.Module):
    """An encoder alone, reading the features of its layers (no training parts)."""

    def __init__(self, encoder: nn.Module, layers: Sequence[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.layers = tuple(layers)

    def features(self, x: Tensor, layer: str, pool_size: int) -> Tensor:  # (N, ...) -> (N, D)
        return encoder_features(self.encoder, x, layer, pool_size, self.layers)


class Standardize(nn.Module):
    """Scale raw inputs (uint8 pixels or floats) with statistics learned at fit.

    Keeping this inside the network lets raw uint8 data live on the device
    (4x smaller than float32) and be converted one batch at a time.
    """

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    def forward(self, x: Tensor) -> Tensor:
        # float64 inputs stay float64 (references for the float32 arithmetic).
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        return (x - self.mean) / self.std


def _conv_block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    # 4x4 stride-2 convolutions halve the size exactly, as in the DIM code;
    # 3x3 stride-1 convolutions keep small inputs (8x8 digits) from vanishing.
    kernel = 4 if stride == 2 else 3
    return [
        nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class ConvEncoder(nn.Module):
    """Convolutional encoder sized to the input image.

    Stride-2 convolutions shrink the image until the local feature map is at
    most 8x8 with 128 channels (the DIM paper's M), then a 256-channel
    convolution (the last convolutional layer, "conv"), a 1024-unit fully
    connected layer and the linear output y. For 32x32 inputs this is exactly
    the paper's encoder: three 4x4 stride-2 convolutions of 64, 128 and 256
    channels with batch norm, FC 1024, y; the local map is 128x8x8 and the
    last convolutional layer 256x4x4.

    ``width`` scales every layer's channels and units: CMC gives each of its
    view encoders half the width (0.5), as the paper splits AlexNet in half.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], n_components: int, width: float = 1.0
    ) -> None:
        super().__init__()
        channels, height, side = image_shape
        if min(height, side) < MIN_IMAGE_SIDE:
            raise ValueError(
                f"Convolutional encoders need images of at least {MIN_IMAGE_SIDE}x"
                f"{MIN_IMAGE_SIDE}, got image_shape={tuple(image_shape)}"
            )
        # Halve until the local map is at most 8x8: small images keep their
        # resolution, since local MI needs locations to contrast.
        n_down = max(0, math.ceil(math.log2(min(height, side) / 8)))
        base, local, top, fc = (
            max(1, round(width * c)) for c in (64, LOCAL_CHANNELS, 256, FC_UNITS)
        )
        widths = [base] * max(0, n_down - 2) + [base, local]
        strides = [2] * n_down + [1] * (len(widths) - n_down)
        layers: list[nn.Module] = []
        c_in = channels
        for c_out, stride in zip(widths, strides, strict=True):
            layers += _conv_block(c_in, c_out, stride)
            c_in = c_out
        self.local = nn.Sequential(*layers)
        self.top = nn.Sequential(*_conv_block(local, top, 2))
        with torch.no_grad():
            n_flat = self.top(self.local(torch.zeros(2, *image_shape))).flatten(1).shape[1]
        self.fc = nn.Sequential(
            nn.Linear(n_flat, fc, bias=False),
            nn.BatchNorm1d(fc),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(fc, n_components)

    def forward(self, x: Tensor) -> EncoderOutput:
        blocks = []
        for module in self.local:  # keeps each block's output (after its ReLU)
            x = module(x)
            if isinstance(module, nn.ReLU):
                blocks.append(x)
        local = x  # (N, 128 * width, <=8, <=8)
        conv = self.top(local)  # (N, 256 * width, <=4, <=4)
        fc = self.fc(conv.flatten(1))  # (N, 1024 * width)
        return EncoderOutput(local, fc, self.head(fc), conv, (*blocks, conv))


class PaperEncoder32(ConvEncoder):
    """The DIM paper's 32x32 encoder (accepts any channel count)."""

    def __init__(
        self, image_shape: tuple[int, int, int], n_components: int, width: float = 1.0
    ) -> None:
        if tuple(image_shape[1:]) != (32, 32):
            raise ValueError(f"encoder='dcgan32' needs 32x32 images, got image_shape={image_shape}")
        super().__init__(image_shape, n_components, width)


class MLPEncoder(nn.Module):
    """Encoder for feature vectors that are not images.

    There is no spatial map, so the first hidden layer stands in for the
    local features (one location): local MI then maximizes the MI between y
    and a lower layer of the network.
    """

    def __init__(self, n_features: int, n_components: int, hidden: int = 512) -> None:
        super().__init__()
        self.lower = nn.Sequential(
            nn.Linear(n_features, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True)
        )
        self.upper = nn.Sequential(
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True)
        )
        self.head = nn.Linear(hidden, n_components)

    def forward(self, x: Tensor) -> EncoderOutput:
        lower = self.lower(x.flatten(1))  # (N, hidden)
        fc = self.upper(lower)  # (N, hidden)
        return EncoderOutput(lower[:, :, None, None], fc, self.head(fc))


ENCODERS = ("auto", "conv", "dcgan32", "mlp")


def build_encoder(
    name: str | nn.Module,
    input_shape: tuple[int, ...],
    n_components: int,
    width: float = 1.0,
) -> nn.Module:
    """Build the encoder ``name`` for inputs of ``input_shape`` (without N).

    ``input_shape`` is ``(C, H, W)`` for images and ``(F,)`` for vectors;
    ``width`` scales the layers of the convolutional encoders.
    A ``nn.Module`` is returned as is (it must follow the module contract).
    """
    if isinstance(name, nn.Module):
        return name
    is_image = len(input_shape) == 3
    if name == "auto":
        name = "conv" if is_image else "mlp"
    if name == "mlp":
        return MLPEncoder(math.prod(input_shape), n_components)
    if name in ("conv", "dcgan32"):
        if not is_image:
            raise ValueError(f"encoder={name!r} needs images; set image_shape=(C, H, W)")
        cls = ConvEncoder if name == "conv" else PaperEncoder32
        return cls(input_shape, n_components, width)
    raise ValueError(f"Unknown encoder {name!r}; expected one of {ENCODERS} or an nn.Module")
