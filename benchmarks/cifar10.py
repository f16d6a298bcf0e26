"""CIFAR-10 benchmark: raw pixels, k-means (Coates et al.), random-weight networks, CMC and DIM.

    python benchmarks/cifar10.py --data-home DIR [--regime small]
        [--n-fit N --n-train 10000 --n-test 2000 --epochs N --dim-epochs N
         --dim {L,defaults} --k 1600 --methods pixels,kmeans,random,cmc,dim
         --loss {nce,softmax} --preset NAME --cmc-set NAME=VALUE --dim-set NAME=VALUE
         --threads T --seed 0 --offset 0 --test-offset 0
         --simclr-seconds S --seeds 1 --simclr-batch 256 --simclr-width 0.5]

Reads the official python batches with ``sk_dim.datasets.load_cifar10`` from
``DIR`` (or ``DIR/cifar-10-batches-py``); exits with a "skipping" message when
they are absent. Nothing is downloaded.

Every method is a feature extractor fitted without labels on the first
``--n-fit`` training images, then probed with the protocol of
``benchmarks/_protocol.py``: ``StandardScaler`` + ``LogisticRegression`` fitted on
the first ``--n-train`` training images, its ``C`` chosen on a held-out fifth of
them, scored on the first ``--n-test`` test images. ``--offset N`` and ``--test-offset M``
start both slices later (training images from N, test images from M): the same recipe on
images no other run of this benchmark reads (``--offset 45000 --test-offset 8000`` in the
small regime), so that a default tuned on the first slice is checked on another. Rows:

- raw pixels;
- k-means: the single-layer network of Coates, Lee and Ng (AISTATS 2011),
  ``benchmarks/coates.py``: 6x6 whitened patches, ``--k`` centroids, triangle
  code, quadrant sum-pooling (``4 * K`` features);
- CMC: ``CMCTransformer`` with Lab views (an L and an ab encoder) and its default
  loss (or ``--loss``), probed at its own layer, at ``"local"``, ``"blocks"`` and at
  the embedding;
- DIM: with ``--dim L`` (the default regime), DIM(L),
  ``DeepInfoMaxTransformer(alpha=0, beta=1, gamma=0.1)`` on the L channel alone
  (the single-view baseline of the CMC paper), 1/6 of CMC's epochs; with ``--dim
  defaults``, ``DeepInfoMaxTransformer`` at its default parameters on the RGB
  images. Probed at its own layer, at ``"local"``, ``"blocks"`` and at y;
- the same two networks with random weights (see ``_protocol.py``);
- SimCLR (Chen et al., ICML 2020), ``benchmarks/simclr.py``, only when ``--methods``
  names ``simclr-conv`` (CMC's view encoder, ``--simclr-width`` 0.5, on RGB) or
  ``simclr-resnet18`` (a CIFAR ResNet-18): trained for the wall-clock time of this run's
  CMC fit (the first seed's; its DIM fit without CMC; ``--simclr-seconds S`` gives it),
  probed at
  ``"blocks"``, ``"conv"`` and ``"fc"`` (the representation fed to its projection head).

Regimes:

- default: on CPU, features learned from 25,000 images (CMC 30 epochs, its default, an
  8.5-minute fit; DIM(L) 5) and probed on 10,000 / 2,000 images, in about 25 minutes on
  2 cores; on a GPU,
  ``--n-fit 50000`` and 50 epochs (use ``--n-train 50000 --n-test 10000`` for the
  full data set);
- ``--regime small``: what users of a scikit-learn transformer often have, 5,000
  training images for feature learning and probe, 2,000 test images; CMC and DIM at
  their default parameters, ``max_epochs`` included, DIM on RGB.

``--seeds N`` fits every trained network (CMC, DIM, SimCLR) and k-means N times, with
seeds ``--seed`` to ``--seed + N - 1``, and adds each one's mean and spread per layer: a
margin inside the seed spread is not a win (k-means' ten iterations from a random start
vary with the seed too). The random-weight rows use ``--seed`` alone.

``--preset NAME`` builds CMC and DIM (unless ``--dim L``) with
``from_preset(NAME)``, their epochs included unless ``--epochs`` / ``--dim-epochs``
are given. ``--cmc-set NAME=VALUE`` and ``--dim-set NAME=VALUE`` (repeatable) set one
constructor parameter over the preset's (``--dim-set weight_decay=5e-4``), named in the row.
Any explicit option overrides the regime's value. ``channels_last=True`` is set on
both networks: a speed option only (on one CPU thread CMC 1.19x faster, DIM 1.03x,
``benchmarks/results/throughput_float32.md``). The table is written to
``benchmarks/results/cifar10[_small].md`` (``--results NAME`` or ``none``).
"""

import argparse
import ast
import os
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import torch

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
from sk_dim.datasets import load_cifar10  # noqa: E402
from sk_dim.views import rgb_to_lab  # noqa: E402

METHODS = ("pixels", "kmeans", "random", "cmc", "dim")
SIMCLR = ("simclr-conv", "simclr-resnet18")  # selected by name only: not in the default run
REGIMES = {
    # n_fit, n_train, n_test, CMC epochs, DIM variant; None: decided by the device.
    "default": (None, 10000, 2000, None, "L"),
    "small": (5000, 5000, 2000, "estimator", "defaults"),
}


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


def assignments(pairs):
    """``["weight_decay=5e-4", "layer=blocks"]`` -> ``{"weight_decay": 5e-4, "layer": "blocks"}``"""
    params = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name] = text  # a bare word: a string option such as "blocks"
    return params


def networks(args):
    """{method: (row label, transformer, image function, extra layers to probe)}."""
    # channels_last: a speed option only (CMC 1.19x, DIM 1.03x faster on a CPU thread).
    common = {"channels_last": True, "random_state": args.seed}

    def network(cls, epochs, **params):
        epochs = {} if epochs is None else {"max_epochs": epochs}
        return build(cls, args.preset, **params, **common, **epochs)

    loss = {} if args.loss is None else {"loss": args.loss}
    cmc = network(CMCTransformer, args.epochs, **loss, **assignments(args.cmc_set))
    if args.dim == "L":
        epochs = args.dim_epochs or max(1, (args.epochs or 30) // 6)
        dim = DeepInfoMaxTransformer(alpha=0, beta=1, gamma=0.1, max_epochs=epochs, **common)
        dim_images, dim_name = lightness, "DIM(L)"
    else:
        dim = network(DeepInfoMaxTransformer, args.dim_epochs, **assignments(args.dim_set))
        dim_images = None
        dim_name = f"DIM ({', '.join([args.preset or 'defaults', *args.dim_set])})"
    cmc_name = f"CMC ({', '.join(['L/ab', *filter(None, [args.preset]), *args.cmc_set])})"
    return {
        "cmc": (cmc_name, cmc, None, ("local", "blocks", "embedding")),
        "dim": (dim_name, dim, dim_images, ("local", "blocks", "y")),
    }


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=os.environ.get("SK_DIM_DATA"))
    parser.add_argument("--regime", default="default", choices=tuple(REGIMES))
    parser.add_argument("--n-train", type=int, default=None, help="probe training images")
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--n-fit", type=int, default=None, help="feature-learning images")
    parser.add_argument("--epochs", type=int, default=None, help="CMC max_epochs")
    parser.add_argument("--dim-epochs", type=int, default=None, help="DIM max_epochs")
    parser.add_argument("--dim", default=None, choices=("L", "defaults"), help="DIM variant")
    parser.add_argument("--loss", default=None, choices=("nce", "softmax"), help="CMC loss")
    parser.add_argument("--preset", default=None, help="build CMC and DIM with from_preset")
    parser.add_argument(
        "--cmc-set", action="append", default=[], metavar="NAME=VALUE", help="a CMC parameter"
    )
    parser.add_argument(
        "--dim-set", action="append", default=[], metavar="NAME=VALUE", help="a DIM parameter"
    )
    parser.add_argument("--k", type=int, default=1600, help="k-means centroids")
    parser.add_argument("--kmeans-iter", type=int, default=10)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--threads", type=int, default=None, help="torch and BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offset", type=int, default=0, help="first training image")
    parser.add_argument("--test-offset", type=int, default=0, help="first test image")
    parser.add_argument(
        "--simclr-seconds", type=float, default=None, help="SimCLR budget (CMC's fit time)"
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="fits of each trained network, seeds from --seed"
    )
    parser.add_argument("--simclr-batch", type=int, default=256, help="SimCLR batch size")
    parser.add_argument("--simclr-width", type=float, default=0.5, help="simclr-conv width")
    parser.add_argument(
        "--results", default=None, help="name of benchmarks/results/NAME.md; 'none' writes nothing"
    )
    args = parser.parse_args(argv)
    n_fit, n_train, n_test, epochs, dim = REGIMES[args.regime]
    gpu = torch.cuda.is_available()
    args.n_fit = args.n_fit or n_fit or (50000 if gpu else 25000)
    args.n_train = args.n_train or n_train
    args.n_test = args.n_test or n_test
    if args.epochs is None and epochs is None:
        args.epochs = 50 if gpu else 30
    args.dim = args.dim or dim
    args.methods = args.methods.split(",")
    unknown = set(args.methods) - set(METHODS + SIMCLR)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS + SIMCLR}")
    timed = {"cmc", "dim"} & set(args.methods)
    if set(SIMCLR) & set(args.methods) and args.simclr_seconds is None and not timed:
        parser.error("SimCLR is timed on CMC or DIM: add cmc or dim, or give --simclr-seconds")
    return args


def main():
    args = parse()
    if args.data_home is None:
        print("skipping: give --data-home DIR (or set SK_DIM_DATA)")
        return
    if args.threads:
        limit_threads(args.threads)
    X_all, y_all, X_test, y_test = load(args.data_home)
    train, test = slice(args.offset, None), slice(args.test_offset, None)
    X_all, y_all, X_test, y_test = X_all[train], y_all[train], X_test[test], y_test[test]
    if len(X_all) < max(args.n_fit, args.n_train) or len(X_test) < args.n_test:
        sys.exit(f"--offset {args.offset} / --test-offset {args.test_offset} leave too few images")
    X_fit = X_all[: args.n_fit]
    data = (
        X_all[: args.n_train],
        y_all[: args.n_train],
        X_test[: args.n_test],
        y_test[: args.n_test],
    )
    where = ""
    if args.offset or args.test_offset:
        where = f" (training images from {args.offset}, test images from {args.test_offset})"
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    title = (
        f"CIFAR-10 ({args.regime} regime): features learned on {len(X_fit)} images; probe on "
        f"{len(data[0])} train / {len(data[2])} test images{where}; {device}, "
        f"torch threads={torch.get_num_threads()}"
    )
    print(title, flush=True)
    start = time.perf_counter()
    rows, spread_notes = [], []
    seeds = list(range(args.seed, args.seed + args.seeds))
    if "pixels" in args.methods:
        rows += evaluate("raw pixels", None, None, data)
    if "kmeans" in args.methods:
        kmeans = KMeansTriangleFeatures(args.k, max_iter=args.kmeans_iter)
        new, spread = evaluate_seeds(f"k-means (K={args.k})", kmeans, X_fit, data, (None,), seeds)
        rows, spread_notes = rows + new, spread_notes + spread
    for method, (name, transformer, images, extra) in networks(args).items():
        # DIM(L) sees the L channel: converted once, for the trained and the random network.
        fit_images, probe_data = X_fit, data
        if images is not None:
            fit_images = images(X_fit)
            probe_data = (images(data[0]), data[1], images(data[2]), data[3])
        probed = layers(transformer, extra)
        if "random" in args.methods:
            random = random_weights(transformer)
            rows += evaluate(
                f"{name}, random weights",
                random,
                fit_images[:RANDOM_FIT_IMAGES],
                probe_data,
                probed,
            )
        if method in args.methods:
            label = f"{name}, {transformer.max_epochs} epochs"
            new, spread = evaluate_seeds(label, transformer, fit_images, probe_data, probed, seeds)
            rows, spread_notes = rows + new, spread_notes + spread
    simclr_notes = []
    for method in (m for m in SIMCLR if m in args.methods):
        seconds, source = budget(rows, args.simclr_seconds)
        new, spread = simclr_rows(
            method.split("-", 1)[1],
            X_fit,
            data,
            seconds,
            seeds,
            batch_size=args.simclr_batch,
            width=args.simclr_width,
        )
        rows += new
        simclr_notes += [f"- {method}: a {seconds:.0f} s budget, {source}", *spread]
    table = pd.DataFrame(rows)
    references = [m for m in table["method"].unique() if m == "raw pixels" or "k-means" in m]
    notes = summary(table, references) + spread_notes + simclr_notes
    notes.append(f"\nwhole benchmark: {time.perf_counter() - start:.0f} s")
    command = "python benchmarks/cifar10.py " + shlex.join(sys.argv[1:])
    name = args.results or ("cifar10" if args.regime == "default" else f"cifar10_{args.regime}")
    report(name, title, table, command, notes)


if __name__ == "__main__":
    main()
