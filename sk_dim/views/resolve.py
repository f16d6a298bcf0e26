"""What a ``views`` parameter means for data of a given shape, checked before training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import numpy as np

from .color import COLOR_VIEW_KINDS

#: The named values of ``CMCTransformer(views=...)``.
NAMED_VIEWS: tuple[str, ...] = ("auto", *COLOR_VIEW_KINDS, "crops", "halves")

VIEWS_HELP = (
    "Pass views='crops' (two augmented crops of each image), views='halves' (two "
    "halves of the columns), a list of column lists, or a list of callables"
)


def resolve_views(
    views: str | Sequence,
    input_shape: tuple[int, ...],
    feature_names: Sequence[str] | None = None,
) -> str | list:
    """Resolve ``views`` for inputs of ``input_shape`` ((C, H, W) images or (F,) vectors).

    Returns ``"lab"``, ``"ycbcr"`` or ``"crops"`` for image views, a list of
    column-position lists (``"halves"`` and column lists, names looked up in
    ``feature_names``), or the list of callables as given. Raises a ValueError
    that names the problem when ``views`` does not fit the data.
    """
    is_image = len(input_shape) == 3
    n_features = math.prod(input_shape)
    if not isinstance(views, str):
        return _resolve_view_list(list(views), n_features, feature_names)
    if views == "auto" and is_image:
        views = "lab" if input_shape[0] == 3 else "crops"
    if views in COLOR_VIEW_KINDS:
        if not is_image or input_shape[0] != 3:
            got = f"images of shape {input_shape}" if is_image else "feature vectors"
            raise ValueError(
                f"views={views!r} needs RGB images (3 channels), got {got}. "
                f"{VIEWS_HELP}; set image_shape=(3, H, W) for flattened RGB images."
            )
        return views
    if views == "crops":
        if not is_image:
            raise ValueError(
                "views='crops' needs images, got feature vectors; set "
                f"image_shape=(C, H, W). {VIEWS_HELP}."
            )
        return views
    # "halves", and "auto" for feature vectors
    if n_features == 1:
        return [[0], [0]]
    half = n_features // 2
    return [list(range(half)), list(range(half, n_features))]


def _resolve_view_list(views: list, n_features: int, feature_names: Sequence[str] | None) -> list:
    if len(views) < 2:
        raise ValueError(f"views needs at least 2 views, got {len(views)}")
    if all(callable(v) for v in views):
        return views
    if any(callable(v) for v in views):
        raise ValueError("views mixes callables and column lists; use one kind")
    lookup = {} if feature_names is None else {str(n): i for i, n in enumerate(feature_names)}
    resolved = []
    for v, cols in enumerate(views):
        if isinstance(cols, str | Integral | np.integer):
            cols = [cols]
        cols = list(np.asarray(cols).ravel()) if not isinstance(cols, list) else cols
        if not cols:
            raise ValueError(f"view {v} of views has no columns")
        resolved.append(
            [_column_position(col, v, n_features, feature_names, lookup) for col in cols]
        )
    return resolved


def _column_position(col, v: int, n_features: int, feature_names, lookup: dict) -> int:
    if isinstance(col, str | np.str_):
        if feature_names is None:
            raise ValueError(
                f"views names column {col!r}, but X has no column names; pass "
                "a DataFrame with string column names, or column positions"
            )
        if str(col) not in lookup:
            raise ValueError(f"views names column {col!r}, which is not in X")
        return lookup[str(col)]
    if isinstance(col, Integral | np.integer) and not isinstance(col, bool):
        if not -n_features <= col < n_features:
            raise ValueError(
                f"views: column index {col} of view {v} is out of range for "
                f"X with {n_features} features"
            )
        return int(col) % n_features
    raise ValueError(
        f"views must be a list of column lists (ints or names) or of "
        f"callables; view {v} holds {col!r}"
    )
