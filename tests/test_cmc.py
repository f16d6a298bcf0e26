import copy
import pickle
import warnings

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

from sk_dim import CMCTransformer
from sk_dim.modules.encoders import MLPEncoder
from sk_dim.modules.multiview import MultiviewCoding
from sk_dim.views import ColorViews, ColumnViews, CropViews

# float32: the layer tests recompute features by hand in float32 ("auto" is bfloat16 on
# some CPUs).
FAST = dict(embedding_dim=16, max_epochs=2, batch_size=32, random_state=0, precision="float32")


# Small test sets are below the default n_negatives; test_negatives_cap checks the warning.
pytestmark = [
    pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:200], y[:200]


@pytest.fixture(scope="module")
def rgb():
    """Coloured blobs, uint8 RGB 3x16x16, flattened."""
    rng = np.random.default_rng(0)
    n, side = 64, 16
    yy, xx = np.mgrid[:side, :side]
    images = np.empty((n, 3, side, side))
    for i in range(n):
        cy, cx, r = rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(2, 6)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(float)
        colour, background = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        images[i] = disc * colour[:, None, None] + (1 - disc) * background[:, None, None]
    return (images * 255).round().astype(np.uint8).reshape(n, -1)


@pytest.fixture(scope="module")
def fitted(digits):
    return CMCTransformer(**FAST).fit(digits[0])


def test_fit_lowers_the_loss(digits):
    cmc = CMCTransformer(embedding_dim=16, max_epochs=5, batch_size=32, loss="softmax")
    cmc.set_params(random_state=0, image_shape=None).fit(digits[0])
    loss = cmc.history_["train_loss"]
    assert loss.iloc[-1] < loss.iloc[0] - 1.0
    assert {"contrast_0_1", "contrast_1_0", "dur"} <= set(cmc.history_)
    total = cmc.history_[["contrast_0_1", "contrast_1_0"]].sum(axis=1)
    np.testing.assert_allclose(total, loss, rtol=1e-5)


def _train_module(columns, X, steps=40, seed=0):
    torch.manual_seed(seed)
    x = torch.as_tensor(X, dtype=torch.float32)
    views = ColumnViews(x.mean(0), x.std(0), columns)
    encoders = [MLPEncoder(len(c), 8, hidden=32) for c in columns]
    module = MultiviewCoding(views, (X.shape[1],), encoders, embedding_dim=8, loss="softmax")
    module.prepare_contrast(32, n_rows=len(X))  # a memory bank, momentum 0.5
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(steps):
        index = torch.randperm(len(X))[:64]
        loss = module(x[index], index)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        return module(x[:128], torch.arange(128))["loss"].item()


def test_the_module_assembles_itself_from_the_views_and_the_encoder_parameter():
    views = ColorViews("lab", 1 / 255, augment=True, crop_scale=(0.6, 1.0))
    module = MultiviewCoding(views, (3, 16, 16), "auto", embedding_dim=12, temperature=0.2)
    # One half-width convolutional encoder per view: L (1 channel) and ab (2).
    assert [enc.local[0].in_channels for enc in module.encoders] == [1, 2]
    assert module.encoders[0].head.in_features == 512  # half of 1024 units
    assert module.embedding_dim == 12 and module.contrast is None
    assert views.training  # probed in eval mode, left for training
    with pytest.raises(ValueError, match="one per view"):
        MultiviewCoding(views, (3, 16, 16), [MLPEncoder(4, 8)], embedding_dim=8)
    with pytest.raises(ValueError, match="needs image views"):
        MultiviewCoding(ColumnViews(torch.zeros(4), torch.ones(4), [[0, 1], [2, 3]]), (4,),
                        "conv", embedding_dim=8)  # fmt: skip

    # The contrast follows the data: a bank per row count (kept while it fits), or a queue.
    module.prepare_contrast(5, n_rows=20)
    bank = module.contrast
    assert bank.bank.memory.shape == (2, 20, 12) and bank.n_negatives == 5
    assert bank.temperature == 0.2 and bank.bank.momentum == 0.5 and not bank.queue
    module.prepare_contrast(5, n_rows=20)
    assert module.contrast is bank
    module.prepare_contrast(7)
    assert module.contrast.queue and module.contrast.bank.n_samples == 7
    assert module.contrast.bank.momentum == 0.0 and module.key_encoders is not None
    module.prepare_contrast(5, n_rows=30)
    assert module.contrast.bank.n_samples == 30 and module.key_encoders is None


def test_identical_views_are_easier_than_independent_ones():
    X = np.random.default_rng(0).normal(size=(256, 8))
    identical = _train_module([[0, 1, 2, 3], [0, 1, 2, 3]], X)
    independent = _train_module([[0, 1, 2, 3], [4, 5, 6, 7]], X)
    # Chance level is 2 * log(33) = 7.0 for two directions with 32 negatives.
    assert independent > 6.0
    assert identical < independent - 2.0


def test_colour_views_on_rgb(rgb):
    cmc = CMCTransformer(**FAST).fit(rgb)
    module = cmc.net_.module_
    assert cmc.views_ == "lab" and cmc.n_views_ == 2 and cmc.image_shape_ == (3, 16, 16)
    assert isinstance(module.views, ColorViews)
    assert module.views.scale.item() == pytest.approx(1 / 255)
    in_channels = [enc.local[0].in_channels for enc in module.encoders]
    assert in_channels == [1, 2]  # L and ab
    # The default layer, "blocks": half-width encoders' blocks (32, 64, 128), 4x4 grid each.
    assert cmc.transform(rgb).shape == (64, 2 * (32 + 64 + 128) * 16)
    # Floats in [0, 1] are not rescaled, and give the same colour views.
    as_float = CMCTransformer(**FAST).fit(rgb / 255.0)
    assert as_float.net_.module_.views.scale.item() == 1.0
    x = torch.as_tensor(rgb[:8]).view(8, 3, 16, 16)
    module.views.eval()
    as_float.net_.module_.views.eval()
    for a, b in zip(module.views(x), as_float.net_.module_.views(x / 255.0), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    ycbcr = CMCTransformer(views="ycbcr", **FAST).fit(rgb)
    assert ycbcr.net_.module_.views.kind == "ycbcr"


def test_augmentation_only_in_training(rgb):
    cmc = CMCTransformer(**FAST).fit(rgb)
    views = cmc.net_.module_.views
    x = torch.as_tensor(rgb[:8]).view(8, 3, 16, 16)
    views.eval()
    torch.testing.assert_close(views(x)[0], views(x)[0])
    views.train()
    assert not torch.equal(views(x)[0], views(x)[0])
    crops = CropViews(torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    first, second = crops(x)
    assert not torch.equal(first, second), "each crop view gets its own augmentation"
    crops.eval()
    first, second = crops(x)
    assert torch.equal(first, second)


def test_crop_scale_sets_how_much_of_the_image_a_view_keeps(rgb):
    x = torch.as_tensor(rgb).view(-1, 3, 16, 16)

    def change(crop_scale):
        cmc = CMCTransformer(crop_scale=crop_scale, color_jitter=0.0, **FAST)
        views = cmc.fit(rgb).net_.module_.views
        assert views.crop_scale == crop_scale
        plain = views.eval()(x)[0]
        torch.manual_seed(0)  # the same flips for both scales
        return (views.train()(x)[0] - plain).abs().mean().item()

    assert change((0.05, 0.1)) > 1.5 * change((0.9, 1.0))


def test_color_jitter_recolours_the_image_shared_by_both_views_without_graying_it(rgb):
    x = torch.as_tensor(rgb).view(-1, 3, 16, 16).repeat(8, 1, 1, 1)  # 512 colourful images
    gray_image = torch.full((1, 3, 16, 16), 128, dtype=torch.uint8)
    gray_chroma = ColorViews("lab", 1 / 255).eval()(gray_image)[1][:, :, :1, :1]  # (1, 2, 1, 1)

    def augmented(color_jitter):
        views = ColorViews("lab", 1 / 255, crop_scale=(1.0, 1.0), color_jitter=color_jitter)
        torch.manual_seed(0)
        luma, chroma = views.train()(x)
        is_gray = (chroma - gray_chroma).abs().amax(dim=(1, 2, 3)) < 1e-4
        return is_gray.float().mean().item(), luma

    gray, jittered_luma = augmented(0.4)
    none, plain_luma = augmented(0.0)
    assert none == 0.0
    # No image is turned gray (its ab view would carry nothing to match); 20% were
    # before issue 31. Brightness can still clip an image that is light all over to white.
    assert gray < 0.01
    # Brightness and contrast move the luma beyond what the flips alone change.
    sorted_luma = [luma.flatten(1).sort(dim=1).values for luma in (jittered_luma, plain_luma)]
    assert (sorted_luma[0] - sorted_luma[1]).abs().mean() > 0.05 * plain_luma.std()
    # Transform never augments.
    views = ColorViews("lab", 1 / 255, color_jitter=0.4).eval()
    torch.testing.assert_close(views(x)[1], ColorViews("lab", 1 / 255).eval()(x)[1])


def test_column_views_by_position_and_name(digits):
    X = digits[0]
    cmc = CMCTransformer(views=[list(range(32)), list(range(32, 64))], layer="embedding", **FAST)
    assert cmc.fit_transform(X).shape == (200, 32)
    assert [type(e).__name__ for e in cmc.net_.module_.encoders] == ["MLPEncoder"] * 2
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    named = CMCTransformer(views=[["px0", "px1", "px2"], ["px10", "px20"]], **FAST).fit(df)
    assert named.views_ == [[0, 1, 2], [10, 20]]
    with pytest.raises(ValueError, match="out of range"):
        CMCTransformer(views=[[0, 1], [2, 64]], **FAST).fit(X)
    with pytest.raises(ValueError, match="no column names"):
        CMCTransformer(views=[["a"], ["b"]], **FAST).fit(X)
    with pytest.raises(ValueError, match="'nope'"):
        CMCTransformer(views=[["px0"], ["nope"]], **FAST).fit(df)


def test_default_views_for_vectors_and_grayscale(digits):
    X = digits[0]
    halves = CMCTransformer(image_shape=None, **FAST).fit(X)
    assert halves.views_ == [list(range(32)), list(range(32, 64))]
    one = CMCTransformer(**FAST).fit(X[:, :1])
    assert one.views_ == [[0], [0]]
    gray = CMCTransformer(**FAST).fit(X)
    assert gray.views_ == "crops" and isinstance(gray.net_.module_.views, CropViews)


def top_rows(x):
    return x[:, :, :4, :]


def bottom_rows_flat(x):
    return x[:, :, 4:, :].flatten(1)


def test_callable_views(digits):
    cmc = CMCTransformer(views=[top_rows, bottom_rows_flat], **FAST).fit(digits[0])
    encoders = cmc.net_.module_.encoders
    assert [type(e).__name__ for e in encoders] == ["ConvEncoder", "MLPEncoder"]
    assert cmc.set_params(layer="local").transform(digits[0]).shape == (200, 1024 + 512)
    # Each view is standardised with statistics measured at fit.
    views = cmc.net_.module_.views
    z = views(torch.as_tensor(digits[0], dtype=torch.float32).view(-1, 1, 8, 8))
    std = z[1].std(0)
    assert abs(z[1].mean().item()) < 1e-4
    torch.testing.assert_close(std[std > 0], torch.ones_like(std[std > 0]), rtol=0, atol=0.05)
    loaded = pickle.loads(pickle.dumps(cmc))
    np.testing.assert_array_equal(loaded.transform(digits[0]), cmc.transform(digits[0]))


@pytest.mark.parametrize(("graph", "n_terms"), [("core", 4), ("full", 6)])
def test_three_views_graphs(digits, graph, n_terms):
    views = [list(range(0, 20)), list(range(20, 40)), list(range(40, 64))]
    cmc = CMCTransformer(views=views, graph=graph, layer="embedding", **FAST).fit(digits[0])
    terms = [c for c in cmc.history_ if c.startswith("contrast_")]
    assert len(terms) == n_terms
    assert ("contrast_1_2" in terms) == (graph == "full")
    assert cmc.transform(digits[0]).shape == (200, 3 * 16)


def test_negatives_cap(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # capped quietly: grid-search folds would warn each fit
        cmc = CMCTransformer(**FAST).fit(digits[0][:50])
    assert cmc.n_negatives_ == 49
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CMCTransformer(n_negatives=49, **FAST).fit(digits[0][:50]).n_negatives_ == 49


def test_memory_bank_is_dropped_after_fit(digits):
    X = np.tile(digits[0], (4, 1))  # 800 samples
    small = CMCTransformer(image_shape=None, **FAST).fit(X[:100])
    large = CMCTransformer(image_shape=None, **FAST).fit(X)
    assert large.net_.module_.contrast is None
    size_small, size_large = len(pickle.dumps(small)), len(pickle.dumps(large))
    assert abs(size_large - size_small) < 20_000, (size_small, size_large)
    kept = CMCTransformer(image_shape=None, keep_memory_bank=True, **FAST).fit(X)
    assert kept.net_.module_.contrast.bank.memory.shape == (2, 800, 16)
    # 2 views x 700 more samples x 16 floats
    assert len(pickle.dumps(kept)) - size_large > 2 * 700 * 16 * 4
    # The kept bank lets training continue through the skorch net.
    data = torch.as_tensor(X, dtype=torch.float32)
    kept.net_.partial_fit(data)
    assert len(kept.net_.history) == 4  # max_epochs more
    with pytest.raises(RuntimeError, match="keep_memory_bank"):
        large.net_.partial_fit(data)
    # The estimator's warm start builds a new bank when the last was dropped.
    large.set_params(warm_start=True).fit(X)
    assert large.n_iter_ == 4 and large.net_.module_.contrast is None


@pytest.mark.parametrize("dump", ["joblib", "pickle"])
def test_persistence_round_trip(fitted, digits, tmp_path, dump):
    path = tmp_path / "cmc.bin"
    if dump == "joblib":
        joblib.dump(fitted, path)
        loaded = joblib.load(path)
    else:
        path.write_bytes(pickle.dumps(fitted))
        loaded = pickle.loads(path.read_bytes())
    np.testing.assert_array_equal(loaded.transform(digits[0]), fitted.transform(digits[0]))


def test_same_seed_same_output(digits, fitted):
    a = fitted.transform(digits[0])
    b = CMCTransformer(**FAST).fit_transform(digits[0])
    c = CMCTransformer(**{**FAST, "random_state": 1}).fit_transform(digits[0])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize(
    ("layer", "view", "image_width", "vector_width"),
    [
        ("local", None, 2 * 1024, 2 * 512),
        ("conv", None, 2 * 2048, None),  # 128 x 4 x 4 per view; no conv layer in an MLP
        # (32 + 64 + 128) x 4 x 4 per view; an MLP's only map is its first hidden layer
        ("blocks", None, 2 * 3584, 2 * 512),
        ("fc", None, 2 * 512, 2 * 512),
        ("embedding", None, 2 * 16, 2 * 16),
        ("local", 1, 1024, 512),
        ("embedding", 0, 16, 16),
    ],
)
def test_layer_widths(fitted, digits, layer, view, image_width, vector_width):
    X = digits[0]
    Z = clone(fitted).set_params(layer=layer, view=view).fit_transform(X)
    assert Z.shape == (200, image_width) and Z.dtype == np.float32
    vectors = CMCTransformer(image_shape=None, view=view, **FAST).fit(X)
    vectors.set_params(layer=layer)
    if vector_width is None:
        with pytest.raises(ValueError, match="layer='conv' needs an encoder"):
            vectors.transform(X)
        return
    assert vectors.transform(X).shape == (200, vector_width)
    assert vectors.get_feature_names_out()[0] == "cmctransformer0"
    if layer == "embedding":
        np.testing.assert_allclose(np.linalg.norm(Z[:, :16], axis=1), 1.0, rtol=1e-5)


def test_conv_layer_is_the_last_convolution(fitted, digits):
    x = torch.as_tensor(digits[0][:4], dtype=torch.float32).view(4, 1, 8, 8)
    module = fitted.net_.module_.eval()
    with torch.no_grad():
        outs = module.encode(x)
        expected = torch.cat(
            [enc.top(out.local).flatten(1) for enc, out in zip(module.encoders, outs, strict=True)],
            dim=1,
        )
    Z = copy.deepcopy(fitted).set_params(layer="conv").transform(digits[0][:4])
    np.testing.assert_allclose(Z, expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["y", "bogus"])
def test_unknown_layer_after_fit_names_the_valid_ones(fitted, digits, layer):
    with pytest.raises(
        ValueError, match=r"Unknown layer .*'local', 'blocks', 'conv', 'fc', 'embedding'"
    ):
        copy.deepcopy(fitted).set_params(layer=layer).transform(digits[0][:4])


def test_view_and_layer_can_change_after_fit(fitted, digits):
    both = fitted.transform(digits[0])
    first = copy.deepcopy(fitted).set_params(view=0)
    np.testing.assert_array_equal(first.transform(digits[0]), both[:, : both.shape[1] // 2])
    with pytest.raises(ValueError, match="view=2 is out of range"):
        first.set_params(view=2).transform(digits[0])


def test_dataframe_input_and_pandas_output(digits):
    df = pd.DataFrame(digits[0], columns=[f"px{i}" for i in range(64)])
    cmc = CMCTransformer(layer="embedding", **FAST).set_output(transform="pandas")
    out = cmc.fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"cmctransformer{i}" for i in range(32)]


class TinyEncoder(nn.Module):
    """A user's encoder for any channel count: returns (local map, y)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.LazyConv2d(8, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        local = torch.relu(self.conv(x))
        return local, self.head(local.mean((2, 3)))


def test_user_encoders(rgb):
    encoder = nn.Sequential()  # placeholder to check the list length error below
    cmc = CMCTransformer(encoder=TinyEncoder(), **FAST).fit(rgb)
    a, b = cmc.net_.module_.encoders
    assert a is not b and a.conv.weight.shape[1] == 1 and b.conv.weight.shape[1] == 2
    assert cmc.transform(rgb).shape == (64, 2 * 8 * 16)  # 8 channels on a 4x4 grid
    assert cmc.set_params(layer="embedding").transform(rgb).shape == (64, 10)
    user = [TinyEncoder(), TinyEncoder()]
    listed = CMCTransformer(encoder=user, **FAST).fit(rgb)
    assert listed.net_.module_.encoders[0] is not user[0]
    with pytest.raises(ValueError, match="one per view"):
        CMCTransformer(encoder=[encoder], **FAST).fit(rgb)


def test_grid_search_in_a_pipeline():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    cmc = CMCTransformer(embedding_dim=16, max_epochs=1, batch_size=32, random_state=0)
    pipe = Pipeline([("cmc", cmc), ("svm", LinearSVC())])
    grid = {"cmc__temperature": [0.07, 0.5], "cmc__n_negatives": [16, 64]}
    search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    raw_pixels = cross_val_score(LinearSVC(), X, y, cv=2).mean()  # 0.907
    assert search.best_score_ > raw_pixels + 0.02  # 0.95


def test_clone_keeps_params():
    cmc = CMCTransformer(views=[[0], [1, 2]], loss="softmax", graph="full", momentum=0.9)
    assert clone(cmc).get_params() == cmc.get_params()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"views": "rgb"}, "views"),
        ({"loss": "infonce"}, "loss"),
        ({"graph": "star"}, "graph"),
        ({"layer": "y"}, "layer"),
        ({"temperature": 0.0}, "temperature"),
        ({"momentum": 1.5}, "momentum"),
        ({"color_jitter": 1.0}, "color_jitter"),
        ({"views": "lab"}, "needs RGB images.*views='crops'"),
        ({"views": [[0, 1]]}, "at least 2 views"),
        ({"views": [[0], top_rows]}, "mixes"),
        ({"view": 2}, "view=2 is out of range"),
        ({"encoder": "conv", "image_shape": None}, "needs image"),
    ],
)
def test_bad_parameters(digits, params, message):
    with pytest.raises(ValueError, match=message):
        CMCTransformer(**{**FAST, **params}).fit(digits[0])


def test_bad_data(digits, rgb):
    X = digits[0].copy()
    X[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CMCTransformer(**FAST).fit(X)
    with pytest.raises(ValueError, match=r"\[0, 1\] or \[0, 255\]"):
        CMCTransformer(**FAST).fit(rgb - 10.0)
    fitted = CMCTransformer(**FAST).fit(rgb)
    with pytest.raises(ValueError, match="768 features"):
        fitted.transform(rgb[:, :100])
