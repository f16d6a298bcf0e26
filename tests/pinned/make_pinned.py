"""Write ``pinned.npz``: outputs of small seeded fits that a refactor must not change.

Run from the repository root only when a change of behaviour is intended, and say
so in CHANGES.md: ``python tests/pinned/make_pinned.py``. ``tests/test_pinned.py``
compares the current code's outputs with the file.
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.evaluation import (
    FineTunedClassifier,
    MLPProbe,
    mine,
    neural_dependency_measure,
)
from sk_dim.mi_estimation import mutual_information

ROWS = 16  # enough rows to pin the features, few enough for a small file
# float32: the pinned numbers are float32 arithmetic ("auto" is bfloat16 on some CPUs).
FAST = dict(max_epochs=2, batch_size=32, device="cpu", random_state=0, precision="float32")


def digits(n=160):
    X, y = load_digits(return_X_y=True)
    return X[:n].astype(np.float32), y[:n]


def colour_images(n=96, side=16):
    rng = np.random.RandomState(0)
    base = rng.rand(n, 3, 1, 1) * np.linspace(0, 1, side)[None, None, :, None]
    return (base + 0.2 * rng.rand(n, 3, side, side)).reshape(n, -1).astype(np.float32)


def dim_cases(X):
    return {
        "dim_jsd": DeepInfoMaxTransformer(n_components=8, mi_estimator="jsd", **FAST),
        "dim_infonce_concat": DeepInfoMaxTransformer(
            n_components=8, mi_estimator="infonce", local_critic="concat", layer="y", **FAST
        ),
        "dim_dv_gaussian_augment": DeepInfoMaxTransformer(
            n_components=8, mi_estimator="dv", prior="gaussian", augment=True, layer="fc", **FAST
        ),
        "dim_mlp": DeepInfoMaxTransformer(
            n_components=8, encoder="mlp", mi_estimator="jsd", gamma=0.5, **FAST
        ),
    }


def cmc_cases():
    return {
        # The colour cases were pinned before colour jitter: with it off, nothing changed.
        "cmc_lab_nce": CMCTransformer(n_components=8, n_negatives=16, color_jitter=0.0, **FAST),
        "cmc_ycbcr_softmax_full": CMCTransformer(
            n_components=8,
            views="ycbcr",
            loss="softmax",
            graph="full",
            n_negatives=16,
            color_jitter=0.0,
            layer="embedding",
            **FAST,
        ),
        "cmc_crops": CMCTransformer(
            n_components=8, views="crops", n_negatives=16, layer="fc", **FAST
        ),
    }


def outputs() -> dict[str, np.ndarray]:
    X, y = digits()
    C = colour_images()
    out = {}
    for name, est in dim_cases(X).items():
        out[name] = est.fit_transform(X)
        out[name + "_loss"] = np.asarray(est.loss_curve_)
    for name, est in cmc_cases().items():
        out[name] = est.fit_transform(C)
        out[name + "_loss"] = np.asarray(est.loss_curve_)
    partial = CMCTransformer(n_components=8, n_negatives=16, color_jitter=0.0, **FAST)
    partial.partial_fit(C[:48]).partial_fit(C[48:])
    out["cmc_partial_fit"] = partial.transform(C)
    dim = DeepInfoMaxTransformer(n_components=8, mi_estimator="jsd", **FAST).fit(X)
    Z = dim.transform(X)
    out["ndm"] = np.asarray(neural_dependency_measure(Z, max_epochs=3, random_state=0))
    out["mine"] = np.asarray(mine(X, Z, max_epochs=3, random_state=0))
    for estimator in ("dv", "jsd", "infonce"):
        for critic in ("concat", "separable"):
            out[f"mi_{estimator}_{critic}"] = np.asarray(
                mutual_information(
                    X[:, :8], Z, estimator=estimator, critic=critic, max_epochs=3, random_state=0
                )
            )
    probe = MLPProbe(max_epochs=3, random_state=0).fit(Z, y)
    out["mlp_probe"] = probe.predict_proba(Z)
    tuned = FineTunedClassifier(dim, max_epochs=1, random_state=0).fit(X, y)
    out["finetuned"] = tuned.predict_proba(X)
    return out


def pinned_outputs() -> dict[str, np.ndarray]:
    """The outputs, on one torch thread (reductions are summed in a fixed order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            name: np.atleast_1d(value)[:ROWS].astype(np.float32)
            for name, value in outputs().items()
        }
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    np.savez_compressed(Path(__file__).with_name("pinned.npz"), **pinned_outputs())
