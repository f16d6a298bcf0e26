"""Successive halving over DIM's epochs against the exhaustive grid search.

    python benchmarks/halving.py [--samples 360 --max-epochs 27 --factor 3 --folds 3
                                  --batch-size 32 --threads 1 --n-jobs 1]

Both searches tune ``dim__alpha`` x ``dim__beta`` x ``dim__gamma`` (3 x 3 x 3 = 27
candidates) of ``Pipeline([("dim", DeepInfoMaxTransformer), ("clf",
StandardScaler + LogisticRegression)])`` on the first ``--samples`` digits, with the same
stratified folds, and refit the winner on all of them:

- ``GridSearchCV`` trains every candidate for ``--max-epochs`` epochs in every fold;
- ``HalvingGridSearchCV(resource="dim__max_epochs", max_resources=--max-epochs,
  factor=--factor)`` trains the 27 candidates for 1 epoch, keeps the best third for
  3 epochs, and so on up to ``--max-epochs`` (1, 3, 9, 27 with the defaults).

With ``n_threads`` set, a fit is deterministic, so the halving search's last round
reproduces the exhaustive search's scores of its candidates exactly (the script
checks it). Printed: wall and CPU time of each search, its best parameters and
best mean CV accuracy, and the ratios; then, for ``--curve`` (3 and 9 epochs by
default), every candidate's score after those shorter fits against its score after
``--max-epochs`` (rank correlation, and the range of scores for each gamma): halving
only finds the best candidate when short fits rank the candidates as full ones do.
The table is written to
``benchmarks/results/halving.md``. Target (issue 18): at least 4x less wall time,
best score within 0.5 points of the exhaustive search's.

The settings keep the exhaustive search affordable on 2 CPU cores: digits as
feature vectors (``image_shape=None``: the MLP encoder, about 10x cheaper per epoch
than the convolutional one on 8x8 images), features from ``layer="y"``
(``embedding_dim=64``) so that the probe costs little next to the encoder.
"""

import argparse
import shlex
import sys
import time
import warnings

import numpy as np
import pandas as pd
from _protocol import report
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dim import DeepInfoMaxTransformer

# alpha = beta = 0 is refused by the estimator; none of these is.
GRID = {
    "dim__alpha": [0.25, 0.5, 1.0],
    "dim__beta": [0.5, 1.0, 2.0],
    "dim__gamma": [0.0, 0.1, 0.5],
}


def pipeline(args):
    dim = DeepInfoMaxTransformer(
        encoder="mlp",
        image_shape=None,
        layer="y",
        embedding_dim=64,
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        n_threads=args.threads,
        random_state=0,
    )
    if args.mi_estimator:
        dim.set_params(mi_estimator=args.mi_estimator)
    # The probe of benchmarks/_protocol.py, with a fixed C.
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    return Pipeline([("dim", dim), ("clf", probe)])


def timed(search, X, y):
    wall, cpu = time.perf_counter(), time.process_time()
    search.fit(X, y)
    return search, time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=360, help="first digits used")
    parser.add_argument("--max-epochs", type=int, default=27, help="epochs of a full fit")
    parser.add_argument("--factor", type=int, default=3, help="halving factor")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fit")
    parser.add_argument("--mi-estimator", default=None, help="DIM's, if not its default")
    parser.add_argument("--n-jobs", type=int, default=1, help="fits at once (CPU s: main process)")
    parser.add_argument(
        "--curve",
        default="3,9",
        help="also score every candidate after these epochs ('' for none): does a short "
        "fit rank the candidates as a full one does?",
    )
    parser.add_argument("--results", default="halving", help="results/NAME.md; 'none': no file")
    args = parser.parse_args()
    # lbfgs's iteration cap is deliberate; its warnings would drown the output.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X, y = X[: args.samples], y[: args.samples]
    cv = StratifiedKFold(args.folds)
    pipe = pipeline(args)

    halving, halving_wall, halving_cpu = timed(
        HalvingGridSearchCV(
            pipe,
            GRID,
            resource="dim__max_epochs",
            max_resources=args.max_epochs,
            factor=args.factor,
            cv=cv,
            n_jobs=args.n_jobs,
        ),
        X,
        y,
    )
    print(
        f"halving: {halving_wall:.0f} s, rounds of {halving.n_candidates_} candidates "
        f"for {halving.n_resources_} epochs",
        flush=True,
    )
    exhaustive, exhaustive_wall, exhaustive_cpu = timed(
        GridSearchCV(pipe, GRID, cv=cv, n_jobs=args.n_jobs), X, y
    )
    print(f"exhaustive: {exhaustive_wall:.0f} s", flush=True)

    def row(name, search, wall, cpu, fits, epochs):
        params = {k.removeprefix("dim__"): v for k, v in search.best_params_.items()}
        return {
            "search": name,
            "fits": fits,
            "epochs trained": epochs,
            "wall s": wall,
            "CPU s": cpu,
            "best alpha/beta/gamma": "/".join(f"{params[k]:g}" for k in ("alpha", "beta", "gamma")),
            "best CV accuracy": search.best_score_,
        }

    # Both counts include the refit of the winner on all the data.
    n_candidates = len(exhaustive.cv_results_["params"])
    rounds = list(zip(halving.n_candidates_, halving.n_resources_, strict=True))
    table = pd.DataFrame(
        [
            row(
                "GridSearchCV",
                exhaustive,
                exhaustive_wall,
                exhaustive_cpu,
                fits=n_candidates * args.folds + 1,
                epochs=(n_candidates * args.folds + 1) * args.max_epochs,
            ),
            row(
                "HalvingGridSearchCV",
                halving,
                halving_wall,
                halving_cpu,
                fits=sum(halving.n_candidates_) * args.folds + 1,
                epochs=sum(k * n for k, n in rounds) * args.folds + halving.n_resources_[-1],
            ),
        ]
    )

    # The halving winner's score in the exhaustive search: the same fits, so the same score.
    chosen = {k: v for k, v in halving.best_params_.items() if k in GRID}
    index = exhaustive.cv_results_["params"].index(chosen)
    scores = exhaustive.cv_results_["mean_test_score"]
    rank = int(exhaustive.cv_results_["rank_test_score"][index])
    gap = 100 * (exhaustive.best_score_ - halving.best_score_)
    notes = [
        f"- wall time: halving {exhaustive_wall / halving_wall:.1f}x less "
        f"(CPU time {exhaustive_cpu / halving_cpu:.1f}x less); target >= 4x",
        f"- best score: halving {gap:.2f} points below the exhaustive search; target <= 0.5",
        f"- the halving winner ranks {rank} of {n_candidates} in the exhaustive search, which "
        f"scores it {scores[index]:.4f} (halving: {halving.best_score_:.4f}); exhaustive scores "
        f"range {scores.min():.4f} to {scores.max():.4f}",
        f"- halving rounds: {halving.n_candidates_} candidates for {halving.n_resources_} epochs",
    ]
    # Whether one epoch ranks the candidates as max_epochs does: halving's premise.
    first = halving.cv_results_["iter"] == 0
    early = {
        tuple(p[k] for k in GRID): s
        for p, s in zip(
            np.asarray(halving.cv_results_["params"])[first],
            halving.cv_results_["mean_test_score"][first],
            strict=True,
        )
    }
    late = [tuple(p[k] for k in GRID) for p in exhaustive.cv_results_["params"]]
    rho = spearmanr([early[c] for c in late], scores).statistic
    notes.append(
        f"- Spearman correlation of the candidates' scores after {halving.n_resources_[0]} "
        f"epoch(s) and after {args.max_epochs}: {rho:.2f}"
    )
    # Halving's premise, measured on every candidate: scores after a short fit against
    # scores after max_epochs, and how each value of gamma fares at each length.
    gammas = np.array([p["dim__gamma"] for p in exhaustive.cv_results_["params"]])
    lengths = [int(e) for e in args.curve.split(",") if e] + [args.max_epochs]
    by_length = {args.max_epochs: scores}
    for epochs in lengths[:-1]:
        short_pipe = clone(pipe).set_params(dim__max_epochs=epochs)
        short = GridSearchCV(short_pipe, GRID, cv=cv, n_jobs=args.n_jobs)
        by_length[epochs] = short.fit(X, y).cv_results_["mean_test_score"]
        rho = spearmanr(by_length[epochs], scores).statistic
        notes.append(
            f"- every candidate after {epochs} epochs: Spearman {rho:.2f} with the scores "
            f"after {args.max_epochs}"
        )
    for gamma in GRID["dim__gamma"]:
        ranges = ", ".join(
            f"{by_length[e][gammas == gamma].min():.3f}-{by_length[e][gammas == gamma].max():.3f}"
            f" after {e}"
            for e in lengths
        )
        notes.append(f"- gamma={gamma:g}: CV accuracy {ranges} epochs")
    if not np.isclose(scores[index], halving.best_score_):
        notes.append("- WARNING: the fits of the two searches differ (non-deterministic fits?)")
    title = (
        f"Successive halving vs exhaustive grid search: digits[:{args.samples}], "
        f"{args.folds}-fold CV, 27 candidates, DIM (MLP encoder, layer y, "
        f"mi_estimator={pipe.get_params()['dim__mi_estimator']!r}, "
        f"batch_size={args.batch_size}, {args.max_epochs} epochs) + StandardScaler + "
        "LogisticRegression, "
        f"n_jobs={args.n_jobs}, n_threads={args.threads}"
    )
    command = "python benchmarks/halving.py " + shlex.join(sys.argv[1:])
    report(args.results, title, table, command, notes)


if __name__ == "__main__":
    main()
