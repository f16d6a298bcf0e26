"""sk_dim._history: history_ and what is read from it."""

import numpy as np
import pandas as pd
import pytest

from sk_dim._history import TrainingHistoryMixin, history_frame


class FakeNet:
    def __init__(self, history):
        self.history = history


class Holder(TrainingHistoryMixin):
    pass


def holder(history):
    obj = Holder()
    obj.net_ = FakeNet(history)
    return obj


def test_history_frame_leaves_out_batches_and_unfinished_epochs():
    history = [
        {"epoch": 1, "train_loss": 2.0, "batches": [{"loss": 2.5}]},
        {"epoch": 2, "train_loss": 1.5, "batches": []},
        {"epoch": 3, "batches": [{"loss": 1.0}]},  # interrupted: no train_loss
    ]
    frame = history_frame(history)
    assert frame.index.name == "epoch" and frame.index.tolist() == [1, 2]
    assert frame.columns.tolist() == ["train_loss"]
    assert frame["train_loss"].tolist() == [2.0, 1.5]


def test_history_frame_of_no_epoch_is_empty_with_an_integer_index():
    frame = history_frame([{"epoch": 1, "batches": []}])
    assert frame.empty and frame.index.name == "epoch" and frame.index.dtype == np.int64


def test_unfitted_history_raises_attribute_error():
    with pytest.raises(AttributeError, match="history_: the transformer is not fitted"):
        Holder().history_  # noqa: B018
    assert not hasattr(Holder(), "n_iter_")


def test_curves_and_counts_read_from_the_history():
    obj = holder([
        {"epoch": 1, "train_loss": 3.0},
        {"epoch": 2, "train_loss": 2.0},
        {"epoch": 3, "train_loss": 1.0},
    ])  # fmt: skip
    assert obj.n_iter_ == 3
    assert obj.loss_curve_ == [3.0, 2.0, 1.0]
    assert obj.validation_scores_ is None and obj.best_loss_ is None
    assert holder([]).loss_curve_ == []


def test_best_loss_is_the_last_marked_best_epoch_of_the_last_fit():
    rows = [
        {"epoch": 1, "train_loss": 3.0, "valid_loss": 2.0, "valid_loss_best": True},
        {"epoch": 2, "train_loss": 2.0, "valid_loss": 1.25, "valid_loss_best": True},
        {"epoch": 3, "train_loss": 1.0, "valid_loss": 1.5, "valid_loss_best": False},
    ]
    obj = holder(rows)
    assert obj.validation_scores_ == [2.0, 1.25, 1.5]
    assert obj.best_loss_ == 1.25
    # A warm epoch trained without early stopping: no held-out loss, no best.
    warm = holder([*rows, {"epoch": 4, "train_loss": 0.5}])
    assert np.isnan(warm.validation_scores_[-1]) and warm.best_loss_ is None


def test_a_restored_history_keeps_epochs_and_drops_missing_values():
    obj = Holder()
    frame = pd.DataFrame(
        {"train_loss": [2.0, 1.0], "valid_loss": [np.nan, 0.5]},
        index=pd.Index([1, 2], name="epoch"),
    )
    obj.history_ = frame
    assert obj._restored_history == [
        {"epoch": 1, "train_loss": 2.0},
        {"epoch": 2, "train_loss": 1.0, "valid_loss": 0.5},
    ]
    assert all(type(row["epoch"]) is int for row in obj._restored_history)
