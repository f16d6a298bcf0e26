"""Contrastive Multiview Coding (CMC) as one torch module.

:class:`MultiviewCoding` chains three parts:

1. a *view maker* (:mod:`sk_dim.views.makers`) that turns a batch of raw inputs
   ``(N, *input_shape)`` into a list of V view tensors;
2. one encoder per view (the :mod:`sk_dim.modules.encoders` contract), whose
   ``y`` is L2-normalised into the view's embedding;
3. a :class:`~sk_dim.losses.MultiviewContrast` with its memory bank, which scores
   every embedding against the other views' banks.

With a queue contrast (``partial_fit``) it is MoCo (He et al., 2020) across
views: each view also has a *key encoder*, a momentum (exponential moving)
average of its encoder, whose embeddings are the positives and fill the queue.

The module assembles itself from the view maker, the input shape and the encoder
parameter, as :class:`~sk_dim.modules.infomax.DeepInfoMax` does: it measures the
views' shapes, builds one encoder per view and measures the embedding size.

The contrast and the key encoders are training state only, sized by the data:
:meth:`MultiviewCoding.prepare_contrast` adds them before training and
:meth:`MultiviewCoding.drop_contrast` removes them (and the ``V x N x D`` bank)
once training is over; encoding and feature extraction do not need them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import MemoryBank, MultiviewContrast
from ..losses.precision import at_least_float32
from ..views import check_view
from .base import SelfSupervisedModule
from .encoders import EncoderOutput, build_encoder, check_layer, select_layer, unpack

# The paper splits one network's width between the views (two half AlexNets).
VIEW_ENCODER_WIDTH = 0.5


def key_groups(n: int, n_groups: int) -> Tensor:
    """Order (n,) of a batch's rows for the key encoders' batch-norm groups.

    Queries are encoded in ``n_groups`` contiguous groups, ``x.tensor_split(n_groups)``;
    keys in the same number of groups of the batch reordered by this order (rows
    with the same position modulo ``n_groups`` together), so that each key group
    takes about ``1 / n_groups`` of its rows from each query group: the fewest a
    group of that size can share with any query's group.
    """
    return torch.cat([torch.arange(start, n, n_groups) for start in range(n_groups)])


class MultiviewCoding(SelfSupervisedModule):
    """View maker, one encoder per view and the memory-bank contrast of CMC.

    ``forward(x, index)`` returns ``{"loss": total}`` plus one term per scoring
    direction, ``"contrast_i_j"``: view i's embedding scored against view j's
    memory bank. ``index`` holds the rows' positions in the training set (their
    memory-bank rows).

    With a queue contrast (:meth:`use_contrast`), training follows MoCo: every
    training forward first moves each view's key encoder towards its encoder,
    ``key = KEY_MOMENTUM * key + (1 - KEY_MOMENTUM) * encoder`` (parameters only;
    batch-norm statistics are the key encoder's own). The training loop calls
    only ``module(x, index)``, so doing it at the start of the forward, as
    MoCo's ``forward`` does, applies it once after each optimizer step. View
    i's embedding is then scored against view j's key of the same sample and
    every entry of view j's queue, and the keys enter the queue.
    """

    LAYERS = ("local", "blocks", "conv", "fc", "embedding")
    training_state_prefixes = ("contrast.", "key_encoders.")
    #: Momentum of the key encoders' moving average (MoCo's default). Over T steps a
    #: key encoder follows its encoder with a lag of about 1 / (1 - m) = 1000 steps.
    KEY_MOMENTUM = 0.999
    #: Batch-norm groups of a batch for the queue objective (MoCo's "shuffling BN"
    #: on one device), each of at least MIN_GROUP rows.
    BN_GROUPS = 4
    MIN_GROUP = 16

    def __init__(
        self,
        views: nn.Module,
        input_shape: tuple[int, ...],
        encoder: str | nn.Module | Sequence[nn.Module],
        *,
        embedding_dim: int,
        loss: str = "nce",
        graph: str = "core",
        temperature: float = 0.07,
        momentum: float = 0.5,
    ) -> None:
        """Assemble the module for raw inputs of ``input_shape`` (without N).

        Parameters
        ----------
        views : torch.nn.Module
            The view maker (:mod:`sk_dim.views.makers`), in training mode.
        input_shape : tuple of int
            Shape of one raw input, ``(C, H, W)`` or ``(F,)``.
        encoder : str, torch.nn.Module or sequence of torch.nn.Module
            A name of :func:`~sk_dim.modules.encoders.build_encoder`, built
            for each view's shape at half width; a module, copied once per
            view; or one module per view, each copied (so that training never
            changes the modules given).
        embedding_dim : int
            Size of the embedding the built-in encoders return.
        loss, graph, temperature, momentum
            The contrast's (:class:`~sk_dim.losses.MultiviewContrast`) and
            the memory bank's, used by :meth:`prepare_contrast`.
        """
        super().__init__()
        self.views = views
        self.loss_kind, self.graph = loss, graph
        self.temperature, self.momentum = temperature, momentum
        shapes = self._view_shapes(input_shape)
        self.encoders = nn.ModuleList(
            _view_encoder(encoder, v, shape, len(shapes), embedding_dim)
            for v, shape in enumerate(shapes)
        )
        dims = {_output_dim(enc, shape) for enc, shape in zip(self.encoders, shapes, strict=True)}
        if len(dims) != 1:
            raise ValueError(f"the view encoders return y of different sizes {sorted(dims)}")
        #: Size of every view's embedding (the width of a memory bank's rows), as measured.
        self.embedding_dim = dims.pop()
        self.contrast = None
        self.key_encoders: nn.ModuleList | None = None

    @torch.no_grad()
    def _view_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Shapes (without N) of the views of a zero batch, made in eval mode (no augmentation)."""
        self.views.eval()
        made = self.views(torch.zeros(2, *input_shape))
        self.views.train()
        return [tuple(check_view(view, v, 2).shape[1:]) for v, view in enumerate(made)]

    @property
    def n_views(self) -> int:
        return len(self.encoders)

    def prepare_contrast(self, n_negatives: int, n_rows: int | None = None) -> None:
        """Give training its contrast, unless the one it has fits.

        With ``n_rows``, a memory bank with one entry per training row, from
        which ``n_negatives`` negatives are drawn per embedding (``fit``);
        without, MoCo's queue of the ``n_negatives`` most recent keys, with key
        encoders (``partial_fit``, whose chunks have no fixed rows). A bank of
        ``n_rows`` rows, or a queue, kept from the last training is continued.
        """
        contrast = self.contrast
        if n_rows is None:
            if contrast is None or not contrast.queue:
                self.use_contrast(self._build_contrast(n_negatives, n_negatives, queue=True))
        elif contrast is None or contrast.queue or contrast.bank.n_samples != n_rows:
            self.use_contrast(self._build_contrast(n_rows, n_negatives, queue=False))

    def _build_contrast(self, n_rows: int, n_negatives: int, *, queue: bool) -> MultiviewContrast:
        # A queue's entries are replaced, never averaged: momentum 0.
        bank = MemoryBank(
            n_rows, self.embedding_dim, self.n_views, momentum=0.0 if queue else self.momentum
        )
        return MultiviewContrast(
            bank,
            n_negatives,
            temperature=self.temperature,
            loss=self.loss_kind,
            graph=self.graph,
            queue=queue,
        )

    def use_contrast(self, contrast: MultiviewContrast | None) -> None:
        """Train against ``contrast`` from now on.

        A queue contrast gets key encoders, copies of the encoders that no
        optimizer sees (MoCo initialises them so); a memory bank needs none.
        """
        self.contrast = contrast
        self.key_encoders = None
        if contrast is not None and contrast.queue:
            self.key_encoders = copy.deepcopy(self.encoders).requires_grad_(False)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the optimizer: all but the key encoders' (a moving average)."""
        keys = self.key_encoders
        skip = set() if keys is None else set(map(id, keys.parameters()))
        return [p for p in super().encoder_parameters() if id(p) not in skip]

    def make_views(self, x: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """The view maker's V views of a raw batch ``x`` (N, ...), checked."""
        # Views are preprocessing (colour conversion, crops): float32 even under
        # autocast, which would run the Lab matrix product in bfloat16.
        with torch.autocast(x.device.type, enabled=False):
            made = self.views(x) if generator is None else self.views(x, generator=generator)
        if len(made) != self.n_views:
            raise ValueError(f"the view maker returned {len(made)} views, expected {self.n_views}")
        # x.shape[0], not len(x): traced for ONNX export, the batch stays symbolic.
        return [check_view(view, v, x.shape[0]) for v, view in enumerate(made)]

    def encode(self, x: Tensor, views: Sequence[int] | None = None) -> list[EncoderOutput]:
        """Encoder outputs of the views ``views`` (all by default) of a raw batch."""
        made = self.make_views(x)
        chosen = range(self.n_views) if views is None else views
        return [unpack(self.encoders[v](made[v])) for v in chosen]

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
        if self.contrast.queue:
            total, terms = self._queue_contrast(self.make_views(x), index)
        else:
            embeddings = [self.embedding(out) for out in self.encode(x)]
            total, terms = self.contrast(embeddings, index)
        return self._result(total, terms)

    @staticmethod
    def _result(total: Tensor, terms: dict[str, float]) -> dict[str, Tensor]:
        result = {"loss": total}
        for key, value in terms.items():
            result[f"contrast_{key}"] = total.new_tensor(value)
        return result

    def _queue_contrast(self, made: list[Tensor], index: Tensor) -> tuple[Tensor, dict]:
        """MoCo across views: queries from the encoders, keys from the key encoders."""
        n = len(index)
        # MoCo shuffles keys across GPUs so that no key's batch-norm statistics
        # come from its query's batch: otherwise query and positive share a
        # statistic of the current batch that no queued negative (from earlier
        # batches) has, and the model finds its positive through it rather than
        # through the image. On one device the batch is split instead: queries
        # in contiguous groups, keys in groups that mix them (key_groups). Keys
        # with eval-mode batch norm would share nothing, but the running
        # statistics lag the moving weights, the more so early in training.
        n_groups = max(1, min(self.BN_GROUPS, n // self.MIN_GROUP))
        queries = [
            torch.cat(
                [
                    self.embedding(unpack(self.encoders[v](part)))
                    for part in view.tensor_split(n_groups)
                ]
            )
            for v, view in enumerate(made)
        ]  # V x (B, D)
        with torch.no_grad():
            if self.training:
                self._momentum_update()
            order = key_groups(n, n_groups).to(index.device)  # (B,)
            keys = []
            for v, view in enumerate(made):
                parts = view[order].tensor_split(n_groups)
                shuffled = torch.cat(
                    [self.embedding(unpack(self.key_encoders[v](part))) for part in parts]
                )  # (B, D) in `order`
                keys.append(torch.empty_like(shuffled).index_copy_(0, order, shuffled))
        return self.contrast(queries, index, keys=keys)

    @torch.no_grad()
    def _momentum_update(self) -> None:
        """key = m * key + (1 - m) * encoder, parameter by parameter (MoCo)."""
        m = self.KEY_MOMENTUM
        for query, key in zip(
            self.encoders.parameters(), self.key_encoders.parameters(), strict=True
        ):
            key.mul_(m).add_(query.detach(), alpha=1 - m)

    def validation_terms(self, x: Tensor, index: Tensor, generator: torch.Generator) -> dict:
        """Held-out loss terms: the views contrasted within the batch, no memory bank.

        The memory bank (or queue) drifts with training and holds no held-out rows,
        so held-out rows are scored against each other: view i's embedding of a row
        against view j's embeddings of all rows of the batch, its own row's being the
        positive, with the softmax (InfoNCE) loss (:meth:`MultiviewContrast.in_batch`).
        The views get their training-mode augmentation, drawn from ``generator``
        (re-seeded identically every epoch): crops then differ between views, as in
        training (with ``views="crops"`` the eval-mode views are one image twice),
        but are the same every epoch. The encoders run in the caller's mode.

        Returns ``{"loss": total, "contrast_i_j": ...}``, the keys of :meth:`forward`.
        """
        if self.contrast is None:
            raise RuntimeError("The contrast was dropped after fit: nothing to validate")
        was_training = self.views.training
        self.views.train()
        try:
            made = self.make_views(x, generator)
        finally:
            self.views.train(was_training)
        embeddings = [
            self.embedding(unpack(encoder(view)))
            for encoder, view in zip(self.encoders, made, strict=True)
        ]
        return self._result(*self.contrast.in_batch(embeddings))

    def drop_contrast(self) -> None:
        """Remove the memory bank, NCE constants and key encoders (training state only)."""
        self.use_contrast(None)

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
        training = self.contrast, self.key_encoders
        self.contrast = self.key_encoders = None
        try:
            return copy.deepcopy(self)
        finally:
            self.contrast, self.key_encoders = training

    def compile_targets(self) -> list[nn.Module]:
        """The submodules ``compile=True`` compiles: the encoders.

        The contrast reads its terms back as Python floats and draws negatives
        from a generator; compiled, it would break the graph and, specialising
        on the floats, recompile every batch.
        """
        return list(self.encoders)


def _view_encoder(
    encoder: str | nn.Module | Sequence[nn.Module],
    v: int,
    shape: tuple[int, ...],
    n_views: int,
    embedding_dim: int,
) -> nn.Module:
    """The encoder of view ``v`` (shape ``shape``) for the estimator's ``encoder`` value."""
    if isinstance(encoder, list | tuple):
        if len(encoder) != n_views:
            raise ValueError(
                f"encoder is a list of {len(encoder)} modules, expected one per view ({n_views})"
            )
        if not isinstance(encoder[v], nn.Module):
            raise TypeError(f"encoder[{v}] must be a torch.nn.Module")
        return copy.deepcopy(encoder[v])
    if isinstance(encoder, nn.Module):
        return copy.deepcopy(encoder)
    if encoder in ("conv", "dcgan32") and len(shape) != 3:
        raise ValueError(f"encoder={encoder!r} needs image views, but view {v} has shape {shape}")
    return build_encoder(encoder, shape, embedding_dim, width=VIEW_ENCODER_WIDTH)


@torch.no_grad()
def _output_dim(encoder: nn.Module, shape: tuple[int, ...]) -> int:
    """Size of ``encoder``'s y for inputs of ``shape``, measured in eval mode.

    Eval mode, so that the dry run leaves batch-norm statistics untouched.
    """
    was_training = encoder.training
    encoder.eval()
    out = unpack(encoder(torch.zeros(2, *shape)))
    encoder.train(was_training)
    return out.y.shape[1]
