"""One training step of every objective, pinned in float64 arithmetic.

What a change of behaviour moves (an architecture, a loss, a view, an
augmentation, a default) shows in the loss terms and gradients of a single step;
what a change of machine moves (the kernels MKL and oneDNN pick per CPU, the
order of a reduction) does not, at float64. So every case builds the untrained
module ``fit`` would train, sets its parameters from numpy's seeded generator
(independent of torch's initialisers), converts it to float64 and records the
loss terms of one forward pass on a fixed batch and the norm of every
parameter's gradient. ``training_step.json`` holds those numbers with the
environment that wrote them.

Tolerance: float64 keeps 2.2e-16 relative per operation; a forward and backward
pass through a few convolutional layers, batch norm and a contrastive softmax
(temperature 0.07) grows that by far less than 1e6 (measured: agreement to
1e-12 between ``ATEN_CPU_CAPABILITY=default`` and AVX2 kernels), so a relative
tolerance of 1e-8 never fails on a change of machine, and any change of
behaviour (which moves these numbers by percents) fails it.

Random draws inside the step (crops, negatives, prior samples) come from
torch's CPU generator, seeded: the same on every machine. After an intended
change of behaviour, regenerate with ``python tests/integration/test_training_step.py``
and say so in CHANGES.md.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
from sklearn.datasets import load_digits

from sk_dim import CMCTransformer, DeepInfoMaxTransformer

PINNED = Path(__file__).with_name("pinned") / "training_step.json"
RTOL = 1e-8
BATCH = 12
FAST = dict(device="cpu", precision="float32", random_state=0)
# The colour test images are noise around a gradient, not photographs: their shape is given.
RGB = dict(FAST, image_shape=(3, 16, 16))


def _digits() -> np.ndarray:
    return load_digits().data[:40]


def _colour_images(n: int = 40, side: int = 16) -> np.ndarray:
    rng = np.random.RandomState(0)
    base = rng.rand(n, 3, 1, 1) * np.linspace(0, 1, side)[None, None, :, None]
    return (base + 0.2 * rng.rand(n, 3, side, side)).reshape(n, -1)


CASES = {
    # The paper's DIM (no augmented views); the other DIM cases take the defaults.
    "dim_jsd": (
        lambda: DeepInfoMaxTransformer(8, mi_estimator="jsd", augment=False, **FAST),
        _digits,
    ),
    "dim_infonce_concat": (
        lambda: DeepInfoMaxTransformer(8, mi_estimator="infonce", local_critic="concat", **FAST),
        _digits,
    ),
    "dim_dv_gaussian_augment": (
        lambda: DeepInfoMaxTransformer(8, mi_estimator="dv", prior="gaussian", augment=True, **RGB),
        _colour_images,
    ),
    "dim_mlp": (
        lambda: DeepInfoMaxTransformer(8, encoder="mlp", mi_estimator="jsd", gamma=0.5, **FAST),
        _digits,
    ),
    "cmc_lab_nce": (lambda: CMCTransformer(8, n_negatives=16, **RGB), _colour_images),
    "cmc_ycbcr_softmax": (
        lambda: CMCTransformer(8, views="ycbcr", loss="softmax", n_negatives=16, **RGB),
        _colour_images,
    ),
    "cmc_crops": (lambda: CMCTransformer(8, views="crops", n_negatives=16, **FAST), _digits),
    "cmc_halves": (
        lambda: CMCTransformer(8, views="halves", image_shape=None, n_negatives=16, **FAST),
        _digits,
    ),
}


def _set_parameters(module: torch.nn.Module, seed: int = 0) -> None:
    """Parameters from numpy's generator, scaled as the usual initialisers scale them."""
    rng = np.random.RandomState(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            u = rng.uniform(-1, 1, size=tuple(param.shape))
            if param.dim() >= 2:  # weights: variance 1 / fan_in
                value = u * np.sqrt(3.0 / param[0].numel())
            elif name.endswith("weight"):  # normalisation scales
                value = 1 + 0.1 * u
            else:  # biases
                value = 0.1 * u
            param.copy_(torch.from_numpy(value))


def one_step(name: str) -> dict[str, float]:
    """Loss terms and gradient norms of one float64 training step of case ``name``."""
    make_estimator, make_data = CASES[name]
    estimator, X = make_estimator(), make_data()
    torch.manual_seed(0)
    module = estimator.build_module(X).double().train()
    _set_parameters(module)
    x = torch.from_numpy(X[:BATCH]).double()
    shape = estimator.image_shape
    x = x.view(BATCH, *(_input_shape(x) if shape == "auto" else shape or (x.shape[1],)))
    torch.manual_seed(1)
    terms = module(x, torch.arange(BATCH))
    record = {
        f"term/{key}": value.item()
        for key, value in terms.items()
        if value.dim() == 0 and value.dtype == torch.float64
    }
    module.zero_grad()
    terms["loss"].backward()
    if module.discriminator is not None:
        module.discriminator_step_loss(terms).backward()
    for key, param in module.named_parameters():
        if param.grad is not None:
            record[f"grad_norm/{key}"] = param.grad.norm().item()
    return record


def _input_shape(x: torch.Tensor) -> tuple[int, ...]:
    return {64: (1, 8, 8), 768: (3, 16, 16)}[x.shape[1]]  # digits, or the colour images


def environment() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


@pytest.fixture(scope="module")
def pinned() -> dict:
    return json.loads(PINNED.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_training_step_as_pinned(name, pinned):
    expected = pinned["cases"][name]
    got = one_step(name)
    assert sorted(got) == sorted(expected), f"{name}: other terms or parameters than pinned"
    where = f"pinned with {pinned['environment']}, running on {environment()}"
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=RTOL, abs=1e-12), f"{name} {key}; {where}"


def test_pinned_file_records_its_environment(pinned):
    assert {"torch", "numpy", "cpu_capability"} <= set(pinned["environment"])
    assert sorted(pinned["cases"]) == sorted(CASES)


if __name__ == "__main__":
    PINNED.parent.mkdir(exist_ok=True)
    cases = {name: one_step(name) for name in sorted(CASES)}
    PINNED.write_text(json.dumps({"environment": environment(), "cases": cases}, indent=1) + "\n")
    print(f"wrote {PINNED}: {sum(map(len, cases.values()))} numbers")
