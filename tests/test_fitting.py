"""sk_dim._fitting: a new fit and a continued one."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sk_dim import DeepInfoMaxTransformer
from sk_dim._version import versions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:48].astype(np.float32)


def test_batch_size_is_capped_at_the_number_of_samples_with_a_warning():
    est = DeepInfoMaxTransformer(batch_size=64)
    assert est._check_batch_size(64) == 64 and est._check_batch_size(100) == 64
    with pytest.warns(UserWarning, match=r"batch_size=64 is larger .*n_samples=40.*batch_size=40"):
        assert est._check_batch_size(40) == 40


def test_validation_rows_are_held_out_only_with_early_stopping():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    train, valid = DeepInfoMaxTransformer()._split_validation(X, seed=0)
    assert train is X and valid is None
    est = DeepInfoMaxTransformer(early_stopping=True, validation_fraction=0.25)
    train, valid = est._split_validation(X, seed=0)
    assert len(train) == 15 and len(valid) == 5
    rows = np.concatenate([train, valid])[:, 0] / 2
    assert sorted(rows.tolist()) == list(range(20))  # every row once, in one part


def test_the_training_runtime_records_what_auto_meant():
    est = DeepInfoMaxTransformer(device="cpu", precision="float32", channels_last="auto")
    runtime = est._training_runtime()
    assert (runtime.device, runtime.precision, runtime.channels_last) == ("cpu", "float32", False)
    assert est.precision_ == "float32" and est.channels_last_ is False


def test_a_new_fit_records_its_shapes_module_parameters_and_versions(digits):
    est = DeepInfoMaxTransformer(**FAST).fit(digits)
    assert est.input_shape_ == est.image_shape_ == (1, 8, 8)
    assert set(est._module_params) == set(est._MODULE_PARAMS)
    assert est._module_params["embedding_dim"] == 8 and est._module_params["image_shape"] == "auto"
    assert est.versions_ == versions()
    assert est.n_iter_ == 1 and est.set_params(layer="y").transform(digits).shape == (48, 8)


def test_a_continued_fit_adds_epochs_and_refuses_accelerate(digits):
    est = DeepInfoMaxTransformer(warm_start=True, **FAST).fit(digits)
    net = est.net_
    est.fit(digits)
    assert est.n_iter_ == 2 and est.net_ is not net  # trained on a copy, then kept
    est.set_params(accelerate=True)
    with pytest.raises(ValueError, match="warm_start and partial_fit continue training without"):
        est.fit(digits)
    assert est.n_iter_ == 2
