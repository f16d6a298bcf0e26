"""Named sets of constructor parameters, measured in the benchmarks (``from_preset``)."""

from __future__ import annotations

import copy
import dataclasses

import pandas as pd


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of constructor parameters (see ``from_preset``), with its use and cost."""

    params: dict
    use: str
    cost: str


class PresetsMixin:
    """``from_preset`` and ``presets`` for a class whose ``_PRESETS`` maps names to presets."""

    # Named parameter sets measured in the benchmarks: {name: Preset}, listed by
    # presets() and documented in each subclass's Notes.
    _PRESETS: dict[str, Preset] = {}

    @classmethod
    def from_preset(cls, name: str, **params):
        """A new transformer with the parameters of the preset ``name``, then ``params``.

        A preset is only a set of constructor parameters: the result is an
        ordinary unfitted transformer, and ``params`` override the preset's
        values (e.g. ``random_state``, or ``max_epochs`` for another budget).

        Parameters
        ----------
        name : str
            A preset of this class (see the class's Notes).
        **params
            Further constructor parameters.

        Returns
        -------
        transformer
            ``cls(**{**preset, **params})``.
        """
        if name not in cls._PRESETS:
            raise ValueError(
                f"{cls.__name__} has no preset {name!r}; the presets are {sorted(cls._PRESETS)}"
            )
        return cls(**{**cls._PRESETS[name].params, **params})

    @classmethod
    def presets(cls) -> pd.DataFrame:
        """The presets of :meth:`from_preset`: what each sets, what it is for and costs.

        Returns
        -------
        presets : pandas.DataFrame
            One row per preset (the index is its name), with the columns
            ``params`` (the constructor parameters it sets), ``use`` (the data
            it was tuned for) and ``cost`` (the fit time measured in the
            benchmarks, on 2 CPU cores).
        """
        rows = {name: copy.deepcopy(vars(preset)) for name, preset in cls._PRESETS.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["params", "use", "cost"])
