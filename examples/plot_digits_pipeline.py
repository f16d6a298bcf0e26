"""
Deep InfoMax features in a scikit-learn Pipeline
================================================

Fit :class:`sk_dim.DeepInfoMaxTransformer` followed by a linear SVM on
scikit-learn's digits and compare its cross-validated accuracy with raw
pixels, PCA and a Bernoulli RBM under the same 3 folds, each with the same
linear SVM. Deep InfoMax trains for 4 epochs here (the default, ``"auto"``,
trains 35 on so few images) so that the example runs in a minute or two on one
CPU core; the last column is the time each pipeline took for the 3 folds.

The SVM solves the primal problem (``dual=False``): on Deep InfoMax's 7168
features the dual solver needs many more than its default 1000 iterations.
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import LinearSVC

from sk_dim import DeepInfoMaxTransformer

torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)

pipelines = {
    "raw pixels": Pipeline([("scale", MinMaxScaler()), ("svm", LinearSVC(dual=False))]),
    "PCA": Pipeline([("scale", MinMaxScaler()), ("pca", PCA(40)), ("svm", LinearSVC(dual=False))]),
    "RBM": Pipeline(
        [
            ("scale", MinMaxScaler()),
            ("rbm", BernoulliRBM(256, learning_rate=0.05, n_iter=20, random_state=0)),
            ("svm", LinearSVC(dual=False)),
        ]
    ),
    "Deep InfoMax": Pipeline(
        [
            ("dim", DeepInfoMaxTransformer(max_epochs=4, device="cpu", random_state=0)),
            ("svm", LinearSVC(dual=False)),
        ]
    ),
}

scores = {}
for name, pipeline in pipelines.items():
    start = time.perf_counter()
    scores[name] = cross_val_score(pipeline, X, y, cv=folds)
    seconds = time.perf_counter() - start
    print(f"{name:>13}: {scores[name].mean():.4f} +/- {scores[name].std():.4f}  ({seconds:.0f} s)")

# %%
# Plot the accuracies when matplotlib is installed (``pip install -e '.[plots]'``
# from a source checkout).
try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None:
    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(scores)
    ax.barh(names, [scores[n].mean() for n in names], xerr=[scores[n].std() for n in names])
    ax.set_xlim(0.85, 1.0)
    ax.set_xlabel("3-fold CV accuracy, linear SVM")
    fig.tight_layout()
    print("mean accuracy:", {n: round(float(np.mean(s)), 4) for n, s in scores.items()})
