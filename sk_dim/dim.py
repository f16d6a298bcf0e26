"""Deep InfoMax as a scikit-learn transformer."""

from __future__ import annotations

import copy
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import BaseSelfSupervised, Preset
from .losses import BOUNDS, PRIORS
from .modules.critics import LOCAL_CRITICS
from .modules.encoders import (
    ENCODERS,
    Standardize,
    build_encoder,
)
from .modules.infomax import DeepInfoMax
from .views import ImageAugment

LAYERS = DeepInfoMax.LAYERS


class DeepInfoMaxTransformer(BaseSelfSupervised):
    """Deep InfoMax: learn features by maximizing mutual information.

    An encoder maps each input to a local feature map M and a global vector
    y. Critics score (y, M) pairs of the same sample against pairs of
    different samples (every other sample of a batch is a negative), and
    the encoder maximizes::

        alpha * global MI(X; y) + beta * local MI(M; y) - gamma * prior loss

    where the prior term is adversarial: a discriminator with its own
    optimizer learns to tell y from samples of a prior, and the encoder
    learns to fool it. The paper's DIM(G) is ``alpha=1, beta=0, gamma=1``
    and DIM(L) is ``alpha=0, beta=1, gamma=0.1``. A term whose weight is
    0 is not computed.

    Parameters
    ----------
    embedding_dim : int, default=64
        Size of the global representation y (named for what it is: PCA's
        ``n_components`` is the output width, which here ``layer`` sets;
        ``layer="y"`` returns ``embedding_dim`` features, the default
        ``"local"`` 2048).
    alpha : float, default=0.5
        Weight of the global MI term. Not an L2 penalty, as ``alpha`` is for
        scikit-learn's MLPs: that is ``weight_decay``.
    beta : float, default=1.0
        Weight of the local MI term, averaged over the locations of M.
    gamma : float, default=0.1
        Weight of the adversarial prior-matching term.
    mi_estimator : {"jsd", "dv", "infonce"}, default="infonce"
        MI estimator: InfoNCE (the strongest features for classification,
        as the paper finds, and in this project's benchmarks for the same
        fit time: see the Benchmarks page), Jensen-Shannon
        (softplus form; the most stable, the paper's default objective), or
        Donsker-Varadhan (an MI estimate in nats, with noisy gradients).
    local_critic : {"dot", "concat"}, default="dot"
        ``"dot"`` embeds M and y with small networks (1x1 convolutions for M)
        and scores pairs by dot products: cheap, and what the paper's best
        results used. ``"concat"`` concatenates y to every location of M and
        scores with 1x1 convolutions; slower and memory hungry, kept for
        fidelity to the paper.
    prior : {"uniform", "gaussian"}, default="uniform"
        Prior matched by y; the paper's is uniform on [0, 1]^embedding_dim,
        which the discriminator compares with ``sigmoid(y)``, as the reference
        implementation does (y itself is unbounded); the gaussian prior is
        compared with y. ``layer="y"`` returns y without the sigmoid.
    augment : bool, default=False
        Augmented-view DIM after AMDIM (Bachman, Hjelm & Buchwalter, 2019):
        during training, each image is drawn twice with independent random
        resized crops (area 0.3 to 1), flips, and for RGB images colour
        jitter (brightness, contrast, saturation; no hue) and grayscale; the
        MI terms pair the global vector y of one copy with the local map M of
        the other (both directions, averaged), so that the features must
        agree across augmentations, not just pixels. What is implemented is
        AMDIM's global-to-local term at one scale: not its local-to-local
        terms, its score clipping or its score penalty, and not its CIFAR-10
        augmentation (a reflected translation of up to 4 pixels, a flip
        shared by both copies, colour jitter with hue). Augmented pixels are
        not clipped to the valid range (the scale of raw inputs is not
        known). Each batch encodes twice as many images. Transform never
        augments. False is the paper's DIM. Needs images.
    encoder : {"auto", "conv", "dcgan32", "mlp"} or torch.nn.Module, default="auto"
        ``"auto"`` picks ``"conv"`` for images and ``"mlp"`` for feature
        vectors. ``"conv"`` halves the image with 4x4 stride-2 convolutions
        until the local map is at most 8x8 with 128 channels, then a
        256-channel convolution, a 1024-unit fully connected layer and y.
        ``"dcgan32"`` is the paper's 32x32 encoder (``"conv"`` is identical at
        32x32). A module must map a float batch ``(N, *input_shape)`` to
        ``(local_map (N, C, H, W), y (N, embedding_dim))``,
        ``(local_map, fc, y)`` or ``(local_map, conv, fc, y)``; inputs arrive
        standardised.
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
    layer : {"local", "blocks", "conv", "fc", "y"}, default="local"
        Features returned by ``transform``:

        - ``"local"``: the local feature map M (128 x 8 x 8 at 32x32)
          average-pooled to a ``pool_size`` x ``pool_size`` grid (128 * 16 =
          2048 features with the built-in image encoders at the default);
        - ``"blocks"``: every convolutional block's output (64, 128 and 256
          channels with ``"conv"``), each average-pooled to at most
          ``pool_size`` x ``pool_size`` and concatenated, lowest first:
          (64 + 128 + 256) * 16 = 7168 features at 32x32 and on 8x8 digits.
          A linear probe reads low-level and high-level features together
          (on colour images better than ``"local"``: see the Benchmarks
          page). An encoder module that returns no ``EncoderOutput.blocks``
          gives its local map and last convolutional layer;
        - ``"conv"``: the last convolutional layer, flattened, as in the
          paper (256 x 4 x 4 = 4096 at 32x32 and on 8x8 digits, 256 x 3 x 3
          at 28x28); only for encoders that return it (the built-in
          convolutional ones);
        - ``"fc"``: the fully connected layer (1024);
        - ``"y"``: the global vector (``embedding_dim``).

        The paper finds lower layers much better for linear classifiers
        (CIFAR-10 linear SVM on DIM(L): conv 63.3, fc 54.1, y 49.6), hence a
        lower layer as the default; ``"local"`` is as low and half as wide
        as ``"conv"`` at 32x32.
    pool_size : int, default=4
        Side of the grid the local map is pooled to for ``layer="local"``
        (and each block's map for ``layer="blocks"``).
    max_epochs : int, default=12
        Number of passes over the training data.
    batch_size : int, default=64
        Mini-batch size. Each sample is contrasted against the
        ``batch_size - 1`` others. Larger than the number of samples, it is
        capped at that number with a warning (as scikit-learn's MLPs do).
    lr : float, default=1e-3
        Adam learning rate (both the encoder's and the discriminator's).
    weight_decay : float, default=0.0
        L2 penalty added to Adam's gradients (both optimizers'): a regulariser for
        long training on few images (the ``"few-images"`` preset of
        :class:`CMCTransformer` uses 5e-4).
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
        Seeds weight initialisation, shuffling and prior samples. The same
        seed gives the same features on the same machine with the same
        ``precision_`` (``"auto"`` is bfloat16 on some CPUs and float32 on
        others; the two differ by about 10%); other CPUs pick other float32
        kernels, whose last-bit differences training amplifies.
    verbose : int, default=0
        0 is silent, 1 prints a table per epoch, 2 adds a progress bar.
        Ctrl-C during fit stops training at the end of the current batch
        and leaves a usable fitted transformer, with a warning.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained network (its ``module_`` holds encoder and critics).
    history_ : pandas.DataFrame
        One row per completed epoch, each column the epoch's mean over
        batches: ``train_loss``, the encoder's objective ``-(alpha *
        global_mi + beta * local_mi) + gamma * prior``; ``global_mi`` and
        ``local_mi``, the MI estimates in nats (see :mod:`sk_dim.losses`; 0 for
        an uninformative critic): for ``"jsd"`` a lower bound on twice the
        Jensen-Shannon divergence between the joint and the product of the
        marginals (at most ``2 log 2`` = 1.386), for ``"dv"`` a lower bound on
        the mutual information, for ``"infonce"`` one capped at ``log
        batch_size`` (global) or ``log(1 + (batch_size - 1) * n_locations)``
        (local); ``prior``, the encoder's non-saturating loss against the
        discriminator (``log 2`` = 0.693 when the discriminator cannot tell
        y from the prior) and ``discriminator``, the discriminator's
        cross-entropy (``2 log 2`` = 1.386 then) and ``gradient_penalty``,
        its input-gradient penalty (added to its loss with weight 1, as in
        the reference implementation; near 0 for a smooth discriminator);
        ``train_batch_count``, the optimizer steps (a last incomplete batch is
        skipped when there is a full one, as in the reference
        implementation); ``dur``, seconds. The columns of terms whose weight
        is 0 are absent. With ``early_stopping``, ``valid_global_mi`` and
        ``valid_local_mi`` are the MI terms on the held-out part,
        ``valid_loss`` the objective early stopping minimises on it,
        ``-(alpha * valid_global_mi + beta * valid_local_mi)`` (no prior
        term: its discriminator changes every epoch; with ``augment``, the
        cross-view objective, on augmentations drawn the same every epoch),
        and ``valid_loss_best`` is True where ``valid_loss`` is the lowest of
        the fit so far.
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
        Versions of ``sk_dim``, ``torch`` and ``scikit-learn`` at fit;
        :func:`sk_dim.load` warns when they differ from the running ones.
    precision_ : {"float32", "bfloat16", "float16"}
        The precision the last training used (``precision`` with ``"auto"``
        resolved). ``transform`` follows ``precision`` as it is now, resolved
        for the network's device.
    channels_last_ : bool
        Whether training used the channels_last layout.
    input_shape_ : tuple of int
        Shape of one sample as seen by the encoder.
    image_shape_ : tuple of int or None
        ``(C, H, W)`` when X holds images, else None.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when X has string column names.

    See Also
    --------
    CMCTransformer : Contrastive Multiview Coding.
    sklearn.neural_network.BernoulliRBM : A shallow unsupervised feature learner.

    Notes
    -----
    Preset ``"few-images"`` (:meth:`from_preset`), for a few thousand images:
    ``augment=True, max_epochs=35, layer="blocks"``: AMDIM's augmented
    views keep DIM learning where plain DIM stalls after about 20 epochs,
    and a linear classifier reads every block better than the local map
    alone. :meth:`presets` lists it with its cost; its figures against the
    k-means baseline and the defaults are on the Benchmarks page
    (``benchmarks/cifar10.py --regime small --preset few-images``).

    References
    ----------
    .. [1] R. D. Hjelm, A. Fedorov, S. Lavoie-Marchildon, K. Grewal,
       P. Bachman, A. Trischler, Y. Bengio, "Learning deep representations by
       mutual information estimation and maximization", ICLR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_dim import DeepInfoMaxTransformer
    >>> X, y = load_digits(return_X_y=True)
    >>> dim = DeepInfoMaxTransformer(max_epochs=1, random_state=0)
    >>> dim.fit_transform(X[:200]).shape
    (200, 2048)
    """

    _parameter_constraints: dict = {
        **BaseSelfSupervised._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "mi_estimator": [StrOptions(set(BOUNDS))],
        "local_critic": [StrOptions(set(LOCAL_CRITICS))],
        "prior": [StrOptions(set(PRIORS))],
        "augment": ["boolean"],
        "encoder": [StrOptions(set(ENCODERS)), nn.Module],
        "layer": [StrOptions(set(LAYERS))],
        "pool_size": [Interval(Integral, 1, None, closed="left")],
    }

    _PRESETS = {
        "few-images": Preset(
            params={"augment": True, "max_epochs": 35, "layer": "blocks"},
            use="a few thousand images (e.g. 5,000 CIFAR-10 images)",
            cost="about 400 s on 5,000 32x32 images, 2 CPU cores (bfloat16); ~3.5 min on 1,000",
        )
    }

    _MODULE_PARAMS = (
        *BaseSelfSupervised._MODULE_PARAMS,
        "alpha",
        "beta",
        "gamma",
        "mi_estimator",
        "local_critic",
        "prior",
        "augment",
    )
    _LAYERS = LAYERS

    def __init__(
        self,
        embedding_dim=64,
        *,
        alpha=0.5,
        beta=1.0,
        gamma=0.1,
        mi_estimator="infonce",
        local_critic="dot",
        prior="uniform",
        augment=False,
        encoder="auto",
        image_shape="auto",
        layer="local",
        pool_size=4,
        max_epochs=12,
        batch_size=64,
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
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.mi_estimator = mi_estimator
        self.local_critic = local_critic
        self.prior = prior
        self.augment = augment
        self.encoder = encoder
        self.image_shape = image_shape
        self.layer = layer
        self.pool_size = pool_size
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

    def _check_params(self, input_shape, n_samples):
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha and beta are both 0: there is no MI term to maximize")
        if self.augment and len(input_shape) != 3:
            raise ValueError(
                "augment=True needs images: pass image_shape=(C, H, W) or image arrays"
            )

    def _build_module(self, X, input_shape):
        # A user's module is copied so that fitting never mutates a parameter.
        encoder = copy.deepcopy(self.encoder) if isinstance(self.encoder, nn.Module) else None
        encoder = encoder or build_encoder(self.encoder, input_shape, self.embedding_dim)
        return DeepInfoMax(
            nn.Sequential(Standardize(*self._scaling(X)), encoder),
            input_shape,
            alpha=self.alpha,
            beta=self.beta,
            gamma=self.gamma,
            mi_estimator=self.mi_estimator,
            local_critic=self.local_critic,
            prior=self.prior,
            augment=ImageAugment() if self.augment else None,
        )
