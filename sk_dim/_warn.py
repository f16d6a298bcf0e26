"""Warnings that point at the user's line, however deep in the library they are raised."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings


def _folder(package: str) -> str:
    return os.path.dirname(importlib.util.find_spec(package).origin) + os.sep


# Frames in these folders are library code: a warning names the first frame outside
# them (a user's fit may go through Pipeline, a search, or skorch's training loop).
_LIBRARIES = tuple(_folder(package) for package in (__package__, "sklearn", "skorch"))


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` with the stack level of the first caller outside the libraries."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARIES):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
