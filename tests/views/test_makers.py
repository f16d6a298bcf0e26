"""sk_dim.views.makers: CMC's view makers."""

import numpy as np
import pytest
import torch

from sk_dim.views import ColorViews, ColumnViews
from sk_dim.views.makers import callable_view_stats, check_view, nonzero_std

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_color_jitter_never_empties_the_ab_view():
    """A gray image's ab view is a constant: its pair of views would carry nothing."""
    noise = torch.randint(0, 256, (64, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    x = noise.to(torch.uint8)
    views = ColorViews("lab", 1 / 255, color_jitter=0.4).train()
    torch.manual_seed(0)
    spread = torch.stack([views(x)[1].flatten(2).std(dim=2).amax(dim=1) for _ in range(50)])
    plain = ColorViews("lab", 1 / 255).eval()(x)[1].flatten(2).std(dim=2).amax(dim=1)
    assert spread.min() > 0.2 * plain.min()  # (50, 64) draws, no constant ab
    # The jitter still changes colours, and only in training mode.
    luma = views(x)[0]
    assert (luma - ColorViews("lab", 1 / 255).train()(x)[0]).abs().mean() > 0.01
    views.eval()
    torch.testing.assert_close(views(x)[1], ColorViews("lab", 1 / 255).eval()(x)[1])


def test_view_makers_draw_from_a_generator_only_when_given_one():
    x = torch.rand(8, 3, 8, 8)
    views = ColorViews("lab", 1.0, color_jitter=0.4).train()
    drawn = [views(x, generator=torch.Generator().manual_seed(0))[1] for _ in range(2)]
    torch.testing.assert_close(drawn[0], drawn[1])
    torch.manual_seed(0)
    first = views(x)[1]
    torch.manual_seed(0)
    torch.testing.assert_close(views(x)[1], first)  # the global generator, as before
    assert not torch.equal(views(x)[1], first)


# -- column views and standardisation ------------------------------------------------------


def test_column_views_standardise_then_pick_each_views_columns():
    mean, std = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 4.0, 0.5])
    views = ColumnViews(mean, std, [[0, 2], [3, 1, 0]])
    x = torch.tensor([[2.0, 6.0, 11.0, 5.0]], dtype=torch.float64)
    first, second = views(x)
    torch.testing.assert_close(first, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(second, torch.tensor([[2.0, 2.0, 1.0]], dtype=torch.float64))
    # The columns are buffers: saved with the module.
    assert {"columns0", "columns1"} <= set(views.state_dict())


def test_nonzero_std_replaces_only_constant_columns_with_one():
    std = torch.tensor([0.0, 1e-5, 0.5, 1e-9])
    mean = torch.tensor([1e4, 1e4, 0.0, 0.0])
    # The floor is 1e-8 of the largest mean's magnitude (at least 1): 1e-4 here.
    torch.testing.assert_close(nonzero_std(std, mean), torch.tensor([1.0, 1.0, 0.5, 1.0]))
    small = torch.tensor([1e-7, 1e-9])
    torch.testing.assert_close(nonzero_std(small, torch.zeros(2)), torch.tensor([1e-7, 1.0]))


def test_check_view_accepts_rows_or_images_of_the_batch():
    assert check_view(torch.zeros(3, 2), 0, 3).shape == (3, 2)
    assert check_view(torch.zeros(3, 1, 2, 2), 1, 3).shape == (3, 1, 2, 2)
    with pytest.raises(TypeError, match="view 0 must be a torch.Tensor, got list"):
        check_view([1, 2], 0, 3)
    with pytest.raises(ValueError, match=r"view 1 must have shape .* with N=3, got \(2, 2\)"):
        check_view(torch.zeros(2, 2), 1, 3)
    with pytest.raises(ValueError, match=r"got \(3, 2, 2\)"):
        check_view(torch.zeros(3, 2, 2), 1, 3)
    with pytest.raises(ValueError, match=r"got \(3, 0\)"):
        check_view(torch.zeros(3, 0), 1, 3)


def test_callable_view_stats_give_constant_columns_a_scale_of_one():
    """Two passes per chunk, merged: a constant column's std is exactly 0, so its scale is 1.

    The one-pass E[x^2] - E[x]^2 left rounding noise of ~1e-8 |x| on such columns, above
    the constant-column floor for some values: they were divided by noise.
    """
    rng = np.random.default_rng(0)
    n, width = 3000, 400
    constants = rng.uniform(100, 10000, width).astype(np.float32)
    X = np.tile(constants, (n, 1))
    X[:, :10] += rng.normal(size=(n, 10)).astype(np.float32)  # ten varying columns
    means, stds = callable_view_stats([lambda x: x], X, (width,), chunk=1024)
    reference = X.astype(np.float64)
    np.testing.assert_allclose(means[0].numpy().ravel(), reference.mean(0), rtol=1e-12)
    std = stds[0].numpy().ravel()
    np.testing.assert_allclose(std[:10], reference[:, :10].std(0), rtol=1e-9)
    assert (std[10:] == 1.0).all()
