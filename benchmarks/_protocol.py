"""The probe protocol shared by the image benchmarks (digits, MNIST, CIFAR-10).

Every feature set (raw pixels, the k-means baseline, the random-weight networks,
DIM and CMC) is scored the same way:

1. the feature extractor is fitted without labels on the feature-learning images;
2. a linear probe, ``StandardScaler`` + multinomial ``LogisticRegression``
   (float32, lbfgs), is fitted on the probe's training features. Its ``C`` is the
   one of ``PROBE_CS`` that scores best on the last fifth of the probe's training
   images after fitting on the other four fifths; the probe is then refitted with
   that ``C`` on all of them. The test images are never used to choose anything;
3. the probe's accuracy on the test images is reported, with the feature-learning
   fit time and the total time (fit, transform of probe and test images, probe).

"Random weights" is the same network fitted for one epoch at ``lr=1e-12`` on at most
``RANDOM_FIT_IMAGES`` images: Adam's steps are then about 1e-12, so the weights stay at
their seeded initialisation while batch-norm statistics are estimated from the data.

This is benchmark code: ``benchmarks/`` is not a package, scripts import it by name.
"""

import platform
import re
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import StrOptions
from threadpoolctl import threadpool_limits

from sk_dim.evaluation import probe_features

PROBE_CS = (0.001, 0.01, 0.1, 1.0)


def limit_threads(n: int) -> None:
    """At most ``n`` torch, BLAS and OpenMP threads for the rest of the run.

    BLAS and OpenMP too: oversubscribed threads made the probe 40x slower on a busy CPU.
    """
    torch.set_num_threads(n)
    threadpool_limits(n)


# float32 and 100 lbfgs iterations: 3x faster than float64 and 300 iterations, within
# half a point of their validation accuracy on CIFAR-10 features.
PROBE_ITERATIONS = 100
RANDOM_FIT_IMAGES = 2000
RESULTS = Path(__file__).parent / "results"


def cifar10_or_skip(data_home, n_train=None, n_test=None):
    """The first ``n_train`` / ``n_test`` rows of CIFAR-10 under ``data_home``, or None.

    ``(X_train, y_train, X_test, y_test)`` (None: every row).

    None, after printing why, when no folder is given or the batches are absent: a
    benchmark that needs the data skips cleanly.
    """
    from sk_dim.datasets import load_cifar10

    if data_home is None:
        print("skipping: give --data-home DIR (or set SK_DIM_DATA)")
        return None
    try:
        X, y = load_cifar10(data_home, subset="train", return_X_y=True)
        X_test, y_test = load_cifar10(data_home, subset="test", return_X_y=True)
    except (FileNotFoundError, OSError) as exc:
        print(f"skipping: CIFAR-10 python batches not found under {data_home!r} ({exc})")
        return None
    return X[:n_train], y[:n_train], X_test[:n_test], y_test[:n_test]


def probe_accuracy(Ztr, ytr, Zte, yte):
    """Test accuracy and C of the probe whose C scored best on the last fifth of Ztr."""
    # The iteration cap is deliberate: lbfgs's warning about it would drown the table.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
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


def build(cls, preset=None, **params):
    """``cls(**params)``, or ``cls.from_preset(preset, **params)`` when a preset is named."""
    return cls.from_preset(preset, **params) if preset else cls(**params)


def random_weights(transformer):
    """An unfitted copy that keeps its initial weights: one epoch at lr=1e-12."""
    return clone(transformer).set_params(lr=1e-12, max_epochs=1)


def layers(transformer, wanted):
    """The transformer's own layer, then those of ``wanted`` that it accepts.

    Layer names are read from the estimator's parameter constraints, so a renamed
    layer drops out of the table instead of failing the benchmark.
    """
    options = set()
    for constraint in type(transformer)._parameter_constraints.get("layer", ()):
        if isinstance(constraint, StrOptions):
            options |= set(constraint.options)
    own = transformer.get_params()["layer"]
    return (own, *(name for name in wanted if name in options and name != own))


def evaluate(method, transformer, X_fit, data, probe_layers=(None,)):
    """Fit ``transformer`` on X_fit and probe each layer; one row (dict) per layer.

    ``transformer`` None means raw pixels (the probe's scaler standardises them);
    ``data`` is (X_train, y_train, X_test, y_test) for the probe. A layer None reads
    the transformer's ``transform`` as it is.
    """
    Xtr, ytr, Xte, yte = data
    start = time.perf_counter()
    if transformer is not None:
        transformer.fit(X_fit)
    fit_s = time.perf_counter() - start if transformer is not None else 0.0
    rows = []
    for layer in probe_layers:
        begin = time.perf_counter()
        if transformer is None:
            Ztr, Zte = (np.asarray(X, dtype=np.float32).reshape(len(X), -1) for X in (Xtr, Xte))
        elif layer is None:
            Ztr, Zte = transformer.transform(Xtr), transformer.transform(Xte)
        else:
            Ztr, Zte = (probe_features(transformer, X, layer=layer) for X in (Xtr, Xte))
        accuracy, C = probe_accuracy(Ztr, ytr, Zte, yte)
        rows.append(
            {
                "method": method,
                "layer": layer or getattr(transformer, "layer", None) or "-",
                "features": Ztr.shape[1],
                "accuracy": accuracy,
                "C": C,
                "fit s": fit_s,
                "total s": fit_s + time.perf_counter() - begin,
            }
        )
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()), flush=True)  # noqa: E501  # fmt: skip
    return rows


def markdown(table, float_format="{:.4g}"):
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    cells = [[str(c) for c in table.columns]]
    for row in table.itertuples(index=False):
        cells.append([float_format.format(v) if isinstance(v, float) else str(v) for v in row])
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * len(table.columns))
    return "\n".join(lines)


def report(name, title, table, command, notes=()):
    """Print the table and write it, with the command and machine, to results/<name>.md."""
    print()
    print(title)
    print(table.to_string(index=False, float_format="%.4g"))
    for note in notes:
        print(note)
    if name == "none":
        return
    machine = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    text = [
        f"# {title}",
        "",
        f"Command: `{command}`",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine}, "
        f"torch threads={torch.get_num_threads()}.",
        "",
        markdown(table),
        "",
        *notes,
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(text).rstrip() + "\n")


def seed_spread(rows, name, layers, seeds):
    """Notes with the mean and spread over seeds of ``name``'s rows, one per layer."""
    notes = []
    if len(seeds) < 2:
        return notes
    for layer in layers:
        acc = np.array(
            [r["accuracy"] for r in rows if r["method"].startswith(name) and r["layer"] == layer]
        )
        notes.append(
            f"- {name}, layer {layer}: {acc.mean():.4f} +- {acc.std(ddof=1):.4f} "
            f"(mean +- std over seeds {list(seeds)}; min {acc.min():.4f}, max {acc.max():.4f})"
        )
    return notes


def evaluate_seeds(label, estimator, X_fit, data, probe_layers, seeds, describe=None):
    """``evaluate`` for a copy of ``estimator`` per ``random_state`` in ``seeds``.

    Rows are named ``"<label>, seed N"`` when there are several seeds (``label`` alone
    for one), followed by ``", <describe(fitted copy)>"`` when ``describe`` is given
    (what only the fit knows, such as the steps a time budget allowed); returns the
    rows and the notes of their mean and spread per layer.
    """
    rows = []
    for seed in seeds:
        seeded = clone(estimator).set_params(random_state=seed)
        method = label if len(seeds) == 1 else f"{label}, seed {seed}"
        new = evaluate(method, seeded, X_fit, data, probe_layers)
        if describe is not None:
            method = f"{method}, {describe(seeded)}"
            for row in new:
                row["method"] = method
        rows += new
    return rows, seed_spread(rows, label, [r["layer"] for r in rows[: len(probe_layers)]], seeds)


def without_seed(method):
    """``"k-means (K=1600), seed 2"`` -> ``"k-means (K=1600)"``: the name all its seeds share."""
    return re.sub(r", seed \d+$", "", method)


def summary(table, references):
    """Each learned method's best layer against its random-weight network and the references.

    A reference fitted with several seeds (rows ``"<name>, seed N"``) counts as the mean of
    its seeds' accuracies, the figure the tables quote, not as one row per seed.
    """
    best = table.groupby("method", sort=False)["accuracy"].max()
    seeds_of = {}
    for ref in references:
        seeds_of.setdefault(without_seed(ref), []).append(best[ref])
    reference_accuracy = {
        name if len(accs) == 1 else f"{name} (mean of {len(accs)} seeds)": float(np.mean(accs))
        for name, accs in seeds_of.items()
    }
    notes = []
    for method, accuracy in best.items():
        if method in references or "random weights" in method:
            continue
        random = f"{without_seed(method).rsplit(', ', 1)[0]}, random weights"
        compared = dict(reference_accuracy)
        if random in best.index:
            compared = {random: best[random], **compared}
        margins = ", ".join(
            f"{100 * (accuracy - ref_accuracy):+.1f} points over {ref}"
            for ref, ref_accuracy in compared.items()
        )
        notes.append(f"- {method}: best layer {accuracy:.4f}" + (f"; {margins}" if margins else ""))
    return notes
