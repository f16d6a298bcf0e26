"""MNIST benchmark: linear probe on the 10,000 test images after self-supervised training.

    python benchmarks/mnist.py --data-home DIR [--n-train 60000] [--epochs N] [--layer conv]

Reads the four standard MNIST idx files from DIR (or DIR/mnist) with
:func:`sk_dim.datasets.load_mnist`; prints "skipping" and exits when they are
absent. Each method is fitted on the first ``--n-train`` training images
without labels, then a linear SVM is trained on the same images' features
with labels and scored on the test set. Baselines: raw pixels, PCA, and the
DIM encoder with random weights (one epoch at a learning rate of 1e-12, so
only its batch-norm statistics see the data).
"""

import argparse
import sys
import time

import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC

from sk_dim import DeepInfoMaxTransformer
from sk_dim.datasets import load_mnist


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-home", required=True)
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=None, help="DIM max_epochs")
    parser.add_argument("--layer", default="conv")
    args = parser.parse_args()
    try:
        X_train, y_train = load_mnist(args.data_home, subset="train", return_X_y=True)
        X_test, y_test = load_mnist(args.data_home, subset="test", return_X_y=True)
    except FileNotFoundError as exc:
        sys.exit(f"skipping: {exc}")
    X_train, y_train = X_train[: args.n_train], y_train[: args.n_train]

    epochs = {} if args.epochs is None else {"max_epochs": args.epochs}
    methods = {
        "raw pixels": MinMaxScaler(),
        "PCA(50)": make_pipeline(MinMaxScaler(), PCA(50, random_state=0)),
        "DIM random weights": DeepInfoMaxTransformer(
            layer=args.layer, max_epochs=1, lr=1e-12, random_state=0
        ),
        "DIM (defaults)": DeepInfoMaxTransformer(layer=args.layer, random_state=0, **epochs),
    }
    rows = []
    for name, transformer in methods.items():
        start = time.perf_counter()
        Z_train = transformer.fit_transform(X_train)
        fit_s = time.perf_counter() - start
        probe = make_pipeline(StandardScaler(), LinearSVC(C=0.1)).fit(Z_train, y_train)
        rows.append(
            {
                "method": name,
                "test accuracy": probe.score(transformer.transform(X_test), y_test),
                "fit s": fit_s,
                "images/s": len(X_train) * getattr(transformer, "max_epochs", 1) / fit_s,
            }
        )
        print(rows[-1], flush=True)
    print(
        f"\nMNIST, {len(X_train)} training images, linear probe on 10,000 test images, "
        f"torch threads={torch.get_num_threads()}, layer={args.layer}"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
