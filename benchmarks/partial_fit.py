"""CMC's partial_fit (MoCo's key encoders and queue) against fit, on CIFAR-10.

    python benchmarks/partial_fit.py --data-home DIR
        [--n 5000 --n-test 2000 --epochs 10 --chunks 5 --n-negatives N
         --momenta 0.999 --threads 1 --seed 0]

The first ``--n`` CIFAR-10 training images are learned from, without labels, by

- ``fit``: ``CMCTransformer(max_epochs=epochs)``, the memory bank over the images;
- ``partial_fit``: the same transformer trained by ``partial_fit`` over ``--chunks``
  consecutive chunks of the images, ``epochs`` passes over all chunks (one epoch
  per call), i.e. as many passes over each image as ``fit`` makes. Once per
  key-encoder momentum of ``--momenta`` (``MultiviewCoding.KEY_MOMENTUM``, a class
  constant, set here for the run).

Both use ``layer="blocks"`` and float32, and the same ``n_negatives`` (default
``min(4096, n // 2)``: a queue shorter than the data, as in MoCo, so that it
rarely holds an image's own earlier key). Each is probed with the protocol of
``benchmarks/_protocol.py``: the probe is trained on the same ``--n`` images and
tested on the first ``--n-test`` test images. The table is written to
``benchmarks/results/partial_fit.md`` (``--results NAME`` or ``none``).
"""

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import cifar10_or_skip, evaluate, limit_threads, report  # noqa: E402

from sk_dim import CMCTransformer  # noqa: E402
from sk_dim.modules.multiview import MultiviewCoding  # noqa: E402


class ChunkedPartialFit:
    """``fit(X)`` as ``epochs`` passes of ``partial_fit`` over ``chunks`` chunks of X."""

    def __init__(self, transformer, epochs, chunks):
        self.transformer, self.epochs, self.chunks = transformer, epochs, chunks
        self.layer = transformer.layer  # the row's label

    def fit(self, X):
        for _ in range(self.epochs):
            for chunk in np.array_split(X, self.chunks):
                self.transformer.partial_fit(chunk)
        return self

    def transform(self, X):
        return self.transformer.transform(X)


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=os.environ.get("SK_DIM_DATA"))
    parser.add_argument("--n", type=int, default=5000, help="feature-learning images")
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--n-negatives", type=int, default=None)
    parser.add_argument("--momenta", default=str(MultiviewCoding.KEY_MOMENTUM))
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="partial_fit")
    args = parser.parse_args(argv)
    args.momenta = [float(m) for m in args.momenta.split(",")]
    if args.n_negatives is None:
        args.n_negatives = min(4096, args.n // 2)
    return args


def main():
    args = parse()
    data = cifar10_or_skip(args.data_home, args.n, args.n_test)
    if data is None:
        return
    X, y = data[:2]
    limit_threads(args.threads)

    def cmc():
        return CMCTransformer(
            n_negatives=args.n_negatives,
            max_epochs=args.epochs,
            layer="blocks",
            precision="float32",
            random_state=args.seed,
        )

    rows = evaluate("fit", cmc(), X, data)
    default = MultiviewCoding.KEY_MOMENTUM
    for momentum in args.momenta:
        MultiviewCoding.KEY_MOMENTUM = momentum
        try:
            chunked = ChunkedPartialFit(cmc(), args.epochs, args.chunks)
            begin = time.perf_counter()
            rows += evaluate(f"partial_fit, key momentum {momentum:g}", chunked, X, data)
            curve = np.round(chunked.transformer.loss_curve_, 2).tolist()
            seconds = time.perf_counter() - begin
            print(f"partial_fit loss per chunk: {curve} ({seconds:.0f} s)", flush=True)
        finally:
            MultiviewCoding.KEY_MOMENTUM = default
    table = pd.DataFrame(rows)
    best_fit = table.loc[table["method"] == "fit", "accuracy"].max()
    notes = [
        f"- {row.method}: {100 * (row.accuracy - best_fit):+.1f} points against fit"
        for row in table.itertuples()
        if row.method != "fit"
    ]
    title = (
        f"CMC partial_fit against fit: {args.n} CIFAR-10 images, {args.epochs} epochs, "
        f"{args.chunks} chunks, n_negatives={args.n_negatives}, probe on {args.n} / "
        f"{args.n_test}, layer blocks, float32"
    )
    command = "python benchmarks/partial_fit.py " + shlex.join(sys.argv[1:])
    report(args.results, title, table, command, notes)


if __name__ == "__main__":
    main()
