"""CIFAR-10 benchmark: linear probe on CMC (L/ab) and DIM(L) features.

    python benchmarks/cifar10.py --data-home DIR [--n-train 10000 --n-test 2000
                                 --n-fit N --epochs N --loss softmax --threads T]

Reads the official python batches with ``sk_dim.datasets.load_cifar10`` from
``DIR`` (or ``DIR/cifar-10-batches-py``); exits with a "skipping" message when
they are absent. Nothing is downloaded.

Every method is a feature extractor trained (self-supervised) on the first
``--n-fit`` training images, followed by a linear probe fitted on the features
of the first ``--n-train`` training images and scored on the first
``--n-test`` test images. The probe is ``StandardScaler`` +
``LogisticRegression`` whose ``C`` (0.01, 0.1 or 1) is chosen on a held-out
fifth of the probe's training images and then refitted on all of them: the
usual linear evaluation protocol, which tunes the probe's regularisation for
each feature set (trained and random features want different ``C``). Each
trained network is probed at two layers: the pooled local map
(``layer="conv"``, at the default ``pool_size``) and the representation the
objective trains (CMC's L2-normalised embedding, DIM's y). The hidden layer
``"fc"`` was never the best of the three and is left out to save time:

- raw pixels;
- CMC: ``CMCTransformer`` with Lab views (an L and an ab encoder, each half
  the width of DIM's) and the loss of ``--loss``;
- DIM(L): ``DeepInfoMaxTransformer(alpha=0, beta=1, gamma=0.1)`` on the L
  channel alone (the single-view baseline of the CMC paper), 1/6 of CMC's
  epochs;
- the same networks with random weights: fitted for one epoch with
  ``lr=1e-12`` on the first 2,000 training images. Adam's steps are then
  about 1e-12, so the weights stay at their (seeded) initialisation, while
  the batch-norm running statistics are estimated from the data as they
  would be in training: an "architecture only" baseline.

The last lines compare each method's best layer with the best layer of its
random-weight network and with raw pixels.

Columns: probe accuracy, the probe's C, feature-learning fit seconds, training images per
second (``n_fit * epochs / fit seconds``) and total seconds including
transform and probe.

On CPU the defaults learn from 25,000 images for 12 epochs and probe on
10,000 / 2,000, in under 15 minutes on 2 cores (834 s in the last run). On a
GPU the defaults are ``--n-fit 50000`` and 50 epochs; use ``--n-train 50000
--n-test 10000`` for the full data set.
"""

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.datasets import load_cifar10
from sk_dim.evaluation import probe_features
from sk_dim.views import rgb_to_lab

RANDOM_FIT_IMAGES = 2000
LAYERS = {"CMC (L/ab)": ("conv", "embedding"), "DIM(L)": ("conv", "y")}
PROBE_CS = (0.01, 0.1, 1.0)
PROBE_ITERATIONS = 100


def load(data_home):
    try:
        Xtr, ytr = load_cifar10(data_home, subset="train", return_X_y=True)
        Xte, yte = load_cifar10(data_home, subset="test", return_X_y=True)
    except (FileNotFoundError, OSError) as exc:
        print(f"skipping: CIFAR-10 python batches not found under {data_home!r} ({exc})")
        sys.exit(0)
    return Xtr, ytr, Xte, yte


def lightness(X):
    """The L channel of CIELAB as (n, 1, 32, 32) uint8 images: DIM(L)'s input."""
    rgb = torch.from_numpy(X).view(-1, 3, 32, 32).float() / 255
    L = rgb_to_lab(rgb)[:, :1] * 2.55  # L in [0, 100] -> [0, 255]
    return L.round().clamp(0, 255).to(torch.uint8).numpy()


def transformers(epochs, loss, seed):
    # channels_last: 1.1x faster for both networks on CPU too (benchmarks/throughput.py).
    common = {"channels_last": True, "random_state": seed}
    return {
        "CMC (L/ab)": CMCTransformer(loss=loss, max_epochs=epochs, **common),
        "DIM(L)": DeepInfoMaxTransformer(
            alpha=0, beta=1, gamma=0.1, max_epochs=max(1, epochs // 6), **common
        ),
    }


def probe_accuracy(Ztr, ytr, Zte, yte):
    """Test accuracy and C of the probe whose C scored best on the last fifth of Ztr."""
    # float32 and 100 lbfgs iterations: 3x faster than float64 and 300 iterations,
    # within half a point of their validation accuracy on these features.
    scaler = StandardScaler().fit(Ztr)
    Ztr, Zte = (scaler.transform(Z).astype(np.float32) for Z in (Ztr, Zte))
    n_val = len(Ztr) // 5
    fit, val = slice(None, -n_val), slice(-n_val, None)
    # Increasing C with warm starts: each fit starts from the last one's weights.
    classifier = LogisticRegression(max_iter=PROBE_ITERATIONS, warm_start=True)
    scores = {}
    for C in PROBE_CS:
        classifier.set_params(C=C).fit(Ztr[fit], ytr[fit])
        scores[C] = classifier.score(Ztr[val], ytr[val])
    best = max(scores, key=scores.get)
    final = LogisticRegression(C=best, max_iter=PROBE_ITERATIONS).fit(Ztr, ytr)
    return final.score(Zte, yte), best


def run(name, transformer, X_fit, data):
    """Fit on X_fit, probe every layer of ``data`` (Xtr, ytr, Xte, yte); one row per layer."""
    Xtr, ytr, Xte, yte = data
    start = time.perf_counter()
    if transformer is None:
        fit_s, epochs, layers = 0.0, 1, (None,)
    else:
        transformer.fit(X_fit)
        fit_s, epochs = time.perf_counter() - start, transformer.max_epochs
        layers = LAYERS[name.split(",")[0]]
    rows = []
    for layer in layers:
        Ztr = probe_features(transformer, Xtr, layer=layer)
        Zte = probe_features(transformer, Xte, layer=layer)
        accuracy, C = probe_accuracy(Ztr, ytr, Zte, yte)
        row = {
            "method": name,
            "layer": layer or "pixels",
            "features": Ztr.shape[1],
            "accuracy": accuracy,
            "C": C,
            "fit s": fit_s,
            "images/s": len(X_fit) * epochs / fit_s if fit_s else np.nan,
            "total s": time.perf_counter() - start,
        }
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))  # noqa: E501  # fmt: skip
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=os.environ.get("SK_DIM_DATA_HOME"))
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--n-fit", type=int, default=None, help="25000 on CPU, 50000 on GPU")
    parser.add_argument("--epochs", type=int, default=None, help="12 on CPU, 50 on GPU")
    parser.add_argument("--loss", default="softmax", choices=("nce", "softmax"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.data_home is None:
        print("skipping: give --data-home DIR (or set SK_DIM_DATA_HOME)")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    epochs = args.epochs or (50 if gpu else 12)
    n_fit = args.n_fit or (50000 if gpu else 25000)
    X_all, y_all, X_test, y_test = load(args.data_home)
    X_fit = X_all[:n_fit]
    X_random = X_all[:RANDOM_FIT_IMAGES]
    data = (
        X_all[: args.n_train],
        y_all[: args.n_train],
        X_test[: args.n_test],
        y_test[: args.n_test],
    )
    # DIM(L) sees the L channel: converted once, for the trained and the random network.
    images = {"CMC (L/ab)": (X_fit, X_random, data)}
    images["DIM(L)"] = (
        lightness(X_fit),
        lightness(X_random),
        (lightness(data[0]), data[1], lightness(data[2]), data[3]),
    )
    device = torch.cuda.get_device_name() if gpu else "CPU"
    print(
        f"CIFAR-10: features learned on {len(X_fit)} images for {epochs} epochs (CMC loss "
        f"{args.loss!r}); probe on {len(data[0])} train / {len(data[2])} test images; "
        f"{device}, torch threads={torch.get_num_threads()}"
    )
    start = time.perf_counter()
    rows = run("raw pixels", None, data[0], data)
    for name, transformer in transformers(epochs, args.loss, args.seed).items():
        fit_images, _, probe_data = images[name]
        rows += run(name, transformer, fit_images, probe_data)
    for name, transformer in transformers(1, args.loss, args.seed).items():
        _, random_images, probe_data = images[name]
        transformer.set_params(lr=1e-12, max_epochs=1)
        rows += run(f"{name}, random weights", transformer, random_images, probe_data)
    print()
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format="%.4g"))
    print()
    best = table.groupby("method", sort=False)["accuracy"].max()
    for name in LAYERS:
        margin_random = best[name] - best[f"{name}, random weights"]
        margin_raw = best[name] - best["raw pixels"]
        print(
            f"{name}: best layer {best[name]:.4f}, {100 * margin_random:+.1f} points over its "
            f"random-weight network's best layer, {100 * margin_raw:+.1f} over raw pixels"
        )
    print(f"\nwhole benchmark: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
