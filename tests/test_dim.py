import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from torch import nn

from sk_dim import DeepInfoMaxTransformer
from sk_dim.losses import discriminator_loss, encoder_prior_loss, mi_bound
from sk_dim.modules.encoders import ConvEncoder, PaperEncoder32, unpack
from sk_dim.modules.infomax import DeepInfoMax
from sk_dim.views import ImageAugment

FAST = dict(max_epochs=2, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def fitted(digits):
    # JSD, whose MI estimates have known bounds (0 and 2 log 2) to check.
    # float32: the layer tests recompute features by hand in float32. The paper's DIM
    # (no augmentation): two epochs of the cross-view objective score near 0.
    return DeepInfoMaxTransformer(
        mi_estimator="jsd", augment=False, precision="float32", **FAST
    ).fit(digits[0])


def test_fit_lowers_the_loss(digits):
    dim = DeepInfoMaxTransformer(max_epochs=6, batch_size=32, random_state=0).fit(digits[0])
    loss = dim.history_["train_loss"]
    assert loss.iloc[-1] < loss.iloc[0] - 0.5
    assert {"global_mi", "local_mi", "prior", "discriminator", "dur"} <= set(dim.history_)


@pytest.mark.parametrize(
    ("weights", "terms", "absent"),
    [
        ((1.0, 0.0, 1.0), {"global_mi", "prior", "discriminator"}, "local_mi"),  # DIM(G)
        ((0.0, 1.0, 0.1), {"local_mi", "prior", "discriminator"}, "global_mi"),  # DIM(L)
        ((0.5, 1.0, 0.0), {"global_mi", "local_mi"}, "prior"),
    ],
)
def test_zero_weight_terms_are_not_computed(digits, weights, terms, absent):
    alpha, beta, gamma = weights
    dim = DeepInfoMaxTransformer(alpha=alpha, beta=beta, gamma=gamma, **FAST).fit(digits[0])
    assert terms <= set(dim.history_) and absent not in dim.history_
    module = dim.net_.module_
    assert (module.global_critic is None) == (alpha == 0)
    assert (module.local_critic is None) == (beta == 0)
    assert (module.discriminator is None) == (gamma == 0)


def test_prior_terms_pull_in_opposite_directions():
    disc = nn.Linear(4, 1)
    y = torch.randn(16, 4, requires_grad=True)
    d_loss = discriminator_loss(disc(torch.rand(16, 4)).squeeze(-1), disc(y).squeeze(-1))
    (grad_disc,) = torch.autograd.grad(d_loss, y)
    (grad_enc,) = torch.autograd.grad(encoder_prior_loss(disc(y).squeeze(-1)), y)
    # Per sample, both gradients are multiples of the discriminator's weight
    # with opposite signs: the encoder fools the discriminator, not helps it.
    cosine = torch.nn.functional.cosine_similarity(grad_disc, grad_enc, dim=1)
    assert torch.allclose(cosine, -torch.ones(16), atol=1e-5)


def test_discriminator_has_its_own_optimizer(fitted):
    net = fitted.net_
    disc = {id(p) for p in net.module_.discriminator.parameters()}
    main = {id(p) for g in net.optimizer_.param_groups for p in g["params"]}
    other = {id(p) for g in net.optimizer_discriminator_.param_groups for p in g["params"]}
    assert disc == other and not disc & main
    assert {id(p) for p in net.module_.encoder.parameters()} <= main


def test_each_player_improves_its_own_objective(fitted, digits):
    """Steps of each optimizer lower its player's loss: encoder vs. discriminator."""
    net = pickle.loads(pickle.dumps(fitted.net_))
    module = net.module_.eval()  # fixed batch-norm statistics: a deterministic forward
    x = torch.as_tensor(digits[0][:64], dtype=torch.float32).view(64, 1, 8, 8)

    def encoder_loss():
        return module(x)["prior"]

    def discriminator_loss():
        torch.manual_seed(0)  # the same prior samples each time
        return module.discriminator_step_loss(module(x))

    for loss_fn, optimizer in [
        (encoder_loss, net.optimizer_),
        (discriminator_loss, net.optimizer_discriminator_),
    ]:
        before = loss_fn().item()
        for _ in range(5):
            optimizer.zero_grad()
            loss_fn().backward()
            optimizer.step()
        assert loss_fn().item() < before


@pytest.mark.parametrize(
    ("layer", "width"),
    # blocks: (64 + 128 + 256) channels x 4 x 4, the two convolutional blocks and the last conv
    [("local", 2048), ("blocks", 7168), ("conv", 4096), ("fc", 1024), ("y", 16)],
)
def test_layer_widths(digits, layer, width):
    dim = DeepInfoMaxTransformer(embedding_dim=16, layer=layer, **{**FAST, "max_epochs": 1})
    Z = dim.fit_transform(digits[0][:100])
    assert Z.shape == (100, width) and Z.dtype == np.float32
    assert dim.get_feature_names_out()[0] == "deepinfomaxtransformer0"


def test_layers_are_what_their_names_say(fitted, digits):
    x = torch.as_tensor(digits[0][:4], dtype=torch.float32).view(4, 1, 8, 8)
    network = fitted.net_.module_.encoder.eval()
    standardize, encoder = network
    with torch.no_grad():
        first = encoder.local[:3](standardize(x))  # (4, 64, 8, 8): conv, batch norm, ReLU
        local = encoder.local[3:](first)  # (4, 128, 8, 8)
        conv = encoder.top(local)  # (4, 256, 4, 4): the paper's last conv layer
        pooled = [torch.nn.functional.avg_pool2d(m, 2).flatten(1) for m in (first, local)]
        expected = {
            "local": pooled[1],  # to 4x4
            "blocks": torch.cat([*pooled, conv.flatten(1)], dim=1),
            "conv": conv.flatten(1),
            "fc": encoder.fc(conv.flatten(1)),
        }
    for layer, features in expected.items():
        dim = pickle.loads(pickle.dumps(fitted)).set_params(layer=layer)
        np.testing.assert_allclose(dim.transform(digits[0][:4]), features.numpy(), atol=1e-5)


@pytest.mark.parametrize("layer", ["bogus", "embedding", "pixels"])
def test_unknown_layer_after_fit_names_the_valid_ones(fitted, digits, layer):
    dim = pickle.loads(pickle.dumps(fitted)).set_params(layer=layer)
    with pytest.raises(ValueError, match=r"Unknown layer .*'local', 'blocks', 'conv', 'fc', 'y'"):
        dim.transform(digits[0][:4])


def test_history_reports_mi_in_nats_and_the_loss_is_their_combination(fitted):
    history = fitted.history_
    # JSD estimates are 0 for an uninformative critic and at most 2 log 2: a
    # critic that learned something scores above 0 (the raw eq. 4 is negative).
    for column in ("global_mi", "local_mi"):
        assert history[column].iloc[-1] > 0.05 and (history[column] <= 2 * np.log(2)).all()
    combined = -(0.5 * history["global_mi"] + history["local_mi"]) + 0.1 * history["prior"]
    np.testing.assert_allclose(history["train_loss"], combined, rtol=1e-5, atol=1e-6)


def test_same_seed_same_output(digits):
    a = DeepInfoMaxTransformer(**FAST).fit_transform(digits[0])
    b = DeepInfoMaxTransformer(**FAST).fit_transform(digits[0])
    c = DeepInfoMaxTransformer(**{**FAST, "random_state": 1}).fit_transform(digits[0])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_uint8_and_float_pixels_give_the_same_features(digits):
    X = (digits[0] * 16).clip(0, 255).astype(np.uint8)
    a = DeepInfoMaxTransformer(**FAST).fit(X)
    b = DeepInfoMaxTransformer(**FAST).fit(X / 255.0)
    scale_a, scale_b = a.net_.module_.encoder[0], b.net_.module_.encoder[0]
    x = torch.as_tensor(X[:50]).view(50, 1, 8, 8)
    torch.testing.assert_close(scale_a(x), scale_b(x / 255.0), rtol=1e-4, atol=1e-4)


def test_image_shapes(digits):
    X = digits[0]
    flat = DeepInfoMaxTransformer(**FAST).fit(X)
    assert flat.image_shape_ == (1, 8, 8)
    four_d = DeepInfoMaxTransformer(**FAST).fit(X.reshape(-1, 1, 8, 8))
    np.testing.assert_array_equal(four_d.transform(X.reshape(-1, 1, 8, 8)), flat.transform(X))
    three_d = DeepInfoMaxTransformer(**FAST).fit(X.reshape(-1, 8, 8))
    assert three_d.image_shape_ == (1, 8, 8)
    # Smooth RGB images are recognised; noise has no image structure: feature vectors.
    noise = np.random.default_rng(0).random((20, 3, 16, 16))
    smooth = noise + np.roll(noise, 1, 2) + np.roll(noise, 1, 3) + np.roll(noise, (1, 1), (2, 3))
    rgb = DeepInfoMaxTransformer(**FAST).fit(smooth.reshape(20, -1))
    assert rgb.image_shape_ == (3, 16, 16)
    assert DeepInfoMaxTransformer(**FAST).fit(noise.reshape(20, -1)).image_shape_ is None
    wide = DeepInfoMaxTransformer(image_shape=(1, 4, 16), **FAST).fit(X)
    assert wide.image_shape_ == (1, 4, 16)
    vectors = DeepInfoMaxTransformer(image_shape=None, **FAST).fit(X)
    assert vectors.image_shape_ is None and vectors.input_shape_ == (64,)
    assert DeepInfoMaxTransformer(**FAST).fit(X[:, :10]).image_shape_ is None


def test_dataframe_input_and_pandas_output(digits):
    df = pd.DataFrame(digits[0], columns=[f"px{i}" for i in range(64)])
    dim = DeepInfoMaxTransformer(layer="y", embedding_dim=8, **FAST).set_output(transform="pandas")
    out = dim.fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"deepinfomaxtransformer{i}" for i in range(8)]
    assert list(dim.feature_names_in_) == list(df.columns)


class TinyEncoder(nn.Module):
    """A user's encoder: returns (local map, y)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 64, 5)

    def forward(self, x):
        local = torch.relu(self.conv(x))
        return local, self.head(local.flatten(1))


def test_user_encoder(digits):
    encoder = TinyEncoder()
    before = encoder.conv.weight.detach().clone()
    dim = DeepInfoMaxTransformer(encoder=encoder, **FAST).fit(digits[0])
    assert dim.transform(digits[0]).shape == (300, 8 * 16)
    assert torch.equal(encoder.conv.weight, before), "fit must not train the user's instance"
    assert dim.set_params(layer="y").transform(digits[0]).shape == (300, 5)
    with pytest.raises(ValueError, match="layer='fc'"):
        dim.set_params(layer="fc").transform(digits[0])
    with pytest.raises(ValueError, match="layer='conv' needs an encoder .* last convolutional"):
        dim.set_params(layer="conv").transform(digits[0])


class FourOutputEncoder(TinyEncoder):
    """A user's encoder that also returns its last convolutional layer."""

    def forward(self, x):
        local = torch.relu(self.conv(x))  # (N, 8, 8, 8)
        conv = torch.nn.functional.max_pool2d(local, 4)  # (N, 8, 2, 2)
        fc = conv.flatten(1)  # (N, 32)
        return local, conv, fc, self.head(local.flatten(1))


def test_user_encoder_with_a_conv_layer(digits):
    dim = DeepInfoMaxTransformer(encoder=FourOutputEncoder(), layer="conv", **FAST)
    assert dim.fit_transform(digits[0]).shape == (300, 32)
    assert dim.set_params(layer="local").transform(digits[0]).shape == (300, 8 * 16)
    # Without an EncoderOutput naming its blocks, "blocks" pools local and conv.
    blocks = dim.set_params(layer="blocks").transform(digits[0])
    np.testing.assert_array_equal(
        blocks[:, : 8 * 16], dim.set_params(layer="local").transform(digits[0])
    )
    np.testing.assert_array_equal(
        blocks[:, 8 * 16 :], dim.set_params(layer="conv").transform(digits[0])
    )


@pytest.mark.parametrize("dump", ["joblib", "pickle"])
def test_persistence_round_trip(fitted, digits, tmp_path, dump):
    path = tmp_path / "dim.bin"
    if dump == "joblib":
        joblib.dump(fitted, path)
        loaded = joblib.load(path)
    else:
        path.write_bytes(pickle.dumps(fitted))
        loaded = pickle.loads(path.read_bytes())
    np.testing.assert_array_equal(loaded.transform(digits[0]), fitted.transform(digits[0]))


def test_model_saved_on_cuda_loads_on_cpu(fitted, digits):
    """skorch maps CUDA tensors to the CPU at load; simulate a CUDA-fitted net."""
    if torch.cuda.is_available():
        pytest.skip("the CPU-only path is what this test checks")
    fitted_copy = pickle.loads(pickle.dumps(fitted))
    fitted_copy.net_.device = "cuda"
    with pytest.warns(match="CUDA"):
        loaded = pickle.loads(pickle.dumps(fitted_copy))
    assert str(loaded.net_.device) == "cpu"
    np.testing.assert_array_equal(loaded.transform(digits[0]), fitted.transform(digits[0]))


@pytest.mark.gpu
def test_gpu_fit_then_cpu_transform(digits):
    dim = DeepInfoMaxTransformer(device="cuda", **FAST).fit(digits[0])
    Z = dim.transform(digits[0])
    dim.net_.module_.cpu()
    dim.net_.device = "cpu"
    np.testing.assert_allclose(dim.transform(digits[0]), Z, atol=1e-4)


def test_grid_search_in_a_pipeline(digits):
    X, y = digits
    pipe = Pipeline(
        [
            ("dim", DeepInfoMaxTransformer(max_epochs=1, batch_size=32, random_state=0)),
            ("svm", LinearSVC()),
        ]
    )
    grid = {"dim__alpha": [0.0, 0.5], "dim__beta": [1.0], "dim__gamma": [0.0, 0.1]}
    search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    raw_pixels = cross_val_score(LinearSVC(), X, y, cv=2).mean()  # 0.907
    assert search.best_score_ > raw_pixels + 0.02  # 0.95


def test_clone_keeps_params():
    dim = DeepInfoMaxTransformer(alpha=0.0, mi_estimator="infonce", image_shape=(1, 8, 8))
    assert clone(dim).get_params() == dim.get_params()


def test_verbose_prints_a_table_per_epoch(digits, capsys):
    DeepInfoMaxTransformer(verbose=1, **FAST).fit(digits[0][:64])
    out = capsys.readouterr().out
    assert "local_mi" in out and "discriminator" in out
    DeepInfoMaxTransformer(verbose=0, **FAST).fit(digits[0][:64])
    assert capsys.readouterr().out == ""
    DeepInfoMaxTransformer(verbose=2, **FAST).fit(digits[0][:64])
    captured = capsys.readouterr()
    assert "local_mi" in captured.out  # the table, and skorch's progress bar on stderr
    assert "it/s" in captured.err or "s/it" in captured.err


@pytest.mark.parametrize(
    ("shape", "local_shape"), [((1, 8, 8), (128, 8, 8)), ((1, 28, 28), (128, 7, 7))]
)
def test_conv_encoder_keeps_small_maps_and_shrinks_large_ones(shape, local_shape):
    out = ConvEncoder(shape, 16).eval()(torch.zeros(2, *shape))
    assert tuple(out.local.shape[1:]) == local_shape
    assert out.fc.shape == (2, 1024) and out.y.shape == (2, 16)


def test_paper_encoder_layers_at_32x32_and_width_scales_them():
    encoder = PaperEncoder32((3, 32, 32), 64)
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (4, 4), (2, 2)),
        (128, (4, 4), (2, 2)),
        (256, (4, 4), (2, 2)),
    ]
    half = ConvEncoder((2, 32, 32), 64, width=0.5).eval()
    out = half(torch.zeros(2, 2, 32, 32))
    assert tuple(out.local.shape[1:]) == (64, 8, 8)
    assert out.fc.shape == (2, 512) and out.y.shape == (2, 64)


def test_augment_draws_two_different_copies():
    x = torch.rand(8, 3, 16, 16) * 255
    augment = ImageAugment()
    a, b = augment(x), augment(x)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert (a - b).abs().flatten(1).amax(1).min() > 1.0  # every image differs
    assert ImageAugment(jitter=0.0, gray_p=0.0, crop_scale=(1.0, 1.0))(x).shape == x.shape


class CopyIndex(nn.Module):
    """An "augmentation" that adds 100 to the first copy and 200 to the second."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.float() + 100.0 * self.calls


class Identity(nn.Module):
    """local = the image, y = its mean: both tell which copy they came from."""

    def forward(self, x):
        return x, x.mean(dim=(2, 3))


class RecordingCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.pairs = []

    def forward(self, local, y):
        self.pairs.append((local.detach(), y.detach()))
        return torch.zeros(len(y), len(local), 1)


def test_augmented_dim_pairs_y_of_one_copy_with_m_of_the_other():
    module = DeepInfoMax(
        Identity(),
        (1, 4, 4),
        alpha=1.0,
        beta=0.0,
        gamma=0.0,
        mi_estimator="jsd",
        local_critic="dot",
        prior="uniform",
        augment=CopyIndex(),
    )
    module.global_critic = RecordingCritic()
    x = torch.rand(5, 1, 4, 4)
    terms = module.train()(x)
    (local_a, y_a), (local_b, y_b) = module.global_critic.pairs
    torch.testing.assert_close(y_a, x.mean(dim=(2, 3)) + 100)  # y of copy 1...
    torch.testing.assert_close(local_a, x + 200)  # ...against M of copy 2
    torch.testing.assert_close(y_b, x.mean(dim=(2, 3)) + 200)  # and the other way round
    torch.testing.assert_close(local_b, x + 100)
    assert terms["y"].shape == (10, 1)  # the prior sees both copies
    module.global_critic.pairs.clear()
    module.eval()(x)  # transform: the image itself, no copies
    ((local, y),) = module.global_critic.pairs
    torch.testing.assert_close(local, x)


def test_augmented_dim_fits_and_transforms_without_augmenting(digits):
    X = digits[0][:100]
    dim = DeepInfoMaxTransformer(augment=True, **{**FAST, "max_epochs": 1}).fit(X)
    assert {"global_mi", "local_mi", "prior"} <= set(dim.history_)
    np.testing.assert_array_equal(dim.transform(X), dim.transform(X))
    with pytest.raises(ValueError, match="augment=True needs images"):
        DeepInfoMaxTransformer(augment=True, image_shape=None, **FAST).fit(digits[0])


def test_augment_auto_is_on_for_images_and_off_for_feature_vectors(digits):
    X = digits[0][:64]
    params = {**FAST, "max_epochs": 1}
    images = DeepInfoMaxTransformer(**params).fit(X)
    vectors = DeepInfoMaxTransformer(image_shape=None, **params).fit(X)
    assert images.augment == vectors.augment == "auto"  # the parameter is left as given
    assert images.input_shape_ == (1, 8, 8)
    assert isinstance(images.net_.module_.augment, ImageAugment)
    assert vectors.input_shape_ == (64,) and vectors.net_.module_.augment is None
    plain = DeepInfoMaxTransformer(augment=False, **params).fit(X)
    assert plain.net_.module_.augment is None


@pytest.mark.parametrize("estimator", ["jsd", "dv", "infonce"])
@pytest.mark.parametrize(("alpha", "beta", "gamma"), [(0.5, 1.0, 0.1), (2.0, 0.0, 0.7)])
def test_total_loss_is_the_weighted_sum_of_its_terms(estimator, alpha, beta, gamma):
    torch.manual_seed(0)
    module = DeepInfoMax(
        ConvEncoder((1, 8, 8), 6),
        (1, 8, 8),
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        mi_estimator=estimator,
        local_critic="dot",
        prior="uniform",
    ).eval()
    x = torch.rand(5, 1, 8, 8)
    terms = module(x)

    # By hand, from the module's own networks and the paper's formulas.
    out = unpack(module.encoder(x))
    local, y = out.local, out.y
    global_mi = mi_bound(module.global_critic(local, y), estimator)
    local_mi = mi_bound(module.local_critic(local, y), estimator) if beta else 0.0
    logits = module.discriminator(torch.sigmoid(y))
    prior = torch.nn.functional.softplus(-logits).mean()  # -log D(sigmoid(y))
    expected = -alpha * global_mi - beta * local_mi + gamma * prior

    torch.testing.assert_close(terms["loss"], expected)
    torch.testing.assert_close(terms["global_mi"], global_mi)
    torch.testing.assert_close(terms["prior"], prior)
    assert ("local_mi" in terms) == bool(beta)
