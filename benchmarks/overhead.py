"""Estimator overhead: ``fit`` through skorch against a plain PyTorch loop.

    python benchmarks/overhead.py [--device auto] [--epochs 2] [--repeats 2]
                                  [--n-images 1024] [--data-home DIR] [--threads 1]

Trains the same network two ways in one run and prints both times and their
ratio, for DIM and CMC on digits (8x8, ``sklearn.datasets.load_digits``) and
on 32x32 RGB images (random pixels, or the first ``--n-images`` CIFAR-10
training images when ``--data-home`` holds them):

- ``estimator``: ``transformer.fit(X)``, everything included (validation,
  scaling statistics, building the module, skorch, history, the finiteness
  checks, the output-width probe);
- ``plain loop``: the module the estimator builds (``build_module``, the
  same class, loss, data, batch size, learning rate and epochs) trained by
  the dozen lines of :func:`plain_fit`: Adam, shuffled tensor batches,
  ``module(x, index)["loss"].backward()`` and, for DIM, the discriminator
  step. Its time also includes building the module.

The data are passed as (N, C, H, W) image arrays, which both ways read as
they are.

Each way runs ``--repeats`` times, alternating which goes first; the table
shows the fastest of each, in wall-clock seconds and in CPU seconds of the
process (``time.process_time``). With one thread the CPU seconds barely
depend on what else runs on the core, so on a shared machine ``cpu ratio``
is the steadier measure; on a GPU only the wall-clock ratio means anything.
Target: the estimator within 1.10x of the plain loop. Pin the process to one
core (``taskset -c 1``) and keep ``--threads 1``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from functools import partial

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from sk_dim import CMCTransformer, DeepInfoMaxTransformer


def plain_fit(template, X: np.ndarray, seed: int) -> torch.nn.Module:
    """Train the module ``template`` would build for X with a plain PyTorch loop.

    ``template.device`` must be a device, not ``"auto"`` (see :func:`main`).
    """
    torch.manual_seed(seed)
    device = template.device
    module = template.build_module(X).to(device).train()
    data = torch.as_tensor(X).to(device)  # (N, C, H, W), as the estimator reads it
    discriminator = module.discriminator
    optimizer = torch.optim.Adam(module.encoder_parameters(), lr=template.lr)
    if discriminator is not None:
        disc_optimizer = torch.optim.Adam(discriminator.parameters(), lr=template.lr)
    batch_size = template.batch_size
    for _ in range(template.max_epochs):
        order = torch.randperm(len(data), device=device)
        for start in range(0, len(data) - 1, batch_size):  # no batch of one sample
            index = order[start : start + batch_size]
            terms = module(data[index], index)
            optimizer.zero_grad()
            terms["loss"].backward()
            optimizer.step()
            if discriminator is not None:
                disc_loss = module.discriminator_step_loss(terms)
                disc_optimizer.zero_grad()
                disc_loss.backward()
                disc_optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return module


def estimator_fit(template, X: np.ndarray):
    return clone(template).fit(X)


def format_row(row: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def timed(fn) -> tuple[float, float]:
    """Wall-clock and CPU seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def images_32(data_home: str | None, n: int, seed: int) -> tuple[np.ndarray, str]:
    """uint8 images of shape (n, 3, 32, 32), and their name."""
    if data_home:
        from sk_dim.datasets import load_cifar10

        try:
            X, _ = load_cifar10(data_home, subset="train", return_X_y=True)
            return X[:n].reshape(-1, 3, 32, 32), f"CIFAR-10 ({n})"
        except (FileNotFoundError, OSError) as exc:
            print(f"CIFAR-10 not found under {data_home!r} ({exc}); using random images")
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), f"random 3x32x32 ({n})"


def cases(args, device: str) -> list[tuple[str, object, np.ndarray]]:
    digits = load_digits().data.astype(np.float32).reshape(-1, 1, 8, 8)
    rgb, rgb_name = images_32(args.data_home, args.n_images, args.seed)
    # float32 and the default layout: the plain loop uses neither autocast nor channels_last.
    common = {
        "max_epochs": args.epochs,
        "device": device,
        "precision": "float32",
        "channels_last": False,
        "random_state": args.seed,
    }
    out = []
    for data_name, X in (("digits 8x8 (1797)", digits), (rgb_name, rgb)):
        out.append((data_name, DeepInfoMaxTransformer(**common), X))
        # The default 4096 negatives exceed these small sets: use them all.
        cmc = CMCTransformer(n_negatives=len(X) - 1, **common)
        out.append((data_name, cmc, X))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-images", type=int, default=512, help="32x32 images")
    parser.add_argument("--data-home", default=os.environ.get("SK_DIM_DATA"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"{where}, torch threads={torch.get_num_threads()}, {args.epochs} epochs, "
          f"best of {args.repeats}")  # fmt: skip

    rows = []
    for data_name, template, X in cases(args, device):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # batch size / negatives caps
            ways = {
                "estimator": partial(estimator_fit, template, X),
                "plain loop": partial(plain_fit, template, X, args.seed),
            }
            times = {name: [] for name in ways}
            for repeat in range(args.repeats):
                for name in list(ways)[:: 1 if repeat % 2 == 0 else -1]:
                    times[name].append(timed(ways[name]))
        (est, est_cpu), (plain, plain_cpu) = (
            np.min(times[name], axis=0) for name in ("estimator", "plain loop")
        )
        rows.append(
            {
                "method": type(template).__name__.replace("Transformer", ""),
                "data": data_name,
                "batch": template.batch_size,
                "estimator s": est,
                "plain loop s": plain,
                "ratio": est / plain,
                "estimator cpu s": est_cpu,
                "plain loop cpu s": plain_cpu,
                "cpu ratio": est_cpu / plain_cpu,
            }
        )
        print(format_row(rows[-1]))
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
