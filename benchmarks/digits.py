"""Digits benchmark: 5-fold stratified CV accuracy and fit time of each method.

    python benchmarks/digits.py [--epochs N]

Prints one table row per method: mean and std of the test accuracy over the
folds, and the mean fit time of the whole pipeline per fold. Target for
DeepInfoMaxTransformer at default parameters on 2 CPU cores: mean accuracy
of at least 0.99 and a fit under 60 s.
"""

import argparse
import time

import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.svm import LinearSVC

from sk_dim import DeepInfoMaxTransformer


def methods(epochs):
    dim = {} if epochs is None else {"max_epochs": epochs}
    return {
        "raw pixels": make_pipeline(MinMaxScaler(), LinearSVC()),
        "PCA(40)": make_pipeline(MinMaxScaler(), PCA(40), LinearSVC()),
        "BernoulliRBM(256)": make_pipeline(
            MinMaxScaler(),
            BernoulliRBM(256, learning_rate=0.05, n_iter=20, random_state=0),
            LinearSVC(),
        ),
        "DIM (defaults)": make_pipeline(DeepInfoMaxTransformer(random_state=0, **dim), LinearSVC()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=None, help="override max_epochs")
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    rows = []
    for name, pipe in methods(args.epochs).items():
        start = time.perf_counter()
        res = cross_validate(pipe, X, y, cv=cv)
        rows.append(
            {
                "method": name,
                "accuracy mean": res["test_score"].mean(),
                "accuracy std": res["test_score"].std(),
                "fit s (per fold)": res["fit_time"].mean(),
                "total s": time.perf_counter() - start,
            }
        )
    print(f"digits, 5-fold stratified CV, torch threads={torch.get_num_threads()}")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
