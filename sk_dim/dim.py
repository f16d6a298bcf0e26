"""Deep InfoMax as a scikit-learn transformer."""

from __future__ import annotations

import copy
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from ._base import BaseSelfSupervised
from ._docs import fill_shared_entries
from ._presets import Preset
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


@fill_shared_entries
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
    augment : bool or "auto", default="auto"
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
        augments. False is the paper's DIM. True needs images; ``"auto"`` is
        True for images and False for feature vectors (the shape the fit
        used is in ``input_shape_``). On 5,000 CIFAR-10 images, read at
        ``"blocks"``: 0.615 after 35 epochs, plain DIM 0.597 after 50 (see
        the Benchmarks page).
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
    {shared: image_shape}
    layer : {"local", "blocks", "conv", "fc", "y"}, default="blocks"
        Features returned by ``transform``:

        - ``"local"``: the local feature map M (128 x 8 x 8 at 32x32)
          average-pooled to a ``pool_size`` x ``pool_size`` grid (128 * 16 =
          2048 features with the built-in image encoders);
        - ``"blocks"``: every convolutional block's output (64, 128 and 256
          channels with ``"conv"``), each average-pooled to at most
          ``pool_size`` x ``pool_size`` and concatenated, lowest first:
          (64 + 128 + 256) * 16 = 7168 features at 32x32 and on 8x8 digits.
          A linear probe reads low-level and high-level features together
          (on CIFAR-10 and MNIST better than ``"local"``: see the Benchmarks
          page). An encoder module that returns no ``EncoderOutput.blocks``
          gives its local map and last convolutional layer;
        - ``"conv"``: the last convolutional layer, flattened, as in the
          paper (256 x 4 x 4 = 4096 at 32x32 and on 8x8 digits, 256 x 3 x 3
          at 28x28); only for encoders that return it (the built-in
          convolutional ones);
        - ``"fc"``: the fully connected layer (1024);
        - ``"y"``: the global vector (``embedding_dim``).

        The paper finds lower layers much better for linear classifiers
        (CIFAR-10 linear SVM on DIM(L): conv 63.3, fc 54.1, y 49.6), hence
        the lower layers, all of them, as the default.
    pool_size : int, default=4
        Side of the grid the local map is pooled to for ``layer="local"``
        (and each block's map for ``layer="blocks"``).
    max_epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"`` trains the
        measured ``"few-images"`` configuration, 35 epochs, on up to 5,000
        images (up to about 6,500 at the default batch size), and 3,500
        optimizer steps on more:
        ``min(35, ceil(3500 / (n_samples // batch_size)))`` epochs, 9 on
        25,000 images (a fit on 25,000 images takes about 1.3 times one on
        5,000; fewer images take less). ``n_samples`` is the training part
        (without the ``validation_fraction`` held out by ``early_stopping``);
        a warm ``fit`` resolves it on its own data; ``n_iter_`` says how many
        epochs were trained.
    batch_size : int, default=64
        Mini-batch size. Each sample is contrasted against the
        ``batch_size - 1`` others. Larger than the number of samples, it is
        capped at that number with a warning (as scikit-learn's MLPs do).
    lr : float, default=1e-3
        Adam learning rate (both the encoder's and the discriminator's).
    weight_decay : float, default=5e-4
        L2 penalty added to Adam's gradients (both optimizers'): a regulariser for
        the many passes of ``max_epochs="auto"`` over few images, as in
        :class:`CMCTransformer` (on 5,000 CIFAR-10 images 0.622 over three
        seeds, 0.615 over two without; see the Benchmarks page).
    {shared: device, on_divergence, precision, channels_last, compile, n_threads, accelerate}
    {shared: warm_start, early_stopping, validation_fraction, n_iter_no_change, tol, callbacks}
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and prior samples. The same
        seed gives the same features on the same machine with the same
        ``precision_`` (``"auto"`` is bfloat16 on some CPUs and float32 on
        others; the two differ by about 10%); other CPUs pick other float32
        kernels, whose last-bit differences training amplifies.
    {shared: verbose}

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
    {shared: n_iter_, loss_curve_, best_loss_, validation_scores_, versions_}
    {shared: precision_, channels_last_}
    input_shape_ : tuple of int
        Shape of one sample as seen by the encoder.
    {shared: image_shape_, n_features_in_, feature_names_in_}

    See Also
    --------
    CMCTransformer : Contrastive Multiview Coding.
    sklearn.neural_network.BernoulliRBM : A shallow unsupervised feature learner.

    Notes
    -----
    Preset ``"few-images"`` (:meth:`from_preset`), for a few thousand images:
    ``augment=True, max_epochs=35, layer="blocks", weight_decay=5e-4``:
    AMDIM's augmented views keep DIM learning where plain DIM stalls after
    about 20 epochs, and a linear classifier reads every block better than
    the local map alone. The defaults equal it on 5,000 images or fewer; it
    keeps 35 epochs whatever the data size. :meth:`presets` lists it with its cost; its
    figures against the k-means baseline are on the Benchmarks page
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
    (200, 7168)
    """

    _parameter_constraints: dict = {
        **BaseSelfSupervised._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "gamma": [Interval(Real, 0, None, closed="left")],
        "mi_estimator": [StrOptions(set(BOUNDS))],
        "local_critic": [StrOptions(set(LOCAL_CRITICS))],
        "prior": [StrOptions(set(PRIORS))],
        "augment": ["boolean", StrOptions({"auto"})],
        "encoder": [StrOptions(set(ENCODERS)), nn.Module],
        "layer": [StrOptions(set(LAYERS))],
        "pool_size": [Interval(Integral, 1, None, closed="left")],
    }

    _PRESETS = {
        "few-images": Preset(
            params={"augment": True, "max_epochs": 35, "layer": "blocks", "weight_decay": 5e-4},
            use="a few thousand images (e.g. 5,000 CIFAR-10 images)",
            cost="about 400 s on 5,000 32x32 images, 2 CPU cores (bfloat16); ~3.5 min on 1,000",
        )
    }

    # max_epochs="auto": at most the 35 epochs of the measured "few-images"
    # configuration (2,730 steps on 5,000 images; smaller data sets would otherwise
    # train for many more epochs than measured, digits 125), and 3,500 steps on more
    # images: on 25,000 CIFAR-10 images 9 epochs beat 7 by 0.8 to 1.1 points at each
    # of three seeds and still fit 15 minutes on 2 CPU cores (docs/benchmarks.rst).
    _AUTO_EPOCHS = (3500, 35)

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
        augment="auto",
        encoder="auto",
        image_shape="auto",
        layer="blocks",
        pool_size=4,
        max_epochs="auto",
        batch_size=64,
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

    def _check_params(self, input_shape, n_samples):
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha and beta are both 0: there is no MI term to maximize")
        if not isinstance(self.augment, str) and self.augment and len(input_shape) != 3:
            raise ValueError(
                "augment=True needs images: pass image_shape=(C, H, W) or image arrays"
            )

    def _augments(self, input_shape) -> bool:
        """Whether training augments: ``augment``, with ``"auto"`` on for images."""
        return len(input_shape) == 3 if isinstance(self.augment, str) else bool(self.augment)

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
            augment=ImageAugment() if self._augments(input_shape) else None,
        )
