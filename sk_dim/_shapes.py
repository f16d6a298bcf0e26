"""What ``image_shape="auto"`` reads a 2-D X as: square images, or feature vectors.

A flattened image set says nothing of its shape but its number of columns, and
that can mislead: 100 RGB images of 24x32 have 2,304 columns, as many as 48x48
grayscale ones. So the guess is checked against the data. In an image of width
``w``, the pixel ``w`` columns further along a row of X is the one just below,
as alike as the one just beside it and more alike than any other within two
rows: the mean correlation of columns ``d`` apart peaks at ``d == w``. Tables
have no such peak (unrelated columns: no correlation; series: a correlation
that falls with ``d``). Only numpy is imported.
"""

from __future__ import annotations

import math

import numpy as np

from .views.makers import RELATIVE_CONSTANT_STD

# Square images at least this wide are recognised without an image_shape.
MIN_INFERRED_SIDE = 8
# Neighbouring pixels of real images correlate far above this (digits 0.5,
# MNIST 0.74, CIFAR-10 0.9); columns of tables and noise stay near 0.
MIN_PIXEL_CORRELATION = 0.2
# How much below the best offset the guessed width may score (sampling noise).
PEAK_SLACK = 0.02
# Rows and column positions sampled: correlations to about +-0.01, in well under
# a second even for 224x224 RGB images.
_ROWS, _POSITIONS = 128, 1024


def square_image_shape(n_features: int) -> tuple[int, int, int] | None:
    """``(1, s, s)`` or ``(3, s, s)``, ``s >= MIN_INFERRED_SIDE``, if the count fits; else None."""
    for channels in (1, 3):
        side = math.isqrt(n_features // channels)
        if side * side * channels == n_features and side >= MIN_INFERRED_SIDE:
            return (channels, side, side)
    return None


def column_correlations(X: np.ndarray, max_offset: int, seed: int = 0) -> np.ndarray:
    """Mean correlation of columns ``d`` apart, for ``d = 1 .. max_offset``.

    Estimated on at most 128 rows and 1,024 sampled column positions (seeded), in
    float64, over pairs of columns that both vary.
    """
    rng = np.random.default_rng(seed)
    n, width = X.shape
    # The leading columns are enough: the same structure repeats along the rows.
    width = min(width, max(8 * max_offset, _POSITIONS))
    rows = np.sort(rng.choice(n, size=min(n, _ROWS), replace=False))
    sample = np.asarray(X[rows, :width], dtype=np.float64)
    mean = sample.mean(0)
    centred = sample - mean
    std = centred.std(0)
    # The package's one constant-column rule (the networks' input scaling uses it too).
    varies = std > RELATIVE_CONSTANT_STD * max(1.0, float(np.abs(mean).max(initial=0.0)))
    # One row per column: gathering columns is then a contiguous copy.
    columns = np.where(varies, centred / np.where(varies, std, 1.0), 0.0).T.copy()
    out = np.zeros(max_offset)
    for d in range(1, max_offset + 1):
        if width - d > _POSITIONS:  # drawn with replacement: cheap on wide rows
            starts = rng.integers(0, width - d, size=_POSITIONS)
        else:
            starts = np.arange(width - d)
        starts = starts[varies[starts] & varies[starts + d]]
        if len(starts):
            out[d - 1] = np.einsum("ij,ij->", columns[starts], columns[starts + d]) / (
                len(starts) * len(rows)
            )
    return out


def infer_image_shape(X: np.ndarray) -> tuple[int, int, int] | None:
    """``(C, s, s)`` when X's columns are square images, None for feature vectors.

    Raises a ValueError naming ``image_shape`` when the columns look like images
    of another width: a guess that would scramble them.
    """
    n_features = X.shape[1]
    guess = square_image_shape(n_features)
    side = guess[2] if guess else math.isqrt(n_features)
    max_offset = min(n_features - 1, 2 * max(side, MIN_INFERRED_SIDE))
    if max_offset < 2:
        return None
    if len(X) < 3:  # correlations of two rows are +-1: nothing to check
        return guess
    r = column_correlations(X, max_offset)  # r[d - 1]: columns d apart
    offsets = np.arange(2, max_offset + 1)
    best = int(offsets[np.argmax(r[1:])])
    if guess and r[side - 1] >= MIN_PIXEL_CORRELATION and r[side - 1] >= r[best - 1] - PEAK_SLACK:
        return guess
    # A peak beyond the neighbours: rows of images ``best`` pixels wide (as wide as
    # the images recognised; narrower peaks are the periods of tables and series).
    peak = (
        best >= MIN_INFERRED_SIDE
        and r[best - 1] >= MIN_PIXEL_CORRELATION
        and r[best - 1] > r[best - 2]
    )
    if peak:
        read_as = f"could be read as {guess[0]}x{side}x{side} images, but" if guess else "are"
        raise ValueError(
            f"X's {n_features} columns {read_as} alike {best} columns apart "
            f"(correlation {r[best - 1]:.2f}"
            + (f", against {r[side - 1]:.2f} {side} apart)" if guess else ")")
            + f": images {best} pixels wide? Pass image_shape=(C, H, W) for images "
            "(e.g. (3, H, W) for RGB), or image_shape=None for feature vectors"
        )
    return None
