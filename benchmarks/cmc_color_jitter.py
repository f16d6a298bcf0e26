"""CMC's colour jitter on L/ab views: none (CMC's L/ab recipe) against jitter without grayscale.

    python benchmarks/cmc_color_jitter.py --data-home DIR
        [--n-fit 2000 --n-test 2000 --epochs 30 --jitters 0,0.4 --seeds 0 --threads 1]

``CMCTransformer(color_jitter=s)`` is fitted without labels on the first ``--n-fit``
CIFAR-10 training images for each strength ``s`` of ``--jitters`` and each seed, then
probed at ``layer="blocks"`` with the protocol of ``benchmarks/_protocol.py`` (probe
trained on the same images, tested on the first ``--n-test`` test images). Jitter
scales brightness, contrast and saturation of 80% of the images by factors from
``U(1 - s, 1 + s)`` before the Lab split; no image is turned to grayscale. The table
is written to ``benchmarks/results/cmc_color_jitter.md`` (``--results NAME`` or
``none``).
"""

import argparse
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import cifar10_or_skip, evaluate, limit_threads, report  # noqa: E402

from sk_dim import CMCTransformer  # noqa: E402


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=os.environ.get("SK_DIM_DATA"))
    parser.add_argument("--n-fit", type=int, default=2000, help="feature-learning images")
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--jitters", default="0,0.4", help="comma-separated color_jitter values")
    parser.add_argument("--seeds", default="0", help="comma-separated random states")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--results", default="cmc_color_jitter")
    args = parser.parse_args(argv)
    args.jitters = [float(s) for s in args.jitters.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    return args


def main():
    args = parse()
    data = cifar10_or_skip(args.data_home, args.n_fit, args.n_test)
    if data is None:
        return
    X, y = data[:2]
    limit_threads(args.threads)
    rows = []
    for seed in args.seeds:
        for jitter in args.jitters:
            cmc = CMCTransformer(
                color_jitter=jitter,
                max_epochs=args.epochs,
                layer="blocks",
                precision="float32",
                random_state=seed,
            )
            for row in evaluate(f"color_jitter={jitter:g}", cmc, X, data):
                rows.append({"seed": seed, **row})
    table = pd.DataFrame(rows)
    means = table.groupby("method", sort=False)["accuracy"].mean()
    notes = [f"- {method}: mean accuracy {value:.4f}" for method, value in means.items()]
    title = (
        f"CMC L/ab colour jitter: {args.n_fit} CIFAR-10 images, {args.epochs} epochs, "
        f"probe on {args.n_fit} / {args.n_test}, layer blocks, float32"
    )
    command = "python benchmarks/cmc_color_jitter.py " + shlex.join(sys.argv[1:])
    report(args.results, title, table, command, notes)


if __name__ == "__main__":
    main()
