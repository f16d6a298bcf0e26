"""sk_dim.views.augment: Deep InfoMax's augmentation."""

import pytest
import torch

from sk_dim.views import ImageAugment

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_image_augment_draws_only_from_its_generator():
    x = torch.rand(6, 3, 8, 8)
    augment = ImageAugment()
    a = augment(x, torch.Generator().manual_seed(3))
    torch.manual_seed(1)
    b = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
