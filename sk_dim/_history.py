"""The training history a fitted transformer reports, read from its network."""

from __future__ import annotations

import numpy as np
import pandas as pd


class TrainingHistoryMixin:
    """``history_`` and what is read from it, for estimators whose ``net_`` is a skorch net."""

    @property
    def history_(self) -> pd.DataFrame:
        """One row per completed epoch, read from the network: always in step with it."""
        if "net_" not in self.__dict__:
            raise AttributeError("history_: the transformer is not fitted")
        return history_frame(self.net_.history)

    @history_.setter
    def history_(self, frame: pd.DataFrame) -> None:
        # sk_dim.load restores a saved history before it rebuilds the network.
        self._restored_history = [
            {"epoch": int(epoch), **{k: v for k, v in row.items() if pd.notna(v)}}
            for epoch, row in frame.to_dict("index").items()
        ]

    @property
    def n_iter_(self) -> int:
        """Number of epochs trained so far, over all ``fit`` and ``partial_fit`` calls."""
        return len(self.history_)

    @property
    def loss_curve_(self) -> list[float]:
        """The training loss of every epoch trained so far (``history_["train_loss"]``)."""
        return self.history_["train_loss"].tolist() if "train_loss" in self.history_ else []

    @property
    def validation_scores_(self) -> list[float] | None:
        """The held-out loss of every epoch (``history_["valid_loss"]``), or None.

        NaN for an epoch trained without ``early_stopping`` (in a warm start);
        None when no epoch was. Losses, not scores: lower is better.
        """
        history = self.history_
        return history["valid_loss"].tolist() if "valid_loss" in history else None

    @property
    def best_loss_(self) -> float | None:
        """The lowest held-out loss of the last fit, whose epoch's weights were kept; or None.

        Read from ``history_``: the ``valid_loss`` of the last epoch marked
        ``valid_loss_best``. None when the last epoch was trained without
        ``early_stopping``.
        """
        history = self.history_
        if "valid_loss_best" not in history or pd.isna(history["valid_loss"].iloc[-1]):
            return None
        best = history.index[history["valid_loss_best"].eq(True)]
        return float(history.loc[best[-1], "valid_loss"])


def history_frame(history) -> pd.DataFrame:
    """One row per completed epoch (an interrupted or diverged one is left out)."""
    rows = [
        {k: v for k, v in row.items() if k != "batches"} for row in history if "train_loss" in row
    ]
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="epoch", dtype=np.int64))
    return pd.DataFrame(rows).set_index("epoch")
