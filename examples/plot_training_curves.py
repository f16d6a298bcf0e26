"""
Training curves of each loss term
=================================

:class:`sk_dim.DeepInfoMaxTransformer` records one row per epoch in
``history_``: the estimate of each MI term it maximizes (``global_mi`` and
``local_mi``), the adversarial prior term for the encoder (``prior``), the
discriminator's own loss (``discriminator``) and the encoder's objective
(``train_loss``). Plot them to check that training progresses: the MI terms
should rise, and the prior and discriminator losses should hover around an
equilibrium rather than one of them collapsing.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits

from sk_dim import DeepInfoMaxTransformer

torch.set_num_threads(1)

X, _ = load_digits(return_X_y=True)

dim = DeepInfoMaxTransformer(
    alpha=0.5, beta=1.0, gamma=0.1, max_epochs=8, device="cpu", random_state=0
)
dim.fit(X[:600])
history = dim.history_
print(history.round(3).to_string())

# %%
# One panel per term; the x axis is the epoch.
terms = ["global_mi", "local_mi", "prior", "discriminator", "train_loss"]
fig, axes = plt.subplots(1, len(terms), figsize=(12, 2.8), sharex=True)
epochs = range(1, len(history) + 1)
for ax, term in zip(axes, terms, strict=True):
    ax.plot(epochs, history[term], marker="o", markersize=3)
    ax.set_title(term)
    ax.set_xlabel("epoch")
fig.suptitle("Deep InfoMax on digits (JSD estimator): history_")
fig.tight_layout()
plt.show()
