"""
CMC's L and ab views of colour images
=====================================

:class:`sk_dim.CMCTransformer` with ``views="lab"`` (the default for RGB
images) splits each image into two views: the lightness L of CIELAB and its
two colour channels ab. One encoder per view is trained so that the two views
of the same image agree, so what the features capture is what lightness and
colour have in common: shapes and objects, not the exact shade.

This example draws those views with :func:`sk_dim.views.color_views` (the
normalised views CMC trains on) and :func:`sk_dim.views.rgb_to_lab`. The
images are CIFAR-10 when :func:`sk_dim.datasets.load_cifar10` finds it in its
default folder (``$SK_DIM_DATA``, else ``~/sk_dim_data``), and otherwise digits
tinted with random foreground and background colours. Nothing is downloaded or
trained.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

from sk_dim.datasets import get_data_home, load_cifar10
from sk_dim.views import color_views, rgb_to_lab

torch.set_num_threads(1)
N_IMAGES = 5


def tinted_digits(n, seed=0):
    """Digits upscaled to 32x32, with a random colour for the strokes and the background."""
    rng = np.random.default_rng(seed)
    digits = load_digits()
    strokes = np.kron(digits.images[:n] / 16.0, np.ones((4, 4)))  # (n, 32, 32) in [0, 1]
    fg = rng.uniform(0, 1, (n, 3, 1, 1))
    bg = rng.uniform(0, 1, (n, 3, 1, 1))
    rgb = strokes[:, None] * fg + (1 - strokes[:, None]) * bg  # (n, 3, 32, 32)
    return rgb.astype(np.float32), "digits tinted with random colours"


def load_rgb(n):
    try:
        cifar = load_cifar10(subset="test")  # from $SK_DIM_DATA, else ~/sk_dim_data
        return cifar.images[:n].astype(np.float32) / 255.0, "CIFAR-10"
    except FileNotFoundError:
        print(f"CIFAR-10 is not in {get_data_home()}; using tinted digits")
    return tinted_digits(n)


rgb, source = load_rgb(N_IMAGES)
batch = torch.from_numpy(rgb)  # (N, 3, H, W), floats in [0, 1]
L, ab = color_views(batch, "lab")  # (N, 1, H, W) and (N, 2, H, W), each in about [-1, 1]
lab = rgb_to_lab(batch)  # L in [0, 100], a and b in about [-108, 99]
print("L view", tuple(L.shape), "ab view", tuple(ab.shape))
print(f"L in [{lab[:, 0].min():.1f}, {lab[:, 0].max():.1f}]")

# %%
# For display, the ab view is shown as the colour it encodes at constant
# lightness: a and b of each pixel with L fixed at 70, converted back to RGB by
# a nearest-colour lookup in a small palette of sRGB colours.
palette = torch.stack(
    torch.meshgrid(*[torch.linspace(0, 1, 24)] * 3, indexing="ij"), dim=0
).reshape(3, -1)  # (3, 24^3) sRGB colours
palette_ab = rgb_to_lab(palette.T[:, :, None, None])[:, 1:, 0, 0]  # (24^3, 2)
palette_lab = rgb_to_lab(palette.T[:, :, None, None])[:, :, 0, 0]
bright = palette_lab[:, 0].sub(70).abs() < 6  # colours with lightness near 70
candidates_ab, candidates_rgb = palette_ab[bright], palette.T[bright]


def ab_as_rgb(ab_lab):
    """(2, H, W) a and b -> (H, W, 3) RGB of the nearest palette colour at L ~ 70."""
    flat = ab_lab.reshape(2, -1).T  # (H * W, 2)
    nearest = torch.cdist(flat, candidates_ab).argmin(dim=1)
    return candidates_rgb[nearest].reshape(*ab_lab.shape[1:], 3).numpy()


fig, axes = plt.subplots(N_IMAGES, 5, figsize=(8, 1.7 * N_IMAGES))
titles = ["RGB image", "L view", "a channel", "b channel", "ab at constant L"]
for r in range(N_IMAGES):
    panels = [
        (rgb[r].transpose(1, 2, 0), {}),
        (L[r, 0].numpy(), {"cmap": "gray", "vmin": -1, "vmax": 1}),
        (ab[r, 0].numpy(), {"cmap": "RdYlGn_r", "vmin": -1, "vmax": 1}),
        (ab[r, 1].numpy(), {"cmap": "YlGnBu_r", "vmin": -1, "vmax": 1}),
        (ab_as_rgb(lab[r, 1:]), {}),
    ]
    for c, (image, style) in enumerate(panels):
        ax = axes[r, c]
        ax.imshow(image, **style)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(titles[c], fontsize=9)
fig.suptitle(f"CMC colour views ({source})")
fig.tight_layout()
plt.show()
