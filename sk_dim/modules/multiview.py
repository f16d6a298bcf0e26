"""Contrastive Multiview Coding (CMC) as one torch module.

:class:`MultiviewCoding` chains three parts:

1. a *view maker* (:mod:`sk_dim.views.makers`) that turns a batch of raw inputs
   ``(N, *input_shape)`` into a list of V view tensors;
2. one encoder per view (the :mod:`sk_dim.modules.encoders` contract), whose
   ``y`` is L2-normalised into the view's embedding;
3. a :class:`~sk_dim.losses.MultiviewContrast` with its memory bank, which scores
   every embedding against the other views' banks.

The contrast is training state only: :meth:`MultiviewCoding.drop_contrast`
removes it (and the ``V x N x D`` bank) once training is over; encoding and
feature extraction do not need it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import MultiviewContrast
from ..losses.precision import at_least_float32
from ..views import check_view
from .base import SelfSupervisedModule
from .encoders import EncoderOutput, check_layer, select_layer, unpack


class MultiviewCoding(SelfSupervisedModule):
    """View maker, one encoder per view and the memory-bank contrast of CMC.

    ``forward(x, index)`` returns ``{"loss": total}`` plus one term per scoring
    direction, ``"contrast_i_j"``: view i's embedding scored against view j's
    memory bank. ``index`` holds the rows' positions in the training set (their
    memory-bank rows).
    """

    LAYERS = ("local", "blocks", "conv", "fc", "embedding")
    training_state_prefixes = ("contrast.",)

    def __init__(
        self,
        views: nn.Module,
        encoders: Sequence[nn.Module],
        contrast: MultiviewContrast | None,
    ) -> None:
        super().__init__()
        self.views = views
        self.encoders = nn.ModuleList(encoders)
        self.contrast = contrast

    @property
    def n_views(self) -> int:
        return len(self.encoders)

    def encode(self, x: Tensor, views: Sequence[int] | None = None) -> list[EncoderOutput]:
        """Encoder outputs of the views ``views`` (all by default) of a raw batch."""
        # Views are preprocessing (colour conversion, crops): float32 even under
        # autocast, which would run the Lab matrix product in bfloat16.
        with torch.autocast(x.device.type, enabled=False):
            made = self.views(x)
        if len(made) != self.n_views:
            raise ValueError(f"the view maker returned {len(made)} views, expected {self.n_views}")
        chosen = range(self.n_views) if views is None else views
        return [unpack(self.encoders[v](check_view(made[v], v, len(x)))) for v in chosen]

    @staticmethod
    def embedding(out: EncoderOutput) -> Tensor:
        """The L2-normalised y of one view, (N, n_components)."""
        return F.normalize(at_least_float32(out.y), dim=1)

    def forward(self, x: Tensor, index: Tensor) -> dict[str, Tensor]:
        if self.contrast is None:
            raise RuntimeError(
                "The memory bank was dropped after fit; refit, or fit with "
                "keep_memory_bank=True to continue training"
            )
        embeddings = [self.embedding(out) for out in self.encode(x)]
        total, terms = self.contrast(embeddings, index)
        result = {"loss": total}
        for key, value in terms.items():
            result[f"contrast_{key}"] = total.new_tensor(value)
        return result

    def drop_contrast(self) -> None:
        """Remove the memory bank and NCE constants (training state only)."""
        self.contrast = None

    def features(
        self, x: Tensor, layer: str, pool_size: int, view: int | None = None
    ) -> Tensor:  # (N, ...) -> (N, D): the views' features side by side, or one view's
        check_layer(layer, self.LAYERS)
        if view is not None and view >= self.n_views:
            raise ValueError(f"view={view} is out of range: there are {self.n_views} views")
        outputs = self.encode(x, None if view is None else [view])
        if layer == "embedding":
            return torch.cat([self.embedding(out) for out in outputs], dim=1)
        return torch.cat([select_layer(out, layer, pool_size) for out in outputs], dim=1)

    def set_gather(self, gather) -> None:
        if self.contrast is not None:
            self.contrast.gather_across_processes = gather

    def inference_copy(self) -> MultiviewCoding:
        contrast, self.contrast = self.contrast, None
        try:
            return copy.deepcopy(self)
        finally:
            self.contrast = contrast

    def compile_targets(self) -> list[nn.Module]:
        """The submodules ``compile=True`` compiles: the encoders.

        The contrast reads its terms back as Python floats and draws negatives
        from a generator; compiled, it would break the graph and, specialising
        on the floats, recompile every batch.
        """
        return list(self.encoders)
