"""Contrastive Multiview Coding as a scikit-learn transformer."""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import BaseSelfSupervised
from ._docs import fill_shared_entries
from ._presets import Preset
from .losses import GRAPHS, LOSS_KINDS
from .modules.encoders import ENCODERS
from .modules.multiview import MultiviewCoding
from .views import (
    CMC_CROP_SCALE,
    COLOR_JITTER,
    NAMED_VIEWS,
    build_view_maker,
    check_range,
    resolve_views,
)

LAYERS = MultiviewCoding.LAYERS


@fill_shared_entries
class CMCTransformer(BaseSelfSupervised):
    """Contrastive Multiview Coding: learn features shared by several views.

    Each sample is split into V views (e.g. the luminance L and the colour
    channels ab of an image); each view has its own encoder, whose output y is
    L2-normalised into an embedding. The encoders are trained so that the
    embeddings of two views of the same sample score higher than those of
    different samples. As in the paper, every view keeps a memory bank with
    one slowly updated (``momentum``) embedding per training sample: view i's
    embedding is scored (dot product / ``temperature``) against view j's bank
    entry of the same sample and ``n_negatives`` random entries, with the
    NCE or the softmax (InfoNCE) loss, in both directions of every pair of
    views in ``graph``.

    Parameters
    ----------
    embedding_dim : int, default=128
        Size of each view's embedding (the L2-normalised y; named for what it
        is: PCA's ``n_components`` is the output width, which here ``layer``
        sets; ``layer="embedding"`` returns ``embedding_dim`` per view, the
        default ``"local"`` 1024 per image view).
    views : {"auto", "lab", "ycbcr", "crops", "halves"} or list, default="auto"
        How samples are split into views.

        - ``"lab"``: RGB images to ``[L (1 channel), ab (2 channels)]`` of
          CIELAB, the paper's main setting; ``"ycbcr"``: ``[Y, CbCr]``. Pixels
          may be 0..255 or 0..1 (the scale is learned at fit).
        - ``"crops"``: two copies of the (standardised) image, each with its
          own random crop and flip during training and its own encoder.
        - ``"halves"``: the columns of the (flattened, standardised) input
          split into two contiguous halves; with a single feature both views
          are that feature.
        - a list of column lists, e.g. ``[[0, 1, 2], [3, 4]]``, by position or,
          when X is a DataFrame, by column name (multi-view tables). A view may
          also be a single column.
        - a list of callables, each mapping a float tensor batch
          ``(N, *input_shape)`` (raw values: uint8 pixels arrive as 0..255) to a
          view tensor ``(N, F)`` or ``(N, C, H, W)`` on the same device. Each
          view is standardised with statistics measured at fit. Use
          module-level functions if the fitted transformer is to be pickled.

        ``"auto"`` is ``"lab"`` for RGB images, ``"crops"`` for other images
        and ``"halves"`` for feature vectors.
    loss : {"nce", "softmax"}, default="nce"
        The paper's noise-contrastive estimation loss (with a normalising
        constant fixed from the first batch) or the cross-entropy over the
        positive and the ``n_negatives`` negatives.
    graph : {"core", "full"}, default="core"
        Pairs of views contrasted when there are more than two: ``"core"``
        pairs view 0 with each other view, ``"full"`` every pair.
    n_negatives : int, default=4096
        Negatives drawn from the memory bank per embedding. Capped at
        ``n_samples - 1`` without a warning (small data sets, grid-search
        folds); ``n_negatives_`` is the number used. In :meth:`partial_fit`,
        the length of each view's queue, all of whose entries are negatives.
    temperature : float, default=0.07
        Scores are dot products of unit vectors divided by this.
    momentum : float, default=0.5
        Memory-bank update: ``new = momentum * old + (1 - momentum) * embedding``,
        re-normalised. (:meth:`partial_fit` has no bank: its key encoders
        follow the encoders with MoCo's momentum, see there.)
    augment : bool, default=True
        Random resized crops (``crop_scale``) and horizontal flips of image
        views during training (``"lab"``, ``"ycbcr"``, ``"crops"``; one shared
        crop for colour views), on the model's device. Transform never
        augments. Column and callable views are not augmented.
    crop_scale : tuple of two floats, default=(0.6, 1.0)
        Range of the crops' area as a fraction of the image, ``0 < low <= high
        <= 1``. The paper uses (0.2, 1.0) on 224x224 ImageNet crops; on 32x32
        CIFAR-10 images (0.6, 1.0) learned better features than (0.3, 1.0)
        (see the Benchmarks page).
    color_jitter : float, default=0.4
        Colour jitter of RGB images for the colour views (``"lab"``,
        ``"ycbcr"``) during training, before the colour split: for 80% of the
        images (drawn per image), brightness, contrast and saturation are each
        scaled by a factor drawn from ``U(1 - color_jitter, 1 + color_jitter)``,
        in that order, and the pixels clipped to ``[0, 1]``; no hue jitter, and
        no image is turned to grayscale (its ab view would be a constant, and
        its pair of views would carry nothing to match). CMC's L/ab recipe has
        no colour jitter (0); 0.4 scored 1.2 to 2.1 points higher on CIFAR-10
        at each of three seeds (2,000 images, 30 epochs,
        ``benchmarks/cmc_color_jitter.py``) for no measurable extra time. Needs
        ``augment=True``; other views are not colour-jittered.
    encoder : {"auto", "conv", "dcgan32", "mlp"}, torch.nn.Module or list, default="auto"
        Encoder of each view: ``"auto"`` is ``"conv"`` for image views
        ``(N, C, H, W)`` and ``"mlp"`` for vector views ``(N, F)`` (see
        :class:`DeepInfoMaxTransformer` for the architectures). The
        convolutional encoders of CMC have half the channels and units of
        DIM's (a 64-channel local map, 512 hidden units), as the paper gives
        each view half of AlexNet: two views cost about half of one DIM
        encoder. A module is
        deep-copied once per view, so it must accept every view's shape; a
        list gives one module per view. Modules follow the encoder contract:
        ``(local_map (N, C, H, W), y (N, D))`` or ``(local_map, fc, y)``.
    {shared: image_shape}
    layer : {"local", "blocks", "conv", "fc", "embedding"}, default="blocks"
        Features returned by ``transform``, concatenated over the views:

        - ``"local"``: each view's local feature map average-pooled to a
          ``pool_size`` x ``pool_size`` grid (64 * 16 = 1024 features per
          image view at the default; 512 per vector view, the MLP's first
          hidden layer);
        - ``"blocks"``: each view's convolutional blocks (32, 64 and 128
          channels with ``"conv"``), each average-pooled to at most
          ``pool_size`` x ``pool_size`` and concatenated, lowest first
          ((32 + 64 + 128) * 16 = 3584 features per image view; a vector
          view's MLP gives its first hidden layer). A linear probe reads
          low-level and high-level features together (on colour images
          better than ``"local"``: see the Benchmarks page);
        - ``"conv"``: each view's last convolutional layer, flattened (128 x
          4 x 4 = 2048 per image view at 32x32); only for encoders that
          return it (the built-in convolutional ones, not the MLP);
        - ``"fc"``: the fully connected layer (512 per image view and per
          vector view);
        - ``"embedding"``: the L2-normalised embedding (``embedding_dim`` per
          view).

        The paper probes intermediate layers: a linear classifier does
        better there. ``"blocks"``, the default, read best on CIFAR-10 at
        5,000 and 25,000 images (+2.7 points over ``"local"`` at both; three
        seeds at 5,000) and on MNIST, and ties ``"local"`` on digits (see the
        Benchmarks page); ``"local"`` is the compact choice (2048 features
        for RGB images against 7168).
    view : int or None, default=None
        Return the features of this view only (0 is L for ``"lab"``), or of all
        views (None). The number of features is then the per-view width above
        times the number of views used (e.g. 2048 for ``"lab"`` with
        ``layer="local"``).
    pool_size : int, default=4
        Side of the grid the local map is pooled to for ``layer="local"``
        (and each block's map for ``layer="blocks"``). 4, DIM's default too,
        gives 2048 features for RGB images with both.
    keep_memory_bank : bool, default=False
        The memory banks (``n_views x n_samples x embedding_dim`` floats) and NCE
        constants are training state and are dropped after fit, so that a
        persisted transformer stays small. Keep them to continue training
        through ``net_`` (e.g. ``net_.partial_fit``) or to inspect them
        (``net_.module_.contrast.bank.memory``).
    max_epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"`` trains a budget
        of 5,850 optimizer steps, ``ceil(5850 / (n_samples // batch_size))``
        epochs and at most 150: 30 epochs on 25,000 images, 150 on 5,000 and
        on fewer (on digits' 1,797 images, 5 times the old 30 epochs' time,
        for 0.9939 against 0.9911). Small data sets need more passes for the
        same number of steps; both configurations were measured on CIFAR-10
        (the Benchmarks page). ``n_samples`` is
        the training part (without the ``validation_fraction`` held out by
        ``early_stopping``); a warm ``fit`` resolves it on its own data;
        ``n_iter_`` says how many epochs were trained.
    batch_size : int, default=128
        Mini-batch size (capped at the number of samples).
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=5e-4
        L2 penalty added to Adam's gradients (the instance-discrimination
        papers' value): a regulariser for the long training of
        ``max_epochs="auto"`` on few images (+1.2 points on 5,000 CIFAR-10
        images, one seed; see the Benchmarks page).
    {shared: device, on_divergence, precision, channels_last, compile, n_threads, accelerate}
    {shared: warm_start, early_stopping, validation_fraction, n_iter_no_change, tol, callbacks}
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the memory bank, negatives, augmentations
        and shuffling. The same seed gives the same features on the same
        machine with the same ``precision_`` (``"auto"`` is bfloat16 on some
        CPUs and float32 on others; the two differ by about 10%); other CPUs
        pick other float32 kernels, whose last-bit differences training
        amplifies.
    {shared: verbose}

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is a
        :class:`~sk_dim.modules.multiview.MultiviewCoding` (view maker, one
        encoder per view, and the contrast when ``keep_memory_bank=True``).
    history_ : pandas.DataFrame
        One row per epoch: ``train_loss`` (the sum of all terms), one
        ``contrast_i_j`` column per direction (view i's embeddings scored
        against view j's memory bank) and ``dur`` (seconds).
    {shared: n_iter_, loss_curve_, best_loss_, validation_scores_, versions_}
    views_ : str or list
        The views used: ``"lab"``, ``"ycbcr"`` or ``"crops"``, a list of lists
        of column positions, or the list of callables.
    n_views_ : int
        Number of views.
    n_negatives_ : int
        Number of negatives used (``n_negatives`` capped at ``n_samples - 1``).
    {shared: precision_, channels_last_}
    input_shape_ : tuple of int
        Shape of one sample as seen by the view maker.
    {shared: image_shape_, n_features_in_, feature_names_in_}

    See Also
    --------
    DeepInfoMaxTransformer : Deep InfoMax, a single-view objective.
    sklearn.neural_network.BernoulliRBM : A shallow unsupervised feature learner.

    Notes
    -----
    Preset ``"few-images"`` (:meth:`from_preset`): ``max_epochs=150,
    layer="blocks", weight_decay=5e-4``, which the defaults now equal on up
    to about 5,000 images; it keeps 150 epochs whatever the data size (the
    defaults train 30 on 25,000 images). :meth:`presets` lists it with its
    cost; its figures against the k-means baseline and SimCLR are on the
    Benchmarks page (``benchmarks/cifar10.py --regime small --preset
    few-images``).

    References
    ----------
    .. [1] Y. Tian, D. Krishnan, P. Isola, "Contrastive Multiview Coding",
       arXiv:1906.05849, 2019 (ECCV 2020).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_dim import CMCTransformer
    >>> rgb = np.random.default_rng(0).integers(0, 256, (100, 3 * 16 * 16), dtype=np.uint8)
    >>> cmc = CMCTransformer(image_shape=(3, 16, 16), max_epochs=1, random_state=0)
    >>> cmc.fit_transform(rgb).shape  # L and ab: 3584 block features each
    (100, 7168)
    >>> cmc.views_, list(cmc.history_.columns[:3])
    ('lab', ['train_loss', 'contrast_0_1', 'contrast_1_0'])
    """

    _parameter_constraints: dict = {
        **BaseSelfSupervised._parameter_constraints,
        "views": [StrOptions(set(NAMED_VIEWS)), list, tuple],
        "loss": [StrOptions(set(LOSS_KINDS))],
        "graph": [StrOptions(set(GRAPHS))],
        "n_negatives": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "augment": ["boolean"],
        "crop_scale": [tuple, list],
        "color_jitter": [Interval(Real, 0, 1, closed="left")],
        "encoder": [StrOptions(set(ENCODERS)), nn.Module, list, tuple],
        "layer": [StrOptions(set(LAYERS))],
        "view": [Interval(Integral, 0, None, closed="left"), None],
        "pool_size": [Interval(Integral, 1, None, closed="left")],
        "keep_memory_bank": ["boolean"],
    }

    _OUTPUT_PARAMS = ("layer", "pool_size", "view")

    _PRESETS = {
        "few-images": Preset(
            params={"max_epochs": 150, "layer": "blocks", "weight_decay": 5e-4},
            use="a few thousand images (e.g. 5,000 CIFAR-10 images)",
            cost="about 460 s on 5,000 32x32 images, 2 CPU cores (bfloat16); ~2 min on 1,000",
        )
    }

    _MODULE_PARAMS = (
        *BaseSelfSupervised._MODULE_PARAMS,
        "views",
        "loss",
        "graph",
        "n_negatives",
        "temperature",
        "momentum",
        "augment",
        "crop_scale",
        "color_jitter",
    )
    _LAYERS = LAYERS
    # max_epochs="auto": the optimizer steps of both measured configurations
    # (150 epochs of 39 batches on 5,000 images, 30 of 195 on 25,000), at most 150 epochs.
    _AUTO_EPOCHS = (5850, 150)

    def __init__(
        self,
        embedding_dim=128,
        *,
        views="auto",
        loss="nce",
        graph="core",
        n_negatives=4096,
        temperature=0.07,
        momentum=0.5,
        augment=True,
        crop_scale=CMC_CROP_SCALE,
        color_jitter=COLOR_JITTER,
        encoder="auto",
        image_shape="auto",
        layer="blocks",
        view=None,
        pool_size=4,
        keep_memory_bank=False,
        max_epochs="auto",
        batch_size=128,
        lr=1e-3,
        weight_decay=5e-4,
        device="auto",
        on_divergence="raise",
        precision="auto",
        channels_last="auto",
        compile=False,
        n_threads=None,
        accelerate=None,
        warm_start=False,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        callbacks=None,
        random_state=None,
        verbose=0,
    ):
        # scikit-learn's convention: every parameter stored as given, under its own name.
        params = locals()
        vars(self).update({name: params[name] for name in params if name != "self"})

    # -- fit ------------------------------------------------------------------
    def partial_fit(self, X, y=None):
        """Train for one pass over X, continuing from the current network.

        The memory bank of :meth:`fit` holds one entry per training sample,
        which data seen in chunks does not have. ``partial_fit`` therefore
        trains as MoCo (He et al., 2020) does, across views: each view has a
        key encoder, a moving average of its encoder (momentum 0.999, updated
        after every optimizer step), and a queue of its ``n_negatives`` most
        recent keys. A view's embedding is scored against the other view's key
        of the same sample (the positive) and every entry of that view's queue
        (the negatives); each batch's keys replace the oldest entries. Keys are
        computed in other batch-norm groups than their queries (MoCo's shuffled
        batch norm), so that a positive cannot be recognised by statistics of
        the batch it comes from. The queue and key encoders are kept between
        calls (pickles hold them too, :func:`sk_dim.save` does not); a later
        ``fit`` with ``warm_start=True`` goes back to a memory bank over its
        data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            A chunk of training data, at least 2 samples.
        y : None
            Ignored; present for Pipeline compatibility.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        return super().partial_fit(X, y)

    def _prepare_training(self, module, X, *, partial):
        # fit draws negatives from a memory bank with one entry per sample:
        # capped quietly (documented), as small data sets and grid-search folds
        # would otherwise warn on every fit. partial_fit's queue holds them all.
        self.n_negatives_ = self.n_negatives if partial else min(self.n_negatives, len(X) - 1)
        module.prepare_contrast(self.n_negatives_, n_rows=None if partial else len(X))

    def _finish_training(self, module, *, partial):
        # A bank grows with the data; the queue and key encoders of partial_fit
        # have a fixed size and are what the next call continues from.
        if not (partial or self.keep_memory_bank):
            module.drop_contrast()

    def _check_params(self, input_shape, n_samples):
        check_range("crop_scale", self.crop_scale, 0.0, 1.0)
        self.views_ = resolve_views(
            self.views, input_shape, getattr(self, "feature_names_in_", None)
        )
        self.n_views_ = 2 if isinstance(self.views_, str) else len(self.views_)
        if self.view is not None and self.view >= self.n_views_:
            raise ValueError(f"view={self.view} is out of range: there are {self.n_views_} views")

    def _build_module(self, X, input_shape):
        views = build_view_maker(
            self.views_,
            X,
            input_shape,
            augment=self.augment,
            crop_scale=self.crop_scale,
            color_jitter=self.color_jitter,
            scaling=lambda per_feature: self._scaling(X, per_feature=per_feature),
        )
        # The memory bank is sized by the training data: _prepare_training adds it.
        return MultiviewCoding(
            views,
            input_shape,
            self.encoder,
            embedding_dim=self.embedding_dim,
            loss=self.loss,
            graph=self.graph,
            temperature=self.temperature,
            momentum=self.momentum,
        )
