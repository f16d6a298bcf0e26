"""
t-SNE of Deep InfoMax features of the digits
============================================

Fit :class:`sk_dim.DeepInfoMaxTransformer` without labels on scikit-learn's
8x8 digits, each placed at a random offset of up to one pixel on a 10x10
canvas, and draw 2-D t-SNE maps of the raw pixels and of the learned features
(the default ``layer``, ``"blocks"``: 7168 pooled features of every block), coloured by digit.

Two numbers stand beside each map, both on 600 images held out from the fit:

- **map 5-NN**: the accuracy of a 5-nearest-neighbour classifier *in the 2-D
  map*, fitted on the 1000 training points: how well the picture separates
  the digits;
- **linear**: the accuracy of a logistic regression on the full features:
  how well a linear classifier separates them.

Settings are reduced (1600 digits, 4 epochs) so that the example runs in well
under a minute on one CPU core.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier
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
    return images.reshape(len(images), -1), digits.target


X, y = shifted_digits()
X, y = X[:1600], y[:1600]
train = np.arange(1600) < 1000  # the fit and the classifiers see these; scores on the rest

# %%
# Learn features without the labels, then map both spaces to 2-D.
dim = DeepInfoMaxTransformer(max_epochs=4, device="cpu", random_state=0).fit(X[train])
spaces = {"raw pixels (100-d)": X, "Deep InfoMax (7168-d)": dim.transform(X)}

maps, titles = {}, {}
for name, features in spaces.items():
    maps[name] = TSNE(random_state=0, init="pca").fit_transform(features)
    knn = KNeighborsClassifier(5).fit(maps[name][train], y[train])
    map_score = knn.score(maps[name][~train], y[~train])
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    linear = probe.fit(features[train], y[train]).score(features[~train], y[~train])
    print(f"{name:>22}: map 5-NN {map_score:.3f}, linear {linear:.3f}")
    titles[name] = f"{name}\nmap 5-NN {map_score:.2f}, linear {linear:.2f}"

fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
for ax, (name, points) in zip(axes, maps.items(), strict=True):
    scatter = ax.scatter(points[:, 0], points[:, 1], c=y, cmap="tab10", s=5)
    ax.set_title(titles[name], fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(scatter, ax=axes, ticks=range(10), label="digit")
fig.suptitle("t-SNE of 1600 shifted digits")
plt.show()

# %%
# What the maps say
# -----------------
#
# The raw-pixel map separates the digits better (map 5-NN about 0.91 against
# 0.77 in the run above): t-SNE keeps each point's nearest neighbours, and on
# digits the nearest neighbours in pixel space mostly show the same digit (see
# :ref:`sphx_glr_auto_examples_plot_nearest_neighbours.py`). The linear
# read-out ranks the two spaces the other way round, about 0.93 for the learned
# features against 0.60 for the pixels. A t-SNE map shows neighbourhoods, not
# linear separability: it is a poor judge of features meant for a linear
# classifier.
