"""CIFAR-10 benchmark: linear probe on CMC (L/ab) and DIM(L) features.

    python benchmarks/cifar10.py --data-home DIR [--n-train 10000 --n-test 2000
                                 --n-fit N --epochs N --threads T]

Reads the official python batches with ``sk_dim.datasets.load_cifar10`` from
``DIR`` (or ``DIR/cifar-10-batches-py``); exits with a "skipping" message when
they are absent. Nothing is downloaded.

Every method is a feature extractor trained (self-supervised) on the first
``--n-fit`` training images, followed by a linear probe (``StandardScaler`` +
``LogisticRegression``) fitted on the features of the first ``--n-train``
training images and scored on the first ``--n-test`` test images:

- raw pixels;
- CMC: ``CMCTransformer`` with Lab views (L and ab encoders), ``layer="conv"``
  (both views' local maps pooled to 2x2: 1024 features);
- DIM(L): ``DeepInfoMaxTransformer(alpha=0, beta=1, gamma=0.1)``, ``layer="conv"``
  (512 features);
- the same two transformers with random weights: fitted for one epoch with
  ``lr=1e-12`` on the first 2,000 training images (whatever ``--n-fit``).
  Adam's steps are then about 1e-12, so the weights stay at their (seeded)
  initialisation, while the batch-norm running statistics are estimated from
  the data as they would be in training: an "architecture only" baseline.

Columns: probe accuracy, feature-learning fit seconds, training images per
second (``n_fit * epochs / fit seconds``) and total seconds including
transform and probe.

On CPU the defaults learn features from 5,000 images for 2 epochs and probe
on 10,000 / 2,000 (about 10 minutes on 2 shared cores with ``--threads 1``,
which is much faster than 2 threads when the cores are shared with other
work). On a GPU the defaults are ``--n-fit`` = ``--n-train`` and 30 epochs;
use ``--n-train 50000 --n-test 10000`` for the full data set.
"""

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.datasets import load_cifar10

RANDOM_FIT_IMAGES = 2000


def load(data_home, n_train, n_test):
    try:
        Xtr, ytr = load_cifar10(data_home, subset="train", return_X_y=True)
        Xte, yte = load_cifar10(data_home, subset="test", return_X_y=True)
    except (FileNotFoundError, OSError) as exc:
        print(f"skipping: CIFAR-10 python batches not found under {data_home!r} ({exc})")
        sys.exit(0)
    return Xtr[:n_train], ytr[:n_train], Xte[:n_test], yte[:n_test]


def transformers(epochs, seed):
    return {
        "CMC (L/ab)": CMCTransformer(max_epochs=epochs, random_state=seed),
        "DIM(L)": DeepInfoMaxTransformer(
            alpha=0, beta=1, gamma=0.1, max_epochs=epochs, random_state=seed
        ),
    }


def probe():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=200))


def run(name, transformer, fit_images, epochs, data):
    Xtr, ytr, Xte, yte = data
    start = time.perf_counter()
    if transformer is None:
        fit_s = 0.0
        Ztr, Zte = Xtr.astype(np.float32), Xte.astype(np.float32)
    else:
        transformer.fit(Xtr[:fit_images])
        fit_s = time.perf_counter() - start
        Ztr, Zte = transformer.transform(Xtr), transformer.transform(Xte)
    accuracy = probe().fit(Ztr, ytr).score(Zte, yte)
    row = {
        "method": name,
        "features": Ztr.shape[1],
        "accuracy": accuracy,
        "fit s": fit_s,
        "images/s": fit_images * epochs / fit_s if fit_s else np.nan,
        "total s": time.perf_counter() - start,
    }
    print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=os.environ.get("SK_DIM_DATA_HOME"))
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--n-fit", type=int, default=None, help="5000 on CPU, n-train on GPU")
    parser.add_argument("--epochs", type=int, default=None, help="2 on CPU, 30 on GPU")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.data_home is None:
        print("skipping: give --data-home DIR (or set SK_DIM_DATA_HOME)")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    epochs = args.epochs or (30 if gpu else 2)
    data = load(args.data_home, args.n_train, args.n_test)
    n_train = len(data[0])
    n_fit = min(args.n_fit or (n_train if gpu else 5000), n_train)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"CIFAR-10: features learned on {n_fit} images for {epochs} epochs; probe on "
        f"{n_train} train / {len(data[2])} test images; "
        f"{device}, torch threads={torch.get_num_threads()}"
    )
    rows = [run("raw pixels", None, n_train, 1, data)]
    for name, transformer in transformers(epochs, args.seed).items():
        rows.append(run(name, transformer, n_fit, epochs, data))
    random_fit = min(RANDOM_FIT_IMAGES, n_train)
    for name, transformer in transformers(1, args.seed).items():
        transformer.set_params(lr=1e-12)
        rows.append(run(f"{name}, random weights", transformer, random_fit, 1, data))
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4g"))


if __name__ == "__main__":
    main()
