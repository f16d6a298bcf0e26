"""
t-SNE of Deep InfoMax features of the digits
============================================

Fit :class:`sk_dim.DeepInfoMaxTransformer` on scikit-learn's 8x8 digits,
without labels, and draw a 2-D t-SNE map of the learned features coloured by
class, beside a t-SNE map of the raw pixels. Settings are reduced (a subset of
the digits and a few epochs) so that the example runs in a minute or two on a
CPU; more epochs give cleaner clusters.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.manifold import TSNE

from sk_dim import DeepInfoMaxTransformer

torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
X, y = X[:800], y[:800]

# %%
# Learn features without the labels. ``layer="y"`` returns the 64-d global
# vector; the default ``layer="conv"`` (2048 pooled local features) is what a
# linear classifier should read, but the compact code draws a clearer map.
dim = DeepInfoMaxTransformer(layer="y", max_epochs=4, device="cpu", random_state=0)
Z = dim.fit_transform(X)
print(Z.shape)

# %%
# Embed both spaces in 2-D with t-SNE and colour the points by digit.
maps = {
    "raw pixels (64-d)": TSNE(random_state=0, init="pca").fit_transform(X),
    "Deep InfoMax y (64-d)": TSNE(random_state=0, init="pca").fit_transform(Z),
}

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
for ax, (title, points) in zip(axes, maps.items(), strict=True):
    scatter = ax.scatter(points[:, 0], points[:, 1], c=y, cmap="tab10", s=6)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(scatter, ax=axes, ticks=range(10), label="digit")
fig.suptitle("t-SNE of 800 digits")
plt.show()
