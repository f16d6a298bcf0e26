"""The interface between a method's torch module and the code that trains it.

The training engine (``sk_dim.training``) trains any :class:`SelfSupervisedModule`,
and the estimators read features through it; Deep InfoMax
(:class:`~sk_dim.modules.infomax.DeepInfoMax`) and CMC
(:class:`~sk_dim.modules.multiview.MultiviewCoding`) implement it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn


class SelfSupervisedModule(nn.Module):
    """A torch module that computes its own self-supervised loss.

    Subclasses implement :meth:`forward` and :meth:`features`; the rest has
    defaults that fit a module with one optimizer and no training-only state.
    """

    #: Prefixes of the ``state_dict`` keys that only training needs (CMC's memory
    #: bank): saved files leave them out.
    training_state_prefixes: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        # A second player trained by its own optimizer on discriminator_step_loss
        # (Deep InfoMax's prior discriminator), or None. Not a class attribute:
        # it would hide a submodule of that name, which nn.Module keeps elsewhere.
        self.discriminator: nn.Module | None = None

    def forward(self, x: Tensor, index: Tensor) -> dict[str, Tensor]:
        """Scalar loss terms of a batch ``x`` whose rows are ``index`` of the training set.

        ``"loss"`` is minimised by the main optimizer; every other term is logged.
        """
        raise NotImplementedError

    def features(self, x: Tensor, layer: str, pool_size: int) -> Tensor:  # (N, ...) -> (N, D)
        """Features of ``layer`` for a batch of raw inputs, in eval mode."""
        raise NotImplementedError

    def validation_terms(
        self, x: Tensor, index: Tensor, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Scalar terms of a held-out batch ``x``; ``"loss"`` is the objective to minimise.

        Early stopping compares the ``"loss"`` of every epoch, so it must be
        the same measurement each time: training calls this in eval mode,
        without gradients, with ``generator`` re-seeded identically before
        every pass over the held-out rows; random draws (augmentations,
        negatives) come from it. ``index`` holds the rows' positions in the
        held-out set. The default is :meth:`forward`.
        """
        return self(x, index)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the main optimizer: all but the discriminator's."""
        skip = (
            set() if self.discriminator is None else set(map(id, self.discriminator.parameters()))
        )
        return [p for p in self.parameters() if id(p) not in skip]

    def discriminator_step_loss(self, terms: dict[str, Tensor]) -> Tensor:
        """The discriminator's loss, given the terms :meth:`forward` returned for the batch.

        Logged as ``"discriminator"``, unless the module adds that term, and
        any other parts of its loss to log, to ``terms`` itself.
        """
        raise NotImplementedError(f"{type(self).__name__} has no discriminator")

    def compile_targets(self) -> list[nn.Module]:
        """The submodules that ``compile=True`` compiles for training."""
        return [self]

    def set_gather(self, gather: Callable[[Tensor], Tensor] | None) -> None:
        """Receive accelerate's ``gather`` under data parallelism (None: one process)."""

    def inference_copy(self) -> SelfSupervisedModule:
        """An independent copy holding what :meth:`features` needs, and no training state."""
        return copy.deepcopy(self)


class LayerFeatures(nn.Module):
    """``module.features(x, **options)`` as a module of its own, e.g. for fine-tuning."""

    def __init__(self, module: SelfSupervisedModule, options: dict) -> None:
        super().__init__()
        self.module = module
        self.options = dict(options)

    def forward(self, x: Tensor) -> Tensor:  # (N, *input_shape) -> (N, D)
        return self.module.features(x, **self.options)
