"""MNIST benchmark: every feature set under the shared probe protocol, on the 10,000 test images.

    python benchmarks/mnist.py --data-home DIR [--n-train 60000 --n-test 10000 --epochs 3
        --cmc-epochs N --layer LAYER --preset NAME --k 1600
        --methods pixels,pca,kmeans,random,cmc,dim --threads T
        --seed 0 --seeds 1 --simclr-seconds S --simclr-batch 256 --simclr-width 0.5]

Reads the four standard MNIST idx files from DIR (or DIR/mnist) with
:func:`sk_dim.datasets.load_mnist`; prints "skipping" and exits when they are
absent. Each method is fitted without labels on the first ``--n-train`` training
images, then probed with the protocol of ``benchmarks/_protocol.py``
(``StandardScaler`` + multinomial ``LogisticRegression``, its ``C`` chosen on a
held-out fifth of the same images) and scored on the first ``--n-test`` test
images.

Rows: raw pixels; PCA(50); the k-means baseline of Coates, Lee and Ng (AISTATS
2011, ``benchmarks/coates.py``) with the paper's 6x6 patches and ``--k``
centroids; the DIM and CMC networks with random weights; ``DeepInfoMaxTransformer``
and ``CMCTransformer`` at their default parameters except ``max_epochs``: 3 passes
over the 60,000 images, about 7 minutes for DIM on 2 CPU cores; ``--epochs auto``
keeps their default ``max_epochs="auto"`` (on 5,000 images 35 epochs for DIM, 150
for CMC). Both networks are probed at their default
layer (``--layer`` picks other DIM layers, comma-separated). ``--preset NAME`` builds
both with ``from_preset(NAME)``, their epochs included unless ``--epochs`` /
``--cmc-epochs`` are given. The table is written to ``benchmarks/results/mnist.md``.

SimCLR rows (Chen et al., ICML 2020, ``benchmarks/simclr.py``) are added when
``--methods`` names ``simclr-conv`` (CMC's view encoder, ``--simclr-width`` 0.5) or
``simclr-resnet18`` (a CIFAR ResNet-18): grayscale views (crop, flip, brightness and
contrast), trained for the wall-clock time of this run's CMC fit (the first seed's;
its DIM fit without CMC; ``--simclr-seconds S`` gives it), probed at ``"blocks"``,
``"conv"`` and ``"fc"``.

``--seeds N`` fits every trained network (CMC, DIM, SimCLR) and k-means N times, with
seeds ``--seed`` to ``--seed + N - 1``, and adds each one's mean and spread per layer.
The random-weight rows use ``--seed`` alone.
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import (  # noqa: E402
    RANDOM_FIT_IMAGES,
    build,
    evaluate,
    evaluate_seeds,
    layers,
    limit_threads,
    random_weights,
    report,
    summary,
)
from coates import KMeansTriangleFeatures  # noqa: E402
from simclr import budget, simclr_rows  # noqa: E402

from sk_dim import CMCTransformer, DeepInfoMaxTransformer  # noqa: E402
from sk_dim.datasets import load_mnist  # noqa: E402

METHODS = ("pixels", "pca", "kmeans", "random", "cmc", "dim")
SIMCLR = ("simclr-conv", "simclr-resnet18")  # selected by name only: not in the default run


def epochs(text):
    """An ``--epochs`` value: a number, or "auto" for the transformers' own default."""
    return text if text == "auto" else int(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", required=True)
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--epochs", type=epochs, default=None, help="DIM max_epochs (3) or auto")
    parser.add_argument("--cmc-epochs", type=epochs, default=None, help="CMC max_epochs (--epochs)")
    parser.add_argument("--preset", default=None, help="build CMC and DIM with from_preset")
    parser.add_argument("--layer", default=None, help="DIM layers to probe (default: its own)")
    parser.add_argument("--k", type=int, default=1600, help="k-means centroids")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--threads", type=int, default=None, help="torch and BLAS threads")
    parser.add_argument("--results", default="mnist", help="results/NAME.md; 'none': no file")
    parser.add_argument(
        "--simclr-seconds", type=float, default=None, help="SimCLR budget (CMC's fit time)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds", type=int, default=1, help="fits of each trained method, seeds from --seed"
    )
    parser.add_argument("--simclr-batch", type=int, default=256, help="SimCLR batch size")
    parser.add_argument("--simclr-width", type=float, default=0.5, help="simclr-conv width")
    args = parser.parse_args()
    selected = args.methods.split(",")
    known = METHODS + SIMCLR
    if set(selected) - set(known):
        parser.error(f"unknown methods {sorted(set(selected) - set(known))}; choose from {known}")  # noqa: E501  # fmt: skip
    timed = {"cmc", "dim"} & set(selected)
    if set(SIMCLR) & set(selected) and args.simclr_seconds is None and not timed:
        parser.error("SimCLR is timed on CMC or DIM: add cmc or dim, or give --simclr-seconds")
    if args.threads:
        limit_threads(args.threads)
    try:
        X_train, y_train = load_mnist(args.data_home, subset="train", return_X_y=True)
        X_test, y_test = load_mnist(args.data_home, subset="test", return_X_y=True)
    except FileNotFoundError as exc:
        sys.exit(f"skipping: {exc}")
    X_train, y_train = X_train[: args.n_train], y_train[: args.n_train]
    data = (X_train, y_train, X_test[: args.n_test], y_test[: args.n_test])
    if args.preset is None:
        args.epochs = args.epochs or 3
    cmc_epochs = args.cmc_epochs or args.epochs
    seeds = list(range(args.seed, args.seed + args.seeds))

    def network(cls, epochs):
        epochs = {} if epochs is None else {"max_epochs": epochs}
        return build(cls, args.preset, random_state=args.seed, **epochs)

    suffix = f" ({args.preset})" if args.preset else ""

    cmc = network(CMCTransformer, cmc_epochs)
    dim = network(DeepInfoMaxTransformer, args.epochs)
    dim_layers = layers(dim, ()) if args.layer is None else tuple(args.layer.split(","))
    methods = {
        "pixels": ("raw pixels", None, (None,)),
        "pca": ("PCA(50)", make_pipeline(MinMaxScaler(), PCA(50, random_state=0)), (None,)),
        "kmeans": (
            f"k-means (K={args.k})",
            KMeansTriangleFeatures(args.k, image_shape=(1, 28, 28)),
            (None,),
        ),
        "cmc": (f"CMC{suffix}", cmc, layers(cmc, ())),
        "dim": (f"DIM{suffix}", dim, dim_layers),
    }
    start = time.perf_counter()
    rows, spread_notes = [], []
    for key, (name, transformer, probed) in methods.items():
        if key in ("cmc", "dim") and "random" in selected:
            random = random_weights(transformer)
            fit_images = X_train[:RANDOM_FIT_IMAGES]
            rows += evaluate(f"{name}, random weights", random, fit_images, data, probed)
        if key not in selected:
            continue
        if key in ("pixels", "pca"):  # deterministic: one fit whatever the seeds
            rows += evaluate(name, transformer, X_train, data, probed)
            continue
        if key in ("cmc", "dim"):
            name = f"{name}, {transformer.max_epochs} epochs"
        new, spread = evaluate_seeds(name, transformer, X_train, data, probed, seeds)
        rows, spread_notes = rows + new, spread_notes + spread
    simclr_notes = []
    for method in (m for m in SIMCLR if m in selected):
        seconds, source = budget(rows, args.simclr_seconds)
        new, spread = simclr_rows(
            method.split("-", 1)[1],
            X_train,
            data,
            seconds,
            seeds,
            image_shape=(1, 28, 28),
            batch_size=args.simclr_batch,
            width=args.simclr_width,
        )
        rows += new
        simclr_notes += [f"- {method}: a {seconds:.0f} s budget, {source}", *spread]
    table = pd.DataFrame(rows)
    references = [m for m in table["method"].unique() if m == "raw pixels" or "k-means" in m]
    notes = summary(table, references) + spread_notes + simclr_notes
    notes.append(f"\nwhole benchmark: {time.perf_counter() - start:.0f} s")
    title = (
        f"MNIST, features learned on {len(X_train)} training images, probe on the same "
        f"images, tested on {len(data[2])} test images, torch threads={torch.get_num_threads()}"
    )
    command = "python benchmarks/mnist.py " + shlex.join(sys.argv[1:])
    report(args.results, title, table, command, notes)


if __name__ == "__main__":
    main()
