"""
Deep InfoMax features in a scikit-learn Pipeline
================================================

Fit :class:`sk_dim.DeepInfoMaxTransformer` followed by a linear SVM on
scikit-learn's digits and compare its cross-validated accuracy with raw
pixels, PCA and a Bernoulli RBM under the same folds.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import LinearSVC

from sk_dim import DeepInfoMaxTransformer

X, y = load_digits(return_X_y=True)
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)

pipelines = {
    "raw pixels": Pipeline([("scale", MinMaxScaler()), ("svm", LinearSVC())]),
    "PCA": Pipeline([("scale", MinMaxScaler()), ("pca", PCA(40)), ("svm", LinearSVC())]),
    "RBM": Pipeline(
        [
            ("scale", MinMaxScaler()),
            ("rbm", BernoulliRBM(256, learning_rate=0.05, n_iter=20, random_state=0)),
            ("svm", LinearSVC()),
        ]
    ),
    "Deep InfoMax": Pipeline(
        [("dim", DeepInfoMaxTransformer(random_state=0)), ("svm", LinearSVC())]
    ),
}

scores = {}
for name, pipeline in pipelines.items():
    scores[name] = cross_val_score(pipeline, X, y, cv=folds)
    print(f"{name:>13}: {scores[name].mean():.4f} +/- {scores[name].std():.4f}")

# %%
# Plot the accuracies when matplotlib is installed (``pip install sk-dim[plots]``).
try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None:
    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(scores)
    ax.barh(names, [scores[n].mean() for n in names], xerr=[scores[n].std() for n in names])
    ax.set_xlim(0.9, 1.0)
    ax.set_xlabel("5-fold CV accuracy, linear SVM")
    fig.tight_layout()
    print("mean accuracy:", {n: round(float(np.mean(s)), 4) for n, s in scores.items()})
