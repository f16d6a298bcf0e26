"""The parameters both estimators share: their constraints, and those the network holds.

Once fitted, the network holds the parameters it was built from
(``_MODULE_PARAMS``): changing one makes transform, save and further
training refuse, rather than run a network that the parameters no longer
describe.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from torch import nn

from ._runtime import PRECISIONS

# More threads than any machine has cores: libgomp would abort the process
# allocating their stacks rather than raise.
MAX_THREADS = 1024


class SharedParamsMixin:
    """The shared constraints, and a check of the parameters the fitted network holds."""

    _parameter_constraints: dict = {
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "image_shape": [StrOptions({"auto"}), tuple, None],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "device": [str],
        "n_threads": [Interval(Integral, 1, MAX_THREADS, closed="both"), None],
        "accelerate": ["boolean", dict, None],
        "on_divergence": [StrOptions({"raise", "keep_last"})],
        "precision": [StrOptions(set(PRECISIONS))],
        "channels_last": [StrOptions({"auto"}), "boolean"],
        "compile": ["boolean"],
        "warm_start": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "callbacks": [list, tuple, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # Parameters the torch module is built from. Once fitted, the network holds
    # them: changing one makes transform, save and further training refuse (see
    # fit); every other parameter takes effect at the next call that uses it.
    _MODULE_PARAMS: tuple[str, ...] = ("embedding_dim", "encoder", "image_shape")

    def _validate_params(self) -> None:
        super()._validate_params()
        # bool is an int to Python and to scikit-learn's Interval: embedding_dim=True
        # would pass, and fail later in torch with an unreadable error.
        for name, constraints in self._parameter_constraints.items():
            value = getattr(self, name)
            if (
                isinstance(value, bool | np.bool_)
                and "boolean" not in constraints
                and any(isinstance(c, Interval) and c.type is Integral for c in constraints)
            ):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, "
                    f"got the bool {value!r}"
                )

    def _current_module_params(self) -> dict:
        """The values of the parameters the network is built from, as they are now."""
        return {
            name: value if _holds_module(value) else copy.deepcopy(value)
            for name, value in ((n, getattr(self, n)) for n in self._MODULE_PARAMS)
        }

    def _check_module_params(self, action: str) -> None:
        """Refuse to ``action`` when a parameter the network was built from changed since fit."""
        built = self.__dict__.get("_module_params")
        if built is None:  # unfitted, or pickled by a version that did not record them
            return
        changed = [name for name, value in built.items() if not _same(getattr(self, name), value)]
        if changed:
            details = "; ".join(
                f"{name}={built[name]!r:.60} at fit, {getattr(self, name)!r:.60} now"
                for name in changed
            )
            raise ValueError(
                f"Cannot {action}: {details}. The fitted network was built from these "
                "parameters; set them back, or fit anew (with warm_start=False)"
            )


def _holds_module(value) -> bool:
    """Whether a parameter value is or contains torch modules (compared by identity)."""
    if isinstance(value, list | tuple):
        return any(_holds_module(v) for v in value)
    return isinstance(value, nn.Module)


def _same(a, b) -> bool:
    """Whether two parameter values are the same (modules: the same objects)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays, whose == is elementwise
        return False
