"""
Linear-probe accuracy against alpha, beta and gamma
===================================================

The weights of the global MI (``alpha``), local MI (``beta``) and prior
(``gamma``) terms of :class:`sk_dim.DeepInfoMaxTransformer` are ordinary
hyperparameters: search them with :class:`~sklearn.model_selection.GridSearchCV`
in a pipeline ending with a linear SVM, the linear probe of the Deep InfoMax
paper. Here each weight is moved on its own around the default
(``alpha=0.5, beta=1, gamma=0.1``).

The settings are tiny (300 digits, 2 folds, 1 epoch) so that the example runs
in a couple of minutes on a CPU: the differences are noisy. Run it with more
data and epochs to compare for real.
"""

import matplotlib.pyplot as plt
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sk_dim import DeepInfoMaxTransformer

torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
X, y = X[:300], y[:300]

pipe = Pipeline(
    [
        ("dim", DeepInfoMaxTransformer(max_epochs=1, device="cpu", random_state=0)),
        ("scale", StandardScaler()),
        ("svm", LinearSVC(C=0.1, max_iter=5000)),
    ]
)

# %%
# One sweep per weight, the other two at their defaults (each setting is
# listed once, so GridSearchCV fits no candidate twice). ``alpha`` and
# ``beta`` may not both be 0.
default = {"dim__alpha": [0.5], "dim__beta": [1.0], "dim__gamma": [0.1]}
sweeps = {"alpha": [0.0, 0.5, 1.0], "beta": [0.0, 1.0], "gamma": [0.0, 0.1, 1.0]}
param_grid = [default] + [
    {**default, f"dim__{name}": [v for v in values if v != default[f"dim__{name}"][0]]}
    for name, values in sweeps.items()
]
search = GridSearchCV(pipe, param_grid, cv=StratifiedKFold(2, shuffle=True, random_state=0))
search.fit(X, y)

results = pd.DataFrame(search.cv_results_)
results = results.rename(columns=lambda c: c.replace("param_dim__", ""))
print(results[["alpha", "beta", "gamma", "mean_test_score", "std_test_score"]].to_string())
print("best:", search.best_params_)

# %%
# Accuracy along each sweep.
fig, axes = plt.subplots(1, 3, figsize=(10, 3), sharey=True)
for ax, (name, values) in zip(axes, sweeps.items(), strict=True):
    others = [o for o in sweeps if o != name]
    rows = results
    for other in others:
        rows = rows[rows[other].astype(float) == default[f"dim__{other}"][0]]
    rows = rows.sort_values(name)
    ax.errorbar(
        rows[name].astype(float), rows["mean_test_score"], yerr=rows["std_test_score"], marker="o"
    )
    ax.set_xlabel(name)
    ax.set_xticks(values)
axes[0].set_ylabel("linear-probe accuracy (2-fold CV)")
fig.suptitle("Deep InfoMax weights on 300 digits, 1 epoch")
fig.tight_layout()
plt.show()
