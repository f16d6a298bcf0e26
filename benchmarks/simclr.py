"""SimCLR (Chen, Kornblith, Norouzi and Hinton, ICML 2020): a baseline for the image benchmarks.

Benchmark code, not sk-dim's API: ``benchmarks/cifar10.py`` and ``benchmarks/mnist.py``
add its rows with ``--methods ...,simclr-conv,simclr-resnet18``, each trained for the
wall-clock time the CMC (or DIM) row of the same run took, and probed with the
protocol of ``_protocol.py``. It follows the paper and lightly's CIFAR-10 benchmark
(``SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0)``, ``NTXentLoss``,
``SimCLRProjectionHead``, SGD):

- two views per image: random resized crop (area 0.08 to 1, aspect 3/4 to 4/3) and
  horizontal flip; with p=0.8 colour jitter (brightness, contrast, saturation 0.4, hue
  0.1, in a random order per image, as torchvision's ``ColorJitter``); grayscale with
  p=0.2; no blur at 32x32. Grayscale images (MNIST): crop, flip, and brightness and
  contrast jitter only. Crops are resampled bilinearly without antialiasing
  (``sk_dim.views.random_resized_crop_flip``); lightly's PIL resize antialiases;
- the views standardised with the training images' per-channel mean and std (lightly
  uses ImageNet's);
- projection head Linear(d, 512, no bias) + BatchNorm1d + ReLU + Linear(512, 128);
- NT-Xent at temperature 0.5 over the batch: each of the 2N projections against its
  partner view and the 2N - 2 others (:func:`nt_xent`);
- SGD, momentum 0.9, weight decay 5e-4 on every parameter, lr 0.06 * batch / 128 (the
  linear scaling of lightly's ``cifar10_benchmark.py``: 0.24 at its batch of 512, 0.12
  at our default 256), a cosine decay to zero over the time budget, no warm-up; bfloat16
  autocast where the device computes it (``precision="auto"``, as sk-dim's estimators);
- two backbones: ``"conv"``, the convolutional encoder of CMC's image views
  (``build_encoder("conv", shape, ..., width=0.5)``) with its 1024 * width-unit fc layer
  as the representation h fed to the head, so that the comparison with CMC is one of
  objectives; and ``"resnet18"``, a CIFAR ResNet-18 (3x3 stem, no max-pool, lightly's
  ``ResNetGenerator("resnet-18")``) with h its globally average-pooled last stage (512).

Training stops when the next step would end past ``seconds`` (the cosine schedule runs
on elapsed time, so it reaches zero at the budget whatever the speed of the machine),
or after ``max_steps``. ``transform`` reads ``layer``: ``"blocks"`` (every block's output
average-pooled to at most 4x4 and concatenated, lowest first, as sk-dim's
``layer="blocks"``; the ResNet's blocks are its four stages), ``"conv"`` (the last
convolutional map, at most 4x4, flattened), ``"fc"`` (h, SimCLR's own evaluation
features) or ``"local"`` (the 8x8 map: the conv encoder's ``local``, the ResNet's third
stage), pooled to at most 4x4.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import evaluate_seeds  # noqa: E402

from sk_dim._runtime import autocast, resolve_precision
from sk_dim._torch import resolve_device, seeded
from sk_dim.losses.precision import at_least_float32
from sk_dim.modules.encoders import EncoderOutput, build_encoder, encoder_features, unpack
from sk_dim.views import random_resized_crop_flip

BACKBONES = ("conv", "resnet18")
LAYERS = ("blocks", "conv", "fc", "local")
TEMPERATURE = 0.5
HEAD_HIDDEN, HEAD_OUT = 512, 128
CROP_SCALE = (0.08, 1.0)
# Brightness, contrast, saturation, hue: lightly's cj_strength=0.5 (0.8, 0.8, 0.8, 0.2 times it).
JITTER = (0.4, 0.4, 0.4, 0.1)
JITTER_P, GRAYSCALE_P = 0.8, 0.2
BASE_LR, LR_BATCH = 0.06, 128  # lr = 0.06 * batch_size / 128, lightly's CIFAR-10 scaling
MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4
CONV_WIDTH = 0.5  # CMC's view encoders (VIEW_ENCODER_WIDTH)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, torchvision's grayscale


# --- The loss -------------------------------------------------------------------------


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = TEMPERATURE) -> Tensor:
    """SimCLR's NT-Xent loss, averaged over the 2N anchors of a batch; a 0-d tensor.

    ``z1`` and ``z2`` are (N, D) projections of two views of the same N images: row i
    of ``z1`` and row i of ``z2`` are a positive pair. With s the cosine similarity of
    the 2N projections, anchor i's loss is
    ``-log(exp(s(i, p(i)) / t) / sum_{k != i} exp(s(i, k) / t))``, p(i) its partner:
    one positive and 2N - 2 negatives in the denominator. Computed in float32 at least
    (float64 stays float64), whatever autocast gave.
    """
    n = z1.shape[0]
    z = F.normalize(at_least_float32(torch.cat([z1, z2])), dim=1)  # (2N, D), unit rows
    logits = z @ z.T / temperature  # (2N, 2N): s(i, k) / t
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)  # (2N, 2N)
    logits = logits.masked_fill(self_pairs, -math.inf)  # drops k == i from the sum
    partner = torch.arange(2 * n, device=z.device).roll(n)  # (2N,): i <-> i + N (mod 2N)
    return F.cross_entropy(logits, partner)


# --- The views ------------------------------------------------------------------------


def grayscale(x: Tensor) -> Tensor:  # (N, 3, H, W) -> (N, 1, H, W)
    return (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * x + (1 - factor) * other``, clipped to [0, 1] (torchvision's blend)."""
    return (other + factor * (x - other)).clamp(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:  # factor (N, 1, 1, 1)
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:  # towards the mean gray level
    gray = grayscale(x) if x.shape[1] == 3 else x
    return _blend(x, gray.mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:  # towards the image's gray
    return _blend(x, grayscale(x), factor)


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 3, H, W) hue (in turns, [0, 1)), saturation, value."""
    r, g, b = rgb.unbind(1)  # each (N, H, W)
    value, largest = rgb.max(dim=1)  # (N, H, W)
    chroma = value - rgb.min(dim=1).values  # (N, H, W)
    gray = chroma <= 0
    c = torch.where(gray, torch.ones_like(chroma), chroma)
    sector = torch.where(  # hue in sixths of a turn, by the largest channel
        largest == 0, ((g - b) / c) % 6, torch.where(largest == 1, (b - r) / c + 2, (r - g) / c + 4)
    )
    hue = torch.where(gray, torch.zeros_like(sector), sector / 6)
    saturation = torch.where(value > 0, chroma / value.clamp(min=1e-12), torch.zeros_like(value))
    return torch.stack((hue, saturation, value), dim=1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hsv`: channel n of (R, G, B) = (5, 3, 1) is
    ``v - v s clip(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6``."""
    h, s, v = hsv[:, :1], hsv[:, 1:2], hsv[:, 2:]  # each (N, 1, H, W)
    n = hsv.new_tensor((5.0, 3.0, 1.0)).view(1, 3, 1, 1)
    k = (n + 6 * h) % 6  # (N, 3, H, W)
    return v - v * s * torch.minimum(k, 4 - k).clamp(0.0, 1.0)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:  # shift (N, 1, 1, 1) in turns
    hsv = rgb_to_hsv(x)
    hue = (hsv[:, :1] + shift) % 1.0
    return hsv_to_rgb(torch.cat((hue, hsv[:, 1:]), dim=1))


def simclr_view(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One SimCLR view of each image of ``x``, (N, C, H, W) in [0, 1], same shape.

    Random resized crop and flip, then for a fraction ``JITTER_P`` of the images colour
    jitter in a random order per image, then grayscale for a fraction ``GRAYSCALE_P``.
    One-channel images get brightness and contrast only (and no grayscale). Random
    numbers come from ``generator`` (a CPU generator, or None for torch's global one).
    """
    n, channels = x.shape[:2]
    x = random_resized_crop_flip(x, tuple(x.shape[-2:]), scale=CROP_SCALE, generator=generator)
    ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
    ops = ops if channels == 3 else ops[:2]
    k = len(ops)
    u = torch.rand(n, 2 + 2 * k, generator=generator)  # (N, 2 + 2k), on the CPU
    jittered, gray = u[:, 0] < JITTER_P, u[:, 1] < GRAYSCALE_P  # each (N,)
    strength = torch.tensor(JITTER[:k])  # (k,)
    centre = torch.tensor((1.0, 1.0, 1.0, 0.0)[:k])  # factors around 1, hue shifts around 0
    factors = centre + strength * (2 * u[:, 2 : 2 + k] - 1)  # (N, k)
    order = u[:, 2 + k :].argsort(dim=1)  # (N, k): each image's order of the k jitters
    factors = factors.to(device=x.device, dtype=x.dtype)
    jittered, gray, order = (t.to(x.device) for t in (jittered, gray, order))
    for position in range(k):
        for j, op in enumerate(ops):
            chosen = jittered & (order[:, position] == j)  # (N,)
            if chosen.any():
                x[chosen] = op(x[chosen], factors[chosen, j].view(-1, 1, 1, 1))
    if channels == 3:
        x = torch.where(gray.view(-1, 1, 1, 1), grayscale(x).expand_as(x), x)
    return x


# --- The networks ---------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:  # (N, c_in, H, W) -> (N, c_out, H / s, W / s)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (He et al., 2016): 3x3 stem, no max-pool, 4 stages of 2 blocks.

    Returns an :class:`~sk_dim.modules.encoders.EncoderOutput`: ``blocks`` the four
    stages' outputs (64x32x32, 128x16x16, 256x8x8, 512x4x4 at 32x32), ``local`` the
    third, ``conv`` the last, ``fc`` and ``y`` the global average pool of the last (512).
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(True)
        )
        stages, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))
            )
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.n_features = c_in

    def forward(self, x: Tensor) -> EncoderOutput:  # (N, C, H, W)
        x = self.stem(x)  # (N, 64, H, W)
        blocks = []
        for stage in self.stages:
            x = stage(x)
            blocks.append(x)
        h = x.mean(dim=(2, 3))  # (N, 512)
        return EncoderOutput(local=blocks[2], fc=h, y=h, conv=x, blocks=tuple(blocks))


def build_backbone(name: str, image_shape: Sequence[int], width: float = CONV_WIDTH):
    """(backbone returning an EncoderOutput, width of h) for ``"conv"`` or ``"resnet18"``."""
    if name == "resnet18":
        net = ResNet18(image_shape[0])
        return net, net.n_features
    if name == "conv":
        net = build_encoder("conv", tuple(image_shape), HEAD_OUT, width=width)
        net.head = nn.Identity()  # y = fc: SimCLR's head replaces the encoder's own
        return net, net.fc[0].out_features
    raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")


class SimCLRNet(nn.Module):
    """Backbone, then the projection head Linear + BatchNorm1d + ReLU + Linear."""

    def __init__(self, backbone: nn.Module, n_features: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(n_features, HEAD_HIDDEN, bias=False),
            nn.BatchNorm1d(HEAD_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(HEAD_HIDDEN, HEAD_OUT),
        )

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) standardised -> (N, 128)
        return self.head(unpack(self.backbone(x)).fc)


# --- The transformer ------------------------------------------------------------------


class SimCLR(TransformerMixin, BaseEstimator):
    """SimCLR features as a scikit-learn transformer, trained for a wall-clock budget.

    ``X`` holds images, flattened or (N, C, H, W), uint8 (0..255) or floats (in [0, 1],
    or 0..255 when larger than 1). ``seconds`` bounds the fit's wall-clock time (None:
    ``max_steps`` only); ``lr`` None is 0.06 * batch_size / 128.
    """

    _parameter_constraints = {"layer": [StrOptions(set(LAYERS))]}

    def __init__(
        self,
        backbone="conv",
        *,
        image_shape=(3, 32, 32),
        seconds=60.0,
        max_steps=None,
        batch_size=256,
        lr=None,
        temperature=TEMPERATURE,
        width=CONV_WIDTH,
        layer="blocks",
        pool_size=4,
        precision="auto",
        device="auto",
        random_state=0,
    ):
        self.backbone = backbone
        self.image_shape = image_shape
        self.seconds = seconds
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.width = width
        self.layer = layer
        self.pool_size = pool_size
        self.precision = precision
        self.device = device
        self.random_state = random_state

    def _images(self, X) -> Tensor:  # -> (N, C, H, W) on the device, dtype of X
        X = np.ascontiguousarray(X).reshape(len(X), *self.image_shape)
        return torch.from_numpy(X).to(self.device_)

    def _standardise(self, x: Tensor) -> Tensor:  # (N, C, H, W) in [0, 1]
        return (x - self.mean_) / self.std_

    def _unit(self, x: Tensor) -> Tensor:  # raw pixels -> floats in [0, 1]
        return (x.to(torch.promote_types(x.dtype, torch.float32)) * self.scale_).clamp(0.0, 1.0)

    def fit(self, X, y=None):
        start = time.perf_counter()
        if self.seconds is None and self.max_steps is None:
            raise ValueError("give seconds or max_steps: SimCLR trains for a budget")
        self.device_ = resolve_device(self.device)
        self.precision_ = resolve_precision(self.precision, self.device_)
        self.n_features_in_ = int(np.prod(np.shape(X)[1:]))
        data = self._images(X)  # (N, C, H, W), raw
        n = len(data)
        large = data.dtype == torch.uint8 or float(data.max()) > 1.0
        self.scale_ = 1 / 255 if large else 1.0
        # Per-channel mean and std of the [0, 1] images, in chunks (float64 sums).
        sums = torch.zeros(2, data.shape[1], dtype=torch.float64, device=self.device_)
        for chunk in data.split(4096):
            x = self._unit(chunk).double()
            sums += torch.stack((x.sum((0, 2, 3)), (x * x).sum((0, 2, 3))))
        mean = sums[0] / (n * data[0, 0].numel())
        std = (sums[1] / (n * data[0, 0].numel()) - mean**2).clamp(min=1e-12).sqrt()
        self.mean_, self.std_ = (t.float().view(1, -1, 1, 1) for t in (mean, std))
        with seeded(self.random_state, self.device_):
            backbone, n_features = build_backbone(self.backbone, self.image_shape, self.width)
            self.network_ = SimCLRNet(backbone, n_features).to(self.device_)
        generator = torch.Generator().manual_seed(self.random_state)
        batch = min(self.batch_size, n)
        self.lr_ = BASE_LR * batch / LR_BATCH if self.lr is None else self.lr
        optimizer = torch.optim.SGD(
            self.network_.parameters(), lr=self.lr_, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
        )
        self.network_.train()
        self.loss_curve_, steps, step_s = [], 0, 0.0
        while True:
            order = torch.randperm(n, generator=generator).to(self.device_)
            for begin in range(0, n - batch + 1, batch):  # drop_last, as lightly's loader
                now = time.perf_counter()
                elapsed = now - start
                if self.max_steps is not None and steps >= self.max_steps:
                    break
                if self.seconds is not None and steps > 0 and elapsed + step_s > self.seconds:
                    break
                progress = 0.0 if self.seconds is None else elapsed / self.seconds
                if self.max_steps is not None:
                    progress = max(progress, steps / self.max_steps)
                for group in optimizer.param_groups:  # cosine decay over the budget
                    group["lr"] = self.lr_ * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
                x = self._unit(data[order[begin : begin + batch]])  # (B, C, H, W)
                views = [self._standardise(simclr_view(x, generator)) for _ in range(2)]
                with autocast(self.device_, self.precision_):
                    z1, z2 = (self.network_(v) for v in views)  # each (B, 128)
                loss = nt_xent(z1, z2, self.temperature)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"SimCLR loss is {loss.item()} at step {steps}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                self.loss_curve_.append(loss.item())
                steps += 1
                step_s = time.perf_counter() - now
            else:
                continue
            break
        self.network_.eval()
        self.n_steps_ = steps
        self.n_epochs_ = steps * batch / n
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def transform(self, X) -> np.ndarray:
        """Features of ``layer``, (N, D) float32."""
        check_is_fitted(self, "network_")
        data = self._images(X)
        out = []
        with torch.no_grad(), autocast(self.device_, self.precision_):
            for chunk in data.split(512):
                x = self._standardise(self._unit(chunk))
                z = encoder_features(self.network_.backbone, x, self.layer, self.pool_size, LAYERS)
                out.append(z.float().cpu())
        return torch.cat(out).numpy()


# --- Benchmark rows -------------------------------------------------------------------


def budget(rows, seconds=None, sources=("CMC", "DIM")):
    """``seconds``, else the fit time of the first trained row whose method starts with a
    source (random-weight rows are skipped); with the budget's origin, for the notes."""
    if seconds is not None:
        return float(seconds), f"{seconds:g} s given"
    for source in sources:
        for row in rows:
            if row["method"].startswith(source) and "random weights" not in row["method"]:
                return float(row["fit s"]), f"the fit time of {row['method']}"
    raise ValueError("SimCLR needs a time budget: run CMC or DIM first, or give --simclr-seconds")


def simclr_rows(backbone, X_fit, data, seconds, seeds, probe=LAYERS[:3], **params):
    """SimCLR rows for each seed, named with the steps their budget allowed, and their spread."""
    model = SimCLR(backbone, seconds=seconds, **params)

    def steps(fitted):
        return f"{fitted.n_steps_} steps ({fitted.n_epochs_:.1f} epochs)"

    return evaluate_seeds(f"SimCLR-{backbone}", model, X_fit, data, probe, seeds, describe=steps)
