"""Views and augmentations: everything that turns raw inputs into what an encoder sees.

- :mod:`~sk_dim.views.color`: RGB to CIELAB and YCbCr, and CMC's colour views.
- :mod:`~sk_dim.views.crops`: batched random resized crops and flips.
- :mod:`~sk_dim.views.augment`: AMDIM's augmentation for Deep InfoMax.
- :mod:`~sk_dim.views.makers`: CMC's view makers (torch modules).
- :mod:`~sk_dim.views.resolve`: what ``CMCTransformer(views=...)`` means for the data.

All are torch (and numpy) only and work on whole batches on the batch's device.
"""

from .augment import ImageAugment
from .checks import check_range
from .color import COLOR_VIEW_KINDS, color_views, rgb_to_lab, rgb_to_ycbcr
from .crops import random_resized_crop_flip
from .makers import (
    CallableViews,
    ColorViews,
    ColumnViews,
    CropViews,
    check_view,
    make_view_maker,
)
from .resolve import NAMED_VIEWS, resolve_views

__all__ = [
    "COLOR_VIEW_KINDS",
    "NAMED_VIEWS",
    "CallableViews",
    "ColorViews",
    "ColumnViews",
    "CropViews",
    "ImageAugment",
    "check_range",
    "check_view",
    "color_views",
    "make_view_maker",
    "random_resized_crop_flip",
    "resolve_views",
    "rgb_to_lab",
    "rgb_to_ycbcr",
]
