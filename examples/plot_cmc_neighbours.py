"""
Nearest neighbours in a CMC embedding
=====================================

Contrastive Multiview Coding learns one encoder for the lightness L of an
image and one for its colour ab, trained so that the two views of the same
image agree. Here we fit :class:`sk_dim.CMCTransformer` on a few hundred
colour images at reduced settings and look up nearest neighbours (cosine
distance) in the learned embedding.

The images are CIFAR-10 when the environment variable ``SK_DIM_DATA_HOME``
points at a folder holding ``cifar-10-batches-py``; otherwise synthetic
32x32 images of coloured shapes (discs, squares and bars on coloured
backgrounds) are generated with numpy. Runs in a minute or two on a CPU.
"""

import os

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from sk_dim import CMCTransformer

N_IMAGES = 600
SIDE = 32


def synthetic_shapes(n, seed=0):
    """Coloured discs, squares and bars on coloured backgrounds, uint8 (n, 3, 32, 32)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    labels = rng.integers(0, 3, n)
    images = np.empty((n, 3, SIDE, SIDE))
    for i, label in enumerate(labels):
        cy, cx, r = rng.uniform(10, 22), rng.uniform(10, 22), rng.uniform(5, 9)
        if label == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        elif label == 1:
            mask = (abs(yy - cy) < r * 0.8) & (abs(xx - cx) < r * 0.8)
        else:
            mask = abs(yy - cy) < r * 0.35
        shape_colour, background = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        noise = rng.normal(0, 0.03, (3, SIDE, SIDE))
        images[i] = np.where(mask, shape_colour[:, None, None], background[:, None, None]) + noise
    images = (images.clip(0, 1) * 255).round().astype(np.uint8)
    return images, labels, np.array(["disc", "square", "bar"])


def load_images():
    data_home = os.environ.get("SK_DIM_DATA_HOME")
    if data_home:
        from sk_dim.datasets import load_cifar10

        try:
            cifar = load_cifar10(data_home, subset="train")
            return cifar.images[:N_IMAGES], cifar.target[:N_IMAGES], cifar.target_names, "CIFAR-10"
        except (FileNotFoundError, OSError) as exc:
            print(f"CIFAR-10 not found ({exc}); using synthetic shapes")
    return (*synthetic_shapes(N_IMAGES), "synthetic shapes")


torch.set_num_threads(min(2, torch.get_num_threads()))
images, labels, names, source = load_images()
print(f"{len(images)} images from {source}")

# %%
# Reduced settings: small embedding, few negatives (the data set is small) and a
# few epochs. layer="embedding" returns both views' L2-normalised embeddings.
cmc = CMCTransformer(
    n_components=64,
    n_negatives=256,
    max_epochs=8,
    batch_size=64,
    layer="embedding",
    random_state=0,
)
Z = cmc.fit_transform(images)
print(cmc.history_[["train_loss", "contrast_0_1", "contrast_1_0"]].round(3).to_string())

# Cosine neighbours on the concatenated (L, ab) embedding; the first hit is the query.
queries = np.arange(6)
knn = NearestNeighbors(n_neighbors=6, metric="cosine").fit(Z)
_, neighbours = knn.kneighbors(Z[queries])
for q, row in zip(queries, neighbours, strict=True):
    found = ", ".join(f"{j} ({names[labels[j]]})" for j in row[1:])
    print(f"query {q} ({names[labels[q]]}): {found}")
same = (labels[neighbours[:, 1:]] == labels[queries, None]).mean()
print(f"neighbours with the query's label: {same:.2f}")

# %%
# Plot each query with its neighbours when matplotlib is installed.
try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

if plt is not None:
    fig, axes = plt.subplots(len(queries), 6, figsize=(7, 7))
    for r, row in enumerate(neighbours):
        for c, j in enumerate(row):
            ax = axes[r, c]
            ax.imshow(images[j].transpose(1, 2, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(("query: " if c == 0 else "") + str(names[labels[j]]), fontsize=7)
    fig.suptitle(f"CMC (L/ab) nearest neighbours, {source}")
    fig.tight_layout()
