"""
Nearest neighbours in the learned space
=======================================

Fit :class:`sk_dim.DeepInfoMaxTransformer` on digits without labels, then,
for a few held-out query images, show their nearest training images in the
learned feature space (cosine distance) and in raw pixel space. The share of
neighbours with the query's label measures how well the space groups digits
that were never labelled.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from sk_dim import DeepInfoMaxTransformer

torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
X_train, y_train = X[:800], y[:800]
X_query, y_query = X[1000:1006], y[1000:1006]
N_NEIGHBOURS = 6

dim = DeepInfoMaxTransformer(max_epochs=4, device="cpu", random_state=0).fit(X_train)

spaces = {
    "Deep InfoMax (conv)": (dim.transform(X_train), dim.transform(X_query)),
    "raw pixels": (X_train, X_query),
}
neighbours = {}
for name, (train, query) in spaces.items():
    knn = NearestNeighbors(n_neighbors=N_NEIGHBOURS, metric="cosine").fit(train)
    neighbours[name] = knn.kneighbors(query, return_distance=False)
    same = (y_train[neighbours[name]] == y_query[:, None]).mean()
    print(f"{name}: {same:.2f} of the neighbours share the query's label")

# %%
# Each row: the query (left), then its neighbours in that space.
fig, axes = plt.subplots(len(X_query), 2 * (N_NEIGHBOURS + 1), figsize=(11, 6.5))
for half, (name, idx) in enumerate(neighbours.items()):
    offset = half * (N_NEIGHBOURS + 1)
    for r in range(len(X_query)):
        row = [X_query[r]] + [X_train[j] for j in idx[r]]
        for c, image in enumerate(row):
            ax = axes[r, offset + c]
            ax.imshow(np.reshape(image, (8, 8)), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            if c > 0 and y_train[idx[r, c - 1]] != y_query[r]:
                for spine in ax.spines.values():
                    spine.set_color("red")
                    spine.set_linewidth(2)
    axes[0, offset].set_title("query", fontsize=8)
    axes[0, offset + (N_NEIGHBOURS + 1) // 2].set_title(name, fontsize=9)
fig.suptitle("Nearest neighbours (red frame: another digit)")
plt.show()
