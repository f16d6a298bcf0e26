"""sk_dim._base: the public seams that evaluation, persistence and custom training loops use."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.modules.base import SelfSupervisedModule

pytestmark = pytest.mark.filterwarnings("ignore:n_negatives=:UserWarning")

# float32: a feature extractor run by hand computes in float32 ("auto" is bfloat16 on some CPUs).
FAST = dict(embedding_dim=8, max_epochs=1, batch_size=32, random_state=0, precision="float32")
CLASSES = {"dim": DeepInfoMaxTransformer, "cmc": CMCTransformer}


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:96].astype(np.float32)


@pytest.fixture(scope="module")
def cmc(digits):
    return CMCTransformer(**FAST).fit(digits)


@pytest.fixture(scope="module")
def fitted(digits):
    return {name: cls(**FAST).fit(digits) for name, cls in CLASSES.items()}


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("layer", [None, "fc"])
def test_feature_extractor_computes_what_transform_returns(fitted, digits, name, layer):
    est = fitted[name]
    extractor = est.feature_extractor(layer)
    with torch.no_grad():
        Z = extractor(est.to_tensor(digits)).numpy()
    expected = (
        est.transform(digits) if layer is None else est.set_params(layer=layer).transform(digits)
    )
    est.set_params(layer="local")
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-6)


def test_feature_extractor_is_an_independent_copy(fitted, digits):
    est = fitted["dim"]
    before = est.transform(digits[:8])
    extractor = est.feature_extractor("y")
    with torch.no_grad():
        for param in extractor.parameters():
            param.add_(1.0)
    np.testing.assert_array_equal(est.transform(digits[:8]), before)


def test_feature_extractor_rejects_an_unknown_layer(fitted):
    with pytest.raises(ValueError, match="Unknown layer 'pixels'"):
        fitted["dim"].feature_extractor("pixels")


def test_to_tensor_validates_as_transform_does(fitted, digits):
    est = fitted["dim"]
    assert est.to_tensor(digits).shape == (96, 1, 8, 8)
    with pytest.raises(ValueError, match="features"):
        est.to_tensor(digits[:, :10])


@pytest.mark.parametrize("name", CLASSES)
def test_make_module_trains_in_a_loop_of_your_own(digits, name):
    est = CLASSES[name](**FAST)
    module = est.build_module(digits)
    assert isinstance(module, SelfSupervisedModule) and not hasattr(est, "net_")
    x = torch.as_tensor(digits[:32]).view(32, 1, 8, 8)
    optimizer = torch.optim.Adam(module.encoder_parameters(), lr=1e-3)
    loss = module(x, torch.arange(32))["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.encoder_parameters())


@pytest.mark.parametrize("name", CLASSES)
def test_load_inference_state_rebuilds_from_the_inference_state(fitted, digits, name):
    est = fitted[name]
    fitted_attributes = {
        k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")
    }
    fitted_attributes.pop("net_")
    state = est.inference_state()
    assert not any(key.startswith("contrast.") for key in state)  # no memory bank

    def unfitted_copy():
        copy = clone(est)
        copy.__dict__.update(fitted_attributes)
        return copy

    copy = unfitted_copy()
    copy.history_ = est.history_
    copy.load_inference_state(state)
    np.testing.assert_array_equal(copy.transform(digits), est.transform(digits))
    assert copy.n_iter_ == est.n_iter_
    key = next(k for k, v in state.items() if v.ndim == 2)  # a linear layer's weight
    broken = {**state, key: state[key][:, :1]}
    with pytest.raises(ValueError, match="the weights do not fit the network: size mismatch"):
        unfitted_copy().load_inference_state(broken)


def test_load_inference_state_is_the_seam(cmc, digits):
    # What load does once the file is checked: the fitted attributes on a new instance,
    # then the estimator's own persistence-agnostic load_inference_state.
    X = digits
    state = cmc.inference_state()
    fitted = {k: v for k, v in vars(cmc).items() if k.endswith("_") and not k.startswith("_")}
    fitted.pop("net_")
    copy_ = clone(cmc)
    copy_.__dict__.update(fitted)
    copy_.history_ = cmc.history_
    copy_.load_inference_state(state)
    np.testing.assert_array_equal(copy_.transform(X), cmc.transform(X))
    assert copy_.n_iter_ == cmc.n_iter_
    key = next(k for k, v in state.items() if v.ndim == 2)  # a linear layer's weight
    broken = clone(cmc)
    broken.__dict__.update(fitted)
    with pytest.raises(ValueError, match="the weights do not fit the network: size mismatch"):
        broken.load_inference_state({**state, key: state[key][:, :1]})
    assert not hasattr(broken, "net_")
