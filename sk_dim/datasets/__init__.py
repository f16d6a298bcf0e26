"""Loaders for standard image data sets that already sit on the user's disk.

Nothing in this package downloads anything: every loader reads the files in
their official distribution format from a ``data_home`` folder. As with
scikit-learn's fetchers, ``data_home=None`` means :func:`get_data_home`: the
folder named by the environment variable ``SK_DIM_DATA`` when it is set, else
``~/sk_dim_data``. This keeps the package usable on machines without network
access and makes the provenance of the pixels explicit (the user chose the copy).

All loaders return uint8 pixels, flattened in ``data`` and shaped in
``images`` (``(n, 28, 28)`` for MNIST, ``(n, 3, 32, 32)`` for CIFAR-10), with
``image_shape`` given as ``(C, H, W)`` to match the channel-first convention
used throughout ``sk_dim``.

The package has one module per purpose: :mod:`~sk_dim.datasets.home` (the
data home, finding the files, the checks both loaders share),
:mod:`~sk_dim.datasets.mnist` and :mod:`~sk_dim.datasets.cifar10`. Import the
names from ``sk_dim.datasets``.
"""

from .cifar10 import load_cifar10
from .home import get_data_home
from .mnist import load_mnist

__all__ = ["get_data_home", "load_cifar10", "load_mnist"]
