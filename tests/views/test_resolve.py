"""sk_dim.views.resolve: what ``views=`` means for data of a given shape."""

import numpy as np
import pytest

from sk_dim.views.resolve import NAMED_VIEWS, resolve_views


def test_named_views():
    assert NAMED_VIEWS == ("auto", "lab", "ycbcr", "crops", "halves")


def test_auto_is_lab_for_rgb_crops_for_other_images_and_halves_for_vectors():
    assert resolve_views("auto", (3, 8, 8)) == "lab"
    assert resolve_views("auto", (1, 8, 8)) == "crops"
    assert resolve_views("auto", (5,)) == [[0, 1], [2, 3, 4]]
    assert resolve_views("ycbcr", (3, 4, 4)) == "ycbcr"
    assert resolve_views("crops", (2, 4, 4)) == "crops"


def test_halves_split_the_flattened_columns():
    assert resolve_views("halves", (6,)) == [[0, 1, 2], [3, 4, 5]]
    assert resolve_views("halves", (1, 2, 2)) == [[0, 1], [2, 3]]  # an image, flattened
    assert resolve_views("halves", (1,)) == [[0], [0]]  # one feature: both views see it


def test_column_lists_by_position_and_by_name():
    names = ["a", "b", "c", "d"]
    assert resolve_views([[0, 1], [-1]], (4,)) == [[0, 1], [3]]
    assert resolve_views([["a", "c"], "d"], (4,), names) == [[0, 2], [3]]
    assert resolve_views([np.array([1, 2]), 0], (4,)) == [[1, 2], [0]]
    assert resolve_views(([np.int64(3)], [np.str_("b")]), (4,), names) == [[3], [1]]


def test_callables_are_returned_as_given():
    def first(x):
        return x[:, :1]

    def second(x):
        return x[:, 1:]

    assert resolve_views([first, second], (4,)) == [first, second]


@pytest.mark.parametrize(
    ("views", "shape", "message"),
    [
        ("lab", (1, 8, 8), r"views='lab' needs RGB images \(3 channels\), got images of shape"),
        ("ycbcr", (12,), "views='ycbcr' needs RGB images .* got feature vectors"),
        ("crops", (12,), "views='crops' needs images, got feature vectors"),
        ([[0, 1]], (4,), "views needs at least 2 views, got 1"),
        ([[0], len], (4,), "views mixes callables and column lists"),
        ([[0], []], (4,), "view 1 of views has no columns"),
        ([[0], [4]], (4,), "column index 4 of view 1 is out of range for X with 4 features"),
        ([[-5], [0]], (4,), "column index -5 of view 0 is out of range"),
        ([[0], [True]], (4,), "view 1 holds True"),
        ([[0], ["a"]], (4,), "views names column 'a', but X has no column names"),
    ],
)
def test_views_that_do_not_fit_the_data_are_refused_by_name(views, shape, message):
    with pytest.raises(ValueError, match=message):
        resolve_views(views, shape)


def test_a_name_missing_from_the_columns_is_refused():
    with pytest.raises(ValueError, match="views names column 'z', which is not in X"):
        resolve_views([["a"], ["z"]], (2,), ["a", "b"])
