"""
Training curves of each loss term
=================================

:class:`sk_dim.DeepInfoMaxTransformer` records one row per epoch in
``history_``, each term averaged over the epoch's batches:

- ``global_mi`` and ``local_mi``: the Jensen-Shannon MI estimates
  (``mi_estimator="jsd"``, set below; the default is ``"infonce"``) that
  training maximizes, in nats. They are 0 for a
  critic that cannot tell matching pairs from mismatched ones, and at most
  ``2 log 2`` (about 1.386): the JSD estimator is a bound on twice the
  Jensen-Shannon divergence, not on the (unbounded) KL mutual information,
  so it saturates;
- ``prior``: the encoder's adversarial loss against the prior discriminator
  (``-log D(y)``); ``log 2`` (0.693) when the discriminator cannot tell y from
  prior samples;
- ``discriminator``: the discriminator's own loss (cross-entropy on prior
  samples and on y), ``2 log 2`` at that same balance point;
- ``train_loss``: the encoder's objective,
  ``-(alpha * global_mi + beta * local_mi) + gamma * prior``;
- ``train_batch_count`` (batches per epoch) and ``dur`` (seconds).

The dashed lines mark those reference values.
"""

import math

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits

from sk_dim import DeepInfoMaxTransformer

torch.set_num_threads(1)

X, _ = load_digits(return_X_y=True)

dim = DeepInfoMaxTransformer(
    alpha=0.5,
    beta=1.0,
    gamma=0.1,
    mi_estimator="jsd",
    max_epochs=8,
    device="cpu",
    random_state=0,
)
dim.fit(X[:600])
history = dim.history_
print(history.drop(columns="dur").round(3).to_string())

# %%
# One panel per term; the x axis is the epoch.
references = {
    "global_mi": (2 * math.log(2), "2 log 2: the JSD ceiling"),
    "local_mi": (2 * math.log(2), "2 log 2: the JSD ceiling"),
    "prior": (math.log(2), "log 2: discriminator fooled"),
    "discriminator": (2 * math.log(2), "2 log 2: discriminator guessing"),
}
terms = ["global_mi", "local_mi", "prior", "discriminator", "train_loss"]
fig, axes = plt.subplots(1, len(terms), figsize=(13, 3), sharex=True)
epochs = history.index
for ax, term in zip(axes, terms, strict=True):
    ax.plot(epochs, history[term], marker="o", markersize=3)
    if term in references:
        value, label = references[term]
        ax.axhline(value, color="gray", linestyle="--", linewidth=1, label=label)
        ax.legend(fontsize=7, loc="best")
    ax.set_title(term + (" (nats)" if term.endswith("_mi") else ""))
    ax.set_xlabel("epoch")
fig.suptitle("Deep InfoMax on 600 digits (JSD estimator): history_")
fig.tight_layout()
plt.show()

# %%
# What the curves show
# --------------------
#
# Both MI estimates rise over the 8 epochs of the run above: ``global_mi`` from
# about 0.3 to 1.1 nats, close to its ceiling after 3 epochs, ``local_mi`` from
# about -0.1 (a critic slightly worse than uninformative, at the start) to 0.6
# and still climbing. ``train_loss`` falls with them for 6 epochs.
#
# The adversarial pair does not settle at its balance point: the
# discriminator's loss swings between about 0.4 and 1.3 (2 log 2 is 1.39) and
# the encoder's prior loss between about 0.9 and 3, highest in the last epoch,
# when the discriminator has the upper hand. With ``gamma=0.1`` that term
# weighs little: the rise of ``train_loss`` after epoch 6 is its share. A
# discriminator loss stuck near 0 with a prior loss growing epoch after epoch
# would mean the encoder has stopped matching the prior.
