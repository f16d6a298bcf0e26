"""The docstring entries both transformers share, written once.

:class:`~sk_dim.DeepInfoMaxTransformer` and :class:`~sk_dim.CMCTransformer`
take the same training, device and validation parameters and have the same
fitted attributes for them. Their class docstrings name these entries with a
line ``{shared: name, ...}``, which :func:`fill_shared_entries` replaces with
the numpydoc entries below, so that numpydoc, Sphinx and doctests see a
complete docstring and the two classes cannot drift apart.
"""

from __future__ import annotations

import re
import textwrap

# Parameters: the numpydoc entry of each, "name : type" then its description.
SHARED_PARAMETERS: dict[str, str] = {
    "image_shape": """\
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
    treats X as feature vectors.""",
    "device": """\
device : str, default="auto"
    Torch device; ``"auto"`` uses CUDA when available.""",
    "on_divergence": """\
on_divergence : {"raise", "keep_last"}, default="raise"
    When a loss term or a weight becomes NaN, infinite or larger than
    1e5, ``"raise"`` stops with a :class:`~sk_dim.training.TrainingDiverged`
    error (a ``FloatingPointError``) naming the epoch and the term, and
    leaves the transformer as it was before the call; ``"keep_last"``
    warns and keeps the weights from the end of the last finite epoch (it
    raises too when the first epoch diverges).""",
    "precision": """\
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
    in float32 either way. The precision used at fit is ``precision_``.""",
    "channels_last": """\
channels_last : "auto" or bool, default="auto"
    Store the network's convolution weights and image batches in
    ``torch.channels_last`` (NHWC) layout, which tensor-core kernels
    prefer. ``"auto"`` is True on CUDA and False on the CPU. Results
    match the default layout up to rounding.""",
    "compile": """\
compile : bool, default=False
    Compile the network with ``torch.compile`` for training. The first
    batches are slow (compilation takes seconds to minutes), so it pays
    off only for long fits; needs a C++ compiler on the CPU. Pickling
    and :meth:`save` are unaffected (the compiled code is not stored).""",
    "n_threads": """\
n_threads : int or None, default=None
    CPU threads torch uses during ``fit`` and ``transform`` (restored
    afterwards). None keeps torch's setting, which follows
    ``OMP_NUM_THREADS``: joblib's process workers (scikit-learn's
    ``n_jobs`` with the default loky backend) and dask's workers already
    set it to their share of the cores. At most 1024, and at most
    ``os.cpu_count()`` threads are used. torch's thread count is one
    setting per process: fits and transforms running at once in threads
    share the count set last, and the count from before the first of them
    is restored when the last one ends.""",
    "accelerate": """\
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
    plain skorch on ``device``. See :doc:`/scaling`.""",
    "warm_start": """\
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
    and continued training then raise a ValueError naming them.""",
    "early_stopping": """\
early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the training data (at random),
    record the self-supervised loss on it every epoch (``valid_loss``
    and ``valid_<term>`` columns of ``history_``), stop when it has not
    improved by more than ``tol`` for ``n_iter_no_change`` epochs, and
    keep the weights of the best epoch.""",
    "validation_fraction": """\
validation_fraction : float, default=0.1
    Fraction of the training data held out for early stopping.""",
    "n_iter_no_change": """\
n_iter_no_change : int, default=10
    Epochs without an improvement of the validation loss larger than
    ``tol`` before early stopping ends training.""",
    "tol": """\
tol : float, default=1e-4
    Smallest decrease of the validation loss that counts as an
    improvement for early stopping.""",
    "callbacks": """\
callbacks : list of skorch callbacks or None, default=None
    `skorch callbacks <https://skorch.readthedocs.io/en/stable/callbacks.html>`_
    run during training after sk_dim's own, e.g. ``LRScheduler``,
    ``Checkpoint(monitor=None, dirname=...)`` (with ``LoadInitState`` to
    resume an interrupted fit: the resumed fit trains the epochs missing
    to ``max_epochs`` and ends with the weights of an uninterrupted one)
    or ``EarlyStopping``. A list of callbacks or ``(name, callback)``
    pairs; each fit uses a copy, so the parameter is never modified.""",
    "verbose": """\
verbose : int, default=0
    0 is silent, 1 prints a table per epoch, 2 adds a progress bar.
    Ctrl-C during fit stops training at the end of the current batch
    and leaves a usable fitted transformer, with a warning.""",
}

# Fitted attributes, in the same form.
SHARED_ATTRIBUTES: dict[str, str] = {
    "n_iter_": """\
n_iter_ : int
    Number of epochs trained, over all ``fit`` (with ``warm_start``) and
    ``partial_fit`` calls.""",
    "loss_curve_": """\
loss_curve_ : list of float
    ``train_loss`` of every epoch trained (``history_["train_loss"]``).""",
    "best_loss_": """\
best_loss_ : float or None
    With ``early_stopping``, the lowest held-out loss of the last fit:
    the fit ends with the weights of that epoch, the first argmin of its
    ``valid_loss`` (even when it improved on the previous lowest by less
    than ``tol``), also after a Ctrl-C. None when the last epoch was
    trained without ``early_stopping``. Read from ``history_``.""",
    "validation_scores_": """\
validation_scores_ : list of float or None
    ``valid_loss`` of every epoch (``history_["valid_loss"]``): the
    held-out losses, lower is better (NaN for an epoch trained without
    ``early_stopping``); None when no epoch was.""",
    "versions_": """\
versions_ : dict
    Versions of ``sk_dim``, ``torch`` and ``scikit-learn`` at fit;
    :func:`sk_dim.load` warns when they differ from the running ones.""",
    "precision_": """\
precision_ : {"float32", "bfloat16", "float16"}
    The precision the last training used (``precision`` with ``"auto"``
    resolved). ``transform`` follows ``precision`` as it is now, resolved
    for the network's device.""",
    "channels_last_": """\
channels_last_ : bool
    Whether training used the channels_last layout.""",
    "image_shape_": """\
image_shape_ : tuple of int or None
    ``(C, H, W)`` when X holds images, else None.""",
    "n_features_in_": """\
n_features_in_ : int
    Number of features seen during fit.""",
    "feature_names_in_": """\
feature_names_in_ : ndarray of shape (``n_features_in_``,)
    Names of features seen during fit, when X has string column names.""",
}

SHARED_ENTRIES = {**SHARED_PARAMETERS, **SHARED_ATTRIBUTES}

# A line holding only "{shared: a, b, ...}", at any indentation.
_MARKER = re.compile(r"^(?P<indent>[ \t]*)\{shared: (?P<names>[\w, ]+)\}[ \t]*$", re.MULTILINE)


def fill_shared_entries(cls: type) -> type:
    """Class decorator: replace each ``{shared: name, ...}`` line of the docstring.

    Each name's entry of :data:`SHARED_ENTRIES` takes the marker's place, in
    the order named, indented as the marker is. An unknown name raises a
    KeyError when the class is defined. Without docstrings (``python -OO``)
    there is nothing to fill.

    Parameters
    ----------
    cls : type
        The class whose ``__doc__`` holds the markers.

    Returns
    -------
    type
        ``cls``, its ``__doc__`` filled in.
    """
    if cls.__doc__ is not None:
        cls.__doc__ = _MARKER.sub(_entries, cls.__doc__)
    return cls


def _entries(marker: re.Match) -> str:
    names = [name.strip() for name in marker["names"].split(",")]
    text = "\n".join(SHARED_ENTRIES[name] for name in names)
    return textwrap.indent(text, marker["indent"])
