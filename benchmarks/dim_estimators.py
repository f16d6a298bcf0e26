"""DIM's MI estimators at equal compute: which one gives the better features?

    python benchmarks/dim_estimators.py --data {digits,mnist,cifar10} [--data-home DIR]
        [--budget 180 --threads 2 --estimators infonce,jsd,dv --n-train 5000 --n-test 2000]

Each estimator trains ``DeepInfoMaxTransformer`` (defaults otherwise) until one more epoch
would pass ``--budget`` seconds (or ``max_epochs``, whichever comes first), so every row had
the same compute; its default layer is then probed with the protocol of
``_protocol.py``. digits: 5-fold stratified CV on all 1,797 images, the mean accuracy;
mnist and cifar10: the first ``--n-train`` training images learn the features and train
the probe, the first ``--n-test`` test images score it. Printed: epochs, fit seconds and
accuracy per estimator; the table is written to ``results/dim_estimators_<data>.md``.

These runs chose the default, ``mi_estimator="infonce"`` (CHANGES, Benchmarks page).
"""

import argparse
import shlex
import sys
import time

import numpy as np
import pandas as pd
from _protocol import limit_threads, probe_accuracy, report
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold
from skorch.callbacks import Callback

from sk_dim import DeepInfoMaxTransformer
from sk_dim.datasets import load_cifar10, load_mnist


class TimeBudget(Callback):
    """Stop at an epoch's end when one more epoch as long as the longest would pass the budget."""

    def __init__(self, seconds):
        self.seconds = seconds

    def on_train_begin(self, net, **kwargs):
        self.start = time.perf_counter()

    def on_epoch_end(self, net, **kwargs):
        elapsed = time.perf_counter() - self.start
        if elapsed + max(net.history[:, "dur"]) > self.seconds:
            raise KeyboardInterrupt  # skorch ends training cleanly on it


def splits(args):
    """(X_fit_and_train, y_train, X_test, y_test) per split."""
    if args.data == "digits":
        X, y = load_digits(return_X_y=True)
        for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
            yield X[train], y[train], X[test], y[test]
        return
    loader = load_mnist if args.data == "mnist" else load_cifar10
    try:
        Xtr, ytr = loader(args.data_home, subset="train", return_X_y=True)
        Xte, yte = loader(args.data_home, subset="test", return_X_y=True)
    except (FileNotFoundError, OSError) as exc:
        sys.exit(f"skipping: {args.data} not found under {args.data_home!r} ({exc})")
    yield Xtr[: args.n_train], ytr[: args.n_train], Xte[: args.n_test], yte[: args.n_test]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=("digits", "mnist", "cifar10"), default="digits")
    parser.add_argument("--data-home", default=None, help="folder of the MNIST or CIFAR files")
    parser.add_argument("--budget", type=float, default=180, help="seconds of fit per estimator")
    parser.add_argument("--estimators", default="infonce,jsd,dv")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--max-epochs", type=int, default=1000, help="cap besides the budget")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    parser.add_argument("--results", default=None, help="results/NAME.md; 'none': no file")
    args = parser.parse_args()
    limit_threads(args.threads)
    rows = []
    for estimator in args.estimators.split(","):
        accuracies, epochs, seconds = [], [], []
        for X_train, y_train, X_test, y_test in splits(args):
            dim = DeepInfoMaxTransformer(
                mi_estimator=estimator,
                max_epochs=args.max_epochs,
                n_threads=args.threads,
                callbacks=[TimeBudget(args.budget)],
                random_state=0,
            )
            start = time.perf_counter()
            dim.fit(X_train)
            seconds.append(time.perf_counter() - start)
            epochs.append(dim.n_iter_)
            accuracy, _ = probe_accuracy(
                dim.transform(X_train), y_train, dim.transform(X_test), y_test
            )
            accuracies.append(accuracy)
            print(f"{estimator}: {dim.n_iter_} epochs, accuracy {accuracy:.4f}", flush=True)
        rows.append(
            {
                "mi_estimator": estimator,
                "epochs": "/".join(map(str, epochs)),
                "fit s": np.mean(seconds),
                "accuracy": np.mean(accuracies),
            }
        )
    title = (
        f"DIM's MI estimators at equal compute: {args.data}, fits capped at {args.budget:g} s "
        f"on {args.threads} thread(s), defaults otherwise, layer 'local' probed"
    )
    command = "python benchmarks/dim_estimators.py " + shlex.join(sys.argv[1:])
    report(args.results or f"dim_estimators_{args.data}", title, pd.DataFrame(rows), command)


if __name__ == "__main__":
    main()
