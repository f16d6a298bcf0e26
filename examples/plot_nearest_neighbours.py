"""
Nearest neighbours in the learned space
=======================================

Fit :class:`sk_dim.DeepInfoMaxTransformer` without labels on digits that are
not centred, then read its features two ways, and raw pixels the same two ways:

- **retrieval**: the 5 nearest training images (cosine distance) of each
  held-out image; the score is the share of neighbours with the query's label,
  over all 600 held-out images;
- **linear read-out**: the held-out accuracy of a logistic regression trained
  on the 1000 labelled training images.

The data are scikit-learn's 8x8 digits, each placed at a random offset of up
to one pixel in each direction on a 10x10 canvas: a small translation, which
moves most of a digit's ink to other pixels. The figure shows six queries with
their neighbours in both spaces, the two scores in each title.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dim import DeepInfoMaxTransformer

torch.set_num_threads(1)


def shifted_digits(max_shift=1, seed=0):
    """Digits at a random offset of up to ``max_shift`` pixels, flattened, in [0, 1]."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    side = 8 + 2 * max_shift
    images = np.zeros((len(digits.images), side, side))
    dy, dx = rng.integers(0, 2 * max_shift + 1, (2, len(images)))
    for i, digit in enumerate(digits.images / 16):
        images[i, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8] = digit
    return images.reshape(len(images), -1), digits.target, side


X, y, side = shifted_digits()
X_train, y_train = X[:1000], y[:1000]
X_test, y_test = X[1000:1600], y[1000:1600]

dim = DeepInfoMaxTransformer(max_epochs=4, device="cpu", random_state=0).fit(X_train)

spaces = {
    "raw pixels": (X_train, X_test),
    "Deep InfoMax": (dim.transform(X_train), dim.transform(X_test)),
}
neighbours, titles = {}, {}
for name, (train, test) in spaces.items():
    knn = NearestNeighbors(n_neighbors=5, metric="cosine").fit(train)
    neighbours[name] = knn.kneighbors(test, return_distance=False)  # (600, 5)
    retrieval = (y_train[neighbours[name]] == y_test[:, None]).mean()
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    linear = probe.fit(train, y_train).score(test, y_test)
    print(f"{name:>12}: retrieval {retrieval:.3f}, linear read-out {linear:.3f}")
    titles[name] = f"{name}\nretrieval {retrieval:.2f}, linear {linear:.2f}"

# %%
# Each row: a held-out query (left), then its 5 neighbours in each space; a
# red frame marks a neighbour showing another digit.
queries = np.arange(6)
fig, axes = plt.subplots(len(queries), 13, figsize=(11, 6))
for ax in axes[:, 6]:
    ax.set_axis_off()  # a blank column between the two spaces
for half, (name, idx) in enumerate(neighbours.items()):
    for r, q in enumerate(queries):
        row = [X_test[q]] + [X_train[j] for j in idx[q]]
        for c, image in enumerate(row):
            ax = axes[r, 7 * half + c]
            ax.imshow(image.reshape(side, side), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            if c > 0 and y_train[idx[q, c - 1]] != y_test[q]:
                for spine in ax.spines.values():
                    spine.set_color("red")
                    spine.set_linewidth(2)
    axes[0, 7 * half].set_title("query", fontsize=8)
    axes[0, 7 * half + 3].set_title(titles[name], fontsize=9)
fig.suptitle("Nearest neighbours of shifted digits (red frame: another digit)")
plt.show()

# %%
# What the scores say
# -------------------
#
# Raw pixels are the better space for retrieval here: in the run above about
# 0.82 of the 5 pixel-space neighbours show the query's digit, against about
# 0.70 in the learned space, and the red frames are more frequent on the right.
# The learned features are the better space for a linear classifier, about
# 0.93 against 0.60: a one-pixel shift moves a digit's ink to other pixels,
# which a linear model on pixels, weighing each position once, cannot follow.
#
# Deep InfoMax is trained, and evaluated in its paper, for that linear
# read-out. Cosine distance over its 7168 features weighs every feature alike,
# including the many that do not depend on the digit, so a good linear space
# is not necessarily a good neighbour space.
