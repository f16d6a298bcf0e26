"""sk_dim._input: what X may be, its input shape, its batches and its scaling statistics."""

import numpy as np
import pytest
import torch

from sk_dim import DeepInfoMaxTransformer
from sk_dim._input import (
    as_tensor,
    batch_source,
    check_channels_first,
    check_float32_range,
    resolve_input_shape,
    scaling_statistics,
    split_validation,
    validate_input,
    zero_rows,
)


def test_resolve_input_shape():
    X = np.zeros((4, 12))
    assert resolve_input_shape((3, 2, 2), X, None) == (3, 2, 2)
    assert resolve_input_shape(None, X, None) == (12,)
    assert resolve_input_shape("auto", X, (3, 2, 2)) == (3, 2, 2)  # the images' own shape
    with pytest.raises(ValueError, match=r"image_shape=\(1, 2, 2\) does not match X with 12"):
        resolve_input_shape((1, 2, 2), X, None)
    with pytest.raises(ValueError, match="must hold 3 ints"):
        resolve_input_shape((3.0, 2, 2), X, None)
    with pytest.raises(ValueError, match="must hold 3 ints"):
        resolve_input_shape((True, 3, 4), X, None)
    with pytest.raises(ValueError, match=r"does not match X's images \(1, 2, 6\)"):
        resolve_input_shape((3, 2, 2), X, (1, 2, 6))


def test_validate_input_reads_images_of_3_and_4_dimensions():
    est = DeepInfoMaxTransformer()
    X, shape = validate_input(est, np.zeros((5, 4, 6), dtype=np.float32), reset=True)
    assert X.shape == (5, 24) and shape == (1, 4, 6) and est.n_features_in_ == 24
    X, shape = validate_input(est, torch.zeros(5, 3, 4, 4), reset=True)
    assert X.shape == (5, 48) and shape == (3, 4, 4)
    with pytest.raises(ValueError, match="Expected 2-D, 3-D or 4-D data"):
        validate_input(est, np.zeros((2, 1, 1, 1, 1)), reset=True)
    with pytest.raises(ValueError, match="looks like channels-last"):
        validate_input(est, np.zeros((2, 8, 8, 3)), reset=True)
    with pytest.raises(ValueError, match="a minimum of 2 is required"):
        validate_input(est, np.zeros((1, 4)), reset=True)


def test_validate_input_at_transform_checks_against_the_fit():
    est = DeepInfoMaxTransformer()
    est.input_shape_ = est.image_shape_ = (3, 4, 4)
    validate_input(est, np.zeros((5, 3, 4, 4)), reset=True)
    X, shape = validate_input(est, np.zeros((1, 48)), reset=False)  # one row is enough
    assert X.shape == (1, 48) and shape == (3, 4, 4)
    with pytest.raises(ValueError, match=r"images of shape \(1, 6, 8\), but .* \(3, 4, 4\)"):
        validate_input(est, np.zeros((2, 6, 8)), reset=False)


def test_check_channels_first():
    check_channels_first((2, 3, 32, 32))
    check_channels_first((2, 3, 3, 3))  # ambiguous: taken as channels-first
    with pytest.raises(ValueError, match=r"X.transpose\(0, 3, 1, 2\)"):
        check_channels_first((2, 32, 32, 3))


def test_check_float32_range():
    check_float32_range(np.array([[3.0e38, -3.0e38]]))
    check_float32_range(np.full((2, 2), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="beyond the float32 range"):
        check_float32_range(np.array([[0.0, -1e39]]))


def test_split_validation_holds_out_a_fraction_of_the_rows():
    X = np.arange(20.0)[:, None]
    train, valid = split_validation(X, 0.3, seed=0)
    assert (len(train), len(valid)) == (14, 6)
    assert sorted(np.concatenate([train, valid]).ravel().tolist()) == list(range(20))
    assert np.all(np.diff(train.ravel()) > 0) and np.all(np.diff(valid.ravel()) > 0)
    assert np.array_equal(split_validation(X, 0.3, seed=0)[1], valid)
    with pytest.raises(ValueError, match="leaves 3 and 1"):
        split_validation(X[:4], 0.1, seed=0)


def test_scaling_statistics_per_channel_and_per_feature_match_numpy():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(50, 2 * 3 * 4)).astype(np.float32)
    mean, std = scaling_statistics(X, (2, 3, 4))
    channels = X.astype(np.float64).reshape(50, 2, 12)
    assert mean.shape == std.shape == (1, 2, 1, 1) and mean.dtype == torch.float64
    np.testing.assert_allclose(mean.ravel(), channels.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(std.ravel(), channels.std(axis=(0, 2)), rtol=1e-12)
    mean, std = scaling_statistics(X, (2, 3, 4), per_feature=True)
    assert mean.shape == (1, 24)
    np.testing.assert_allclose(std.ravel(), X.astype(np.float64).std(axis=0), rtol=1e-12)


def test_zero_rows_as_tensor_and_batch_source():
    rows = zero_rows((3, 2, 2))
    assert rows.shape == (2, 12) and not rows.any() and rows.strides[0] == 0
    X = np.arange(24, dtype=np.float32).reshape(2, 12)
    tensor = as_tensor(X, (3, 2, 2))
    assert tensor.shape == (2, 3, 2, 2) and np.shares_memory(tensor.numpy(), X)
    assert as_tensor(X.astype(np.float64), (12,)).dtype == torch.float32
    source = batch_source(X, (3, 2, 2))
    assert isinstance(source, torch.Tensor) and np.shares_memory(source.numpy(), X)
    wide = batch_source(X.astype(np.float64), (3, 2, 2))  # converted one batch at a time
    assert isinstance(wide, np.ndarray) and wide.shape == (2, 3, 2, 2)
