"""Views and augmentations: everything that turns raw inputs into what an encoder sees.

- :mod:`~sk_dim.views.color`: RGB to CIELAB, YCbCr and gray, and CMC's colour views.
- :mod:`~sk_dim.views.crops`: batched random resized crops and flips, and the two
  methods' crop scales.
- :mod:`~sk_dim.views.jitter`: batched colour jitter and random grayscale.
- :mod:`~sk_dim.views.augment`: AMDIM's augmentation for Deep InfoMax.
- :mod:`~sk_dim.views.makers`: CMC's view makers (torch modules).
- :mod:`~sk_dim.views.resolve`: what ``CMCTransformer(views=...)`` means for the data.

All are torch (and numpy) only and work on whole batches on the batch's device.
They are hand-written rather than kornia's: on this project's CPU the random crops,
jitter and grayscale are 1.3x to 2.1x as fast as kornia's, and the colour conversions,
as fast or within 21%, are closer to the standards; kornia's random draws would change
the augmentations a seed gives (``benchmarks/views.py``, the Benchmarks page).
"""

from .augment import ImageAugment
from .checks import check_range
from .color import (
    COLOR_VIEW_KINDS,
    LUMA_WEIGHTS,
    color_views,
    rgb_to_gray,
    rgb_to_lab,
    rgb_to_ycbcr,
)
from .crops import AUGMENT_CROP_SCALE, CMC_CROP_SCALE, random_resized_crop_flip
from .jitter import JITTER_P, color_jitter, random_grayscale, unclipped_color_jitter
from .makers import (
    COLOR_JITTER,
    CallableViews,
    ColorViews,
    ColumnViews,
    CropViews,
    build_view_maker,
    check_view,
)
from .resolve import NAMED_VIEWS, resolve_views

__all__ = [
    "AUGMENT_CROP_SCALE",
    "CMC_CROP_SCALE",
    "COLOR_JITTER",
    "COLOR_VIEW_KINDS",
    "JITTER_P",
    "LUMA_WEIGHTS",
    "NAMED_VIEWS",
    "CallableViews",
    "ColorViews",
    "ColumnViews",
    "CropViews",
    "ImageAugment",
    "check_range",
    "check_view",
    "color_jitter",
    "color_views",
    "build_view_maker",
    "random_grayscale",
    "random_resized_crop_flip",
    "resolve_views",
    "rgb_to_gray",
    "rgb_to_lab",
    "rgb_to_ycbcr",
    "unclipped_color_jitter",
]
