"""The training engine: the only code of sk_dim that imports skorch.

- ``engine.py``: what the estimators call (:func:`build_net`, :func:`train`,
  :func:`embed`);
- ``net.py``: the skorch net, :class:`SelfSupervisedNet`;
- ``callbacks.py``: divergence, Ctrl-C and early stopping;
- ``accelerate.py``: training through Hugging Face Accelerate;
- ``batching.py``: mini-batches, and reading a memmap's rows from its file.

It sees a torch module only through
:class:`~sk_dim.modules.base.SelfSupervisedModule`, and the device,
precision and layout only as a resolved :class:`~sk_dim._runtime.Runtime`.
"""

from .accelerate import AcceleratedSelfSupervisedNet
from .batching import DeviceBatches, FileRows, iter_row_chunks, memmap_of
from .callbacks import WEIGHT_LIMIT, LowestValidLoss, TrainingDiverged, first_weight_beyond_limit
from .engine import build_net, embed, train, without_accelerator
from .net import SelfSupervisedNet, epoch_seed, validation_seed, without_training_state

__all__ = [
    "WEIGHT_LIMIT",
    "AcceleratedSelfSupervisedNet",
    "DeviceBatches",
    "FileRows",
    "LowestValidLoss",
    "SelfSupervisedNet",
    "TrainingDiverged",
    "build_net",
    "embed",
    "epoch_seed",
    "first_weight_beyond_limit",
    "iter_row_chunks",
    "memmap_of",
    "train",
    "validation_seed",
    "without_accelerator",
    "without_training_state",
]
