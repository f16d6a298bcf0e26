"""``sk_dim.evaluation.linear_probe``: the Newton solver against the liblinear probe it replaced.

    python benchmarks/probe_speed.py [--data-home DIR] [--n-train 1000] [--n-test 2000]
        [--skip-old] [--threads N] [--results probe_speed]

Both probes fit the same SVM, :class:`~sklearn.svm.LinearSVC`'s squared-hinge one-vs-rest
problem with ``C=1`` on standardised features, and score it on the test rows:

- "old": ``make_pipeline(StandardScaler(), LinearSVC(C=1, max_iter=2000, random_state=0))``,
  the probe up to sk-dim 0.1.0 (liblinear's dual coordinate descent when there are more
  features than samples; it stops at ``max_iter`` with a ConvergenceWarning);
- "new": ``linear_probe(None, ...)``, the same objective solved to its optimum by finite
  Newton steps in the kernel form.

Data: digits scaled up to 32x32 in three tinted channels with pixel noise (3,072 features,
structured: the first ``--n-train`` of the 1,797 rows train, the rest test), and the same
through a fixed random ReLU layer of 7,168 units (the width of ``layer="blocks"``); with
``--data-home`` and the CIFAR-10 python batches there (``sk_dim.datasets.load_cifar10``),
CIFAR-10's raw pixels and the same random layer. Times are wall seconds of the whole
probe (scaling, fit, scoring) on this machine; the table is written to
``results/<--results>.md``.
"""

import argparse
import shlex
import sys
import time
import warnings

import numpy as np
import pandas as pd
from _protocol import report
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from sk_dim.datasets import load_cifar10
from sk_dim.evaluation import linear_probe

WIDE = 7168  # the width of layer="blocks" at 32x32


def upsampled_digits(seed=0, noise=4.0):
    """The 1,797 digits at 32x32 in three tinted channels, with Gaussian pixel noise."""
    rng = np.random.default_rng(seed)
    digits = load_digits()
    images = np.kron(digits.images, np.ones((4, 4)))  # (1797, 32, 32), values 0..16
    rgb = images[:, None] * rng.uniform(0.5, 1.0, (len(images), 3, 1, 1))
    rgb += noise * rng.standard_normal(rgb.shape)
    return rgb.reshape(len(images), -1).astype(np.float32), digits.target


def random_relu(X_train, X_test, width=WIDE, seed=0):
    """A fixed random ReLU layer on standardised inputs: wide, structured features."""
    scaler = StandardScaler().fit(X_train)
    weights = np.random.default_rng(seed).standard_normal((X_train.shape[1], width))
    weights /= np.sqrt(X_train.shape[1])
    return tuple(
        np.maximum(scaler.transform(X) @ weights, 0).astype(np.float32) for X in (X_train, X_test)
    )


def old_probe(Z_train, y_train, Z_test, y_test):
    """The probe of sk-dim 0.1.0; (accuracy, whether liblinear warned)."""
    svm = LinearSVC(C=1.0, max_iter=2000, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        accuracy = make_pipeline(StandardScaler(), svm).fit(Z_train, y_train).score(Z_test, y_test)
    return accuracy, any(issubclass(w.category, ConvergenceWarning) for w in caught)


def new_probe(Z_train, y_train, Z_test, y_test):
    """``linear_probe``; (accuracy, whether it warned)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        accuracy = linear_probe(None, Z_train, y_train, Z_test, y_test)
    return accuracy, any(issubclass(w.category, ConvergenceWarning) for w in caught)


def timed(probe, *data):
    start = time.perf_counter()
    accuracy, warned = probe(*data)
    return accuracy, warned, time.perf_counter() - start


def datasets(args):
    """(name, (Z_train, y_train, Z_test, y_test)) for each data set available."""
    X, y = upsampled_digits()
    n = min(args.n_train, len(X) - 100)
    train, test = (X[:n], y[:n]), (X[n:], y[n:])
    yield "digits 32x32x3", (*train, *test)
    Z_train, Z_test = random_relu(train[0], test[0])
    yield f"digits, random ReLU {WIDE}", (Z_train, train[1], Z_test, test[1])
    if not args.data_home:
        return
    try:
        X_train, y_train = load_cifar10(args.data_home, subset="train", return_X_y=True)
        X_test, y_test = load_cifar10(args.data_home, subset="test", return_X_y=True)
    except (FileNotFoundError, ValueError) as exc:
        print(f"no CIFAR-10 rows: {exc}")
        return
    X_train, y_train = X_train[: args.n_train].astype(np.float32), y_train[: args.n_train]
    X_test, y_test = X_test[: args.n_test].astype(np.float32), y_test[: args.n_test]
    yield "CIFAR-10 pixels", (X_train, y_train, X_test, y_test)
    Z_train, Z_test = random_relu(X_train, X_test)
    yield f"CIFAR-10, random ReLU {WIDE}", (Z_train, y_train, Z_test, y_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None, help="folder holding cifar-10-batches-py")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=2000, help="CIFAR-10 test images")
    parser.add_argument("--skip-old", action="store_true", help="time the new probe only")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads")
    parser.add_argument(
        "--results", default="probe_speed", help="benchmarks/results/NAME.md; 'none' writes nothing"
    )
    args = parser.parse_args(argv)
    if args.threads:
        threadpool_limits(args.threads)
    rows = []
    for name, data in datasets(args):
        row = {"data": name, "train x features": f"{len(data[0])} x {data[0].shape[1]}"}
        row["test rows"] = len(data[2])
        if not args.skip_old:
            accuracy, warned, seconds = timed(old_probe, *data)
            row.update({"old s": seconds, "old accuracy": accuracy, "old warned": warned})
        accuracy, warned, seconds = timed(new_probe, *data)
        row.update({"new s": seconds, "new accuracy": accuracy, "new warned": warned})
        if not args.skip_old:
            row["speed-up"] = row["old s"] / row["new s"]
        print(row, flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    command = shlex.join(["python", "benchmarks/probe_speed.py", *sys.argv[1:]])
    notes = [
        "old: StandardScaler + LinearSVC(C=1, max_iter=2000) (liblinear); new: linear_probe "
        "(the same objective, finite Newton). 'warned': a ConvergenceWarning was raised."
    ]
    report(args.results, "linear_probe: liblinear against the Newton solver", table, command, notes)


if __name__ == "__main__":
    main()
