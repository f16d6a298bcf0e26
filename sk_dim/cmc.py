"""Contrastive Multiview Coding as a scikit-learn transformer."""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import BaseSelfSupervised, Preset
from .losses import GRAPHS, LOSS_KINDS, MemoryBank, MultiviewContrast
from .modules.encoders import ENCODERS, build_encoder, unpack
from .modules.multiview import MultiviewCoding
from .views import NAMED_VIEWS, check_range, check_view, make_view_maker, resolve_views
from .views.makers import COLOR_JITTER, CROP_SCALE

LAYERS = MultiviewCoding.LAYERS
# The paper splits one network's width between the views (two half AlexNets).
VIEW_ENCODER_WIDTH = 0.5


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
    color_jitter : float, default=0.0
        Colour jitter of RGB images for the colour views (``"lab"``,
        ``"ycbcr"``) during training, before the colour split: for 80% of the
        images (drawn per image), brightness, contrast and saturation are each
        scaled by a factor drawn from ``U(1 - color_jitter, 1 + color_jitter)``,
        in that order, and the pixels clipped to ``[0, 1]``; no hue jitter, and
        no image is turned to grayscale (its ab view would be a constant, and
        its pair of views would carry nothing to match). 0, the default, is
        CMC's L/ab recipe, which has no colour jitter; jitter did not
        measurably help (``benchmarks/cmc_color_jitter.py``). Needs
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
    image_shape : "auto", tuple (C, H, W) or None, default="auto"
        Shape of one image when X is 2-D. ``"auto"`` takes the shape of 3-D
        or 4-D arrays, and reads 2-D X as square grayscale or RGB images at
        least 8 pixels wide only when its columns have the structure of such
        images (the columns ``W`` apart, pixels one above the other, are the
        most alike after the neighbours); columns without that structure are
        feature vectors (a table: the MLP encoder), and columns that look like
        images of another width (e.g. 24x32 RGB, as many columns as 48x48
        grayscale) are refused with a ValueError asking for ``image_shape``.
        ``image_shape_`` and ``input_shape_`` say what was decided. None
        treats X as feature vectors.
    layer : {"local", "blocks", "conv", "fc", "embedding"}, default="local"
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
        better there, hence the default.
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
    max_epochs : int, default=30
        Number of passes over the training data.
    batch_size : int, default=128
        Mini-batch size (capped at the number of samples).
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=0.0
        L2 penalty added to Adam's gradients: a regulariser for long training
        on few images (the ``"few-images"`` preset uses 5e-4).
    device : str, default="auto"
        Torch device; ``"auto"`` uses CUDA when available.
    on_divergence : {"raise", "keep_last"}, default="raise"
        When a loss term or a weight becomes NaN, infinite or larger than
        1e5, ``"raise"`` stops with a :class:`~sk_dim.nets.TrainingDiverged`
        error (a ``FloatingPointError``) naming the epoch and the term, and
        leaves the transformer as it was before the call; ``"keep_last"``
        warns and keeps the weights from the end of the last finite epoch (it
        raises too when the first epoch diverges).
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Arithmetic of training and ``transform`` (``torch.autocast``; the
        weights stay float32 and the features are returned as float32).
        ``"auto"`` is bfloat16 where the hardware computes it (a CUDA device
        that supports it, a CPU with AVX512-BF16 or AMX instructions: 1.5x
        faster training there) and float32 elsewhere, decided again on the
        device a fitted transformer is loaded on; set ``"float32"`` for the
        same arithmetic on every machine. ``"bfloat16"`` also works
        on the CPU; ``"float16"`` needs CUDA (a gradient scaler guards it
        against underflow). MI bounds and contrastive losses are computed
        in float32 either way. The precision used at fit is ``precision_``.
    channels_last : "auto" or bool, default="auto"
        Store the network's convolution weights and image batches in
        ``torch.channels_last`` (NHWC) layout, which tensor-core kernels
        prefer. ``"auto"`` is True on CUDA and False on the CPU. Results
        match the default layout up to rounding.
    compile : bool, default=False
        Compile the network with ``torch.compile`` for training. The first
        batches are slow (compilation takes seconds to minutes), so it pays
        off only for long fits; needs a C++ compiler on the CPU. Pickling
        and :meth:`save` are unaffected (the compiled code is not stored).
    n_threads : int or None, default=None
        CPU threads torch uses during ``fit`` and ``transform`` (restored
        afterwards). None keeps torch's setting, which follows
        ``OMP_NUM_THREADS``: joblib's process workers (scikit-learn's
        ``n_jobs`` with the default loky backend) and dask's workers already
        set it to their share of the cores. At most 1024, and at most
        ``os.cpu_count()`` threads are used. torch's thread count is one
        setting per process: fits and transforms running at once in threads
        share the count set last, and the count from before the first of them
        is restored when the last one ends.
    accelerate : None, True or dict, default=None
        Train through Hugging Face Accelerate (the ``accelerate`` extra:
        ``pip install -e '.[accelerate]'`` from a source checkout), e.g. on
        several GPUs or machines under
        ``accelerate launch``: True, or a dict of keyword arguments for
        ``accelerate.Accelerator`` (``{"mixed_precision": "bf16"}``,
        ``{"cpu": True}``), creates an accelerator for the fit; the
        accelerator chooses the device (leave ``device="auto"``) and the
        mixed precision (leave ``precision`` at ``"auto"`` or
        ``"float32"``). Each process trains on its own share of every epoch
        with ``batch_size`` samples a batch, and gradients are averaged
        across processes. The fitted transformer holds no accelerator: it
        pickles, saves and transforms without accelerate. None trains with
        plain skorch on ``device``. See :doc:`/scaling`.
    warm_start : bool, default=False
        When True and the transformer is fitted, ``fit`` continues training
        the fitted network, with its optimizer state, for ``max_epochs`` more
        epochs instead of starting anew (as in scikit-learn's MLPs); the data
        must have the same number of features. ``n_iter_`` and ``history_``
        keep counting. Pickles then keep the optimizer state, so that an
        unpickled transformer continues exactly; otherwise they hold only
        what ``transform`` needs, and training continued from them (or from
        :func:`sk_dim.load`) starts new optimizer state, with a warning.
        Training parameters changed with ``set_params`` (``lr``,
        ``weight_decay``, ``batch_size``, ``callbacks``, ``early_stopping``,
        ``on_divergence``, ``precision``, ...) take effect at the next ``fit``
        or ``partial_fit``; the parameters the network is built from (its
        ``_MODULE_PARAMS``: ``embedding_dim``, ``encoder``, ``image_shape`` and
        the objective's) cannot change once fitted: ``transform``, ``save``
        and continued training then raise a ValueError naming them.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (at random),
        record the self-supervised loss on it every epoch (``valid_loss``
        and ``valid_<term>`` columns of ``history_``), stop when it has not
        improved by more than ``tol`` for ``n_iter_no_change`` epochs, and
        keep the weights of the best epoch.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without an improvement of the validation loss larger than
        ``tol`` before early stopping ends training.
    tol : float, default=1e-4
        Smallest decrease of the validation loss that counts as an
        improvement for early stopping.
    callbacks : list of skorch callbacks or None, default=None
        `skorch callbacks <https://skorch.readthedocs.io/en/stable/callbacks.html>`_
        run during training after sk_dim's own, e.g. ``LRScheduler``,
        ``Checkpoint(monitor=None, dirname=...)`` (with ``LoadInitState`` to
        resume an interrupted fit: the resumed fit trains the epochs missing
        to ``max_epochs`` and ends with the weights of an uninterrupted one)
        or ``EarlyStopping``. A list of callbacks or ``(name, callback)``
        pairs; each fit uses a copy, so the parameter is never modified.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the memory bank, negatives, augmentations
        and shuffling. The same seed gives the same features on the same
        machine with the same ``precision_`` (``"auto"`` is bfloat16 on some
        CPUs and float32 on others; the two differ by about 10%); other CPUs
        pick other float32 kernels, whose last-bit differences training
        amplifies.
    verbose : int, default=0
        0 is silent, 1 prints a table per epoch, 2 adds a progress bar.
        Ctrl-C during fit stops training at the end of the current batch
        and leaves a usable fitted transformer, with a warning.

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
    n_iter_ : int
        Number of epochs trained, over all ``fit`` (with ``warm_start``) and
        ``partial_fit`` calls.
    loss_curve_ : list of float
        ``train_loss`` of every epoch trained (``history_["train_loss"]``).
    best_loss_ : float or None
        With ``early_stopping``, the lowest held-out loss of the last fit:
        the fit ends with the weights of that epoch, the first argmin of its
        ``valid_loss`` (even when it improved on the previous lowest by less
        than ``tol``), also after a Ctrl-C. None when the last epoch was
        trained without ``early_stopping``. Read from ``history_``.
    validation_scores_ : list of float or None
        ``valid_loss`` of every epoch (``history_["valid_loss"]``): the
        held-out losses, lower is better (NaN for an epoch trained without
        ``early_stopping``); None when no epoch was.
    versions_ : dict
        Versions of sk_dim, torch and scikit-learn at fit; :func:`sk_dim.load`
        warns when they differ from the running ones.
    views_ : str or list
        The views used: ``"lab"``, ``"ycbcr"`` or ``"crops"``, a list of lists
        of column positions, or the list of callables.
    n_views_ : int
        Number of views.
    n_negatives_ : int
        Number of negatives used (``n_negatives`` capped at ``n_samples - 1``).
    precision_ : {"float32", "bfloat16", "float16"}
        The precision the last training used (``precision`` with ``"auto"``
        resolved). ``transform`` follows ``precision`` as it is now, resolved
        for the network's device.
    channels_last_ : bool
        Whether training used the channels_last layout.
    input_shape_ : tuple of int
        Shape of one sample as seen by the view maker.
    image_shape_ : tuple of int or None
        ``(C, H, W)`` when X holds images, else None.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    DeepInfoMaxTransformer : Deep InfoMax, a single-view objective.
    sklearn.neural_network.BernoulliRBM : A shallow unsupervised feature learner.

    Notes
    -----
    Preset ``"few-images"`` (:meth:`from_preset`), for a few thousand images:
    ``max_epochs=150, layer="blocks", weight_decay=5e-4``. Small data sets
    need more passes for the same number of optimizer steps, weight decay keeps
    those passes from overfitting, and a linear classifier reads every block
    better than the local map alone. :meth:`presets` lists it with its cost;
    its figures against the k-means baseline and the defaults are on the
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
    >>> cmc.fit_transform(rgb).shape  # L and ab: 1024 local features each
    (100, 2048)
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
        crop_scale=CROP_SCALE,
        color_jitter=COLOR_JITTER,
        encoder="auto",
        image_shape="auto",
        layer="local",
        view=None,
        pool_size=4,
        keep_memory_bank=False,
        max_epochs=30,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.0,
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
        self.embedding_dim = embedding_dim
        self.views = views
        self.loss = loss
        self.graph = graph
        self.n_negatives = n_negatives
        self.temperature = temperature
        self.momentum = momentum
        self.augment = augment
        self.crop_scale = crop_scale
        self.color_jitter = color_jitter
        self.encoder = encoder
        self.image_shape = image_shape
        self.layer = layer
        self.view = view
        self.pool_size = pool_size
        self.keep_memory_bank = keep_memory_bank
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.on_divergence = on_divergence
        self.precision = precision
        self.channels_last = channels_last
        self.compile = compile
        self.n_threads = n_threads
        self.accelerate = accelerate
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose

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
        contrast = module.contrast
        if partial:
            if contrast is None or not contrast.queue:
                self.n_negatives_ = self.n_negatives
                module.use_contrast(self._contrast(self.n_negatives, module, queue=True))
        elif contrast is None or contrast.queue or contrast.bank.n_samples != len(X):
            self.n_negatives_ = min(self.n_negatives, len(X) - 1)
            module.use_contrast(self._contrast(len(X), module))

    def _check_fitted_attributes(self):
        super()._check_fitted_attributes()
        value = self.n_negatives_
        if not (isinstance(value, int) and 1 <= value <= self.n_negatives):
            raise ValueError(
                f"invalid n_negatives_={value!r:.80}: expected an int in "
                f"[1, n_negatives={self.n_negatives}]"
            )
        value = self.n_views_
        if not (isinstance(value, int) and 2 <= value <= max(2, self.n_features_in_)):
            raise ValueError(f"invalid n_views_={value!r:.80}")

    def _finish_training(self, module, *, partial):
        # A bank grows with the data; the queue and key encoders of partial_fit
        # have a fixed size and are what the next call continues from.
        if not (partial or self.keep_memory_bank):
            module.drop_contrast()

    def _contrast(self, n_rows, module, *, queue=False):
        if module.contrast is not None:
            dim = module.contrast.bank.dim
        else:  # dropped after the last fit: measure the embedding
            was_training = module.training
            module.eval()
            with torch.no_grad():
                dim = module.encode(torch.zeros(2, *self.input_shape_))[0].y.shape[1]
            module.train(was_training)
        return MultiviewContrast(
            MemoryBank(n_rows, dim, self.n_views_, momentum=0.0 if queue else self.momentum),
            self.n_negatives_,
            temperature=self.temperature,
            loss=self.loss,
            graph=self.graph,
            queue=queue,
        )

    def _check_params(self, input_shape, n_samples):
        check_range("crop_scale", self.crop_scale, 0.0, 1.0)
        self.views_ = resolve_views(
            self.views, input_shape, getattr(self, "feature_names_in_", None)
        )
        self.n_views_ = 2 if isinstance(self.views_, str) else len(self.views_)
        if self.view is not None and self.view >= self.n_views_:
            raise ValueError(f"view={self.view} is out of range: there are {self.n_views_} views")
        # Capped quietly (documented): small data sets and grid-search folds
        # would otherwise warn on every fit.
        self.n_negatives_ = min(self.n_negatives, n_samples - 1)

    def _build_module(self, X, input_shape):
        maker = self._view_maker(X, input_shape)
        maker.eval()
        probe = torch.as_tensor(np.array(X[:2])).view(-1, *input_shape)
        with torch.no_grad():
            shapes = [tuple(check_view(v, i, 2).shape[1:]) for i, v in enumerate(maker(probe))]
        if len(shapes) != self.n_views_:
            raise ValueError(f"the views gave {len(shapes)} views, expected {self.n_views_}")
        maker.train()
        encoders = [self._build_encoder(v, shape) for v, shape in enumerate(shapes)]
        dims = {_output_dim(enc, shape) for enc, shape in zip(encoders, shapes, strict=True)}
        if len(dims) != 1:
            raise ValueError(f"the view encoders return y of different sizes {sorted(dims)}")
        # The memory bank is sized by the training data: _prepare_training adds it.
        return MultiviewCoding(maker, encoders, contrast=None)

    def _view_maker(self, X, input_shape) -> nn.Module:
        return make_view_maker(
            self.views_,
            X,
            input_shape,
            augment=self.augment,
            crop_scale=self.crop_scale,
            color_jitter=self.color_jitter,
            scaling=lambda per_feature: self._scaling(X, per_feature=per_feature),
        )

    def _build_encoder(self, v, shape):
        encoder = self.encoder
        if isinstance(encoder, list | tuple):
            if len(encoder) != self.n_views_:
                raise ValueError(
                    f"encoder is a list of {len(encoder)} modules, expected one per view "
                    f"({self.n_views_})"
                )
            if not isinstance(encoder[v], nn.Module):
                raise TypeError(f"encoder[{v}] must be a torch.nn.Module")
            return copy.deepcopy(encoder[v])
        if isinstance(encoder, nn.Module):
            return copy.deepcopy(encoder)
        if encoder in ("conv", "dcgan32") and len(shape) != 3:
            raise ValueError(
                f"encoder={encoder!r} needs image views, but view {v} has shape {shape}"
            )
        return build_encoder(encoder, shape, self.embedding_dim, width=VIEW_ENCODER_WIDTH)


def _output_dim(encoder: nn.Module, shape) -> int:
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = unpack(encoder(torch.zeros(2, *shape)))
    encoder.train(was_training)
    return out.y.shape[1]
