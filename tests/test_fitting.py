"""sk_dim._fitting: a new fit and a continued one."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
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


def test_auto_epochs_are_a_step_budget_capped_at_150_epochs():
    cmc = CMCTransformer()
    steps, most = CMCTransformer._AUTO_EPOCHS
    # The two measured configurations: 150 epochs of 39 batches, 30 of 195.
    assert cmc._epochs_for(5000, 128) == 150 == most and cmc._epochs_for(25000, 128) == 30
    assert 150 * 39 == steps == 30 * 195
    assert cmc._epochs_for(50000, 128) == 15  # 390 batches: 5,850 steps
    assert cmc._epochs_for(60000, 256) == 25  # ceil(5850 / 234)
    assert cmc._epochs_for(1797, 128) == 150  # digits: 14 batches, capped
    assert cmc._epochs_for(100, 128) == 150  # one (capped) batch an epoch
    assert cmc.set_params(max_epochs=7)._epochs_for(5000, 128) == 7


def test_dim_auto_epochs_are_the_few_images_preset_then_a_step_budget():
    dim = DeepInfoMaxTransformer()
    steps, most = DeepInfoMaxTransformer._AUTO_EPOCHS
    preset = DeepInfoMaxTransformer.from_preset("few-images")
    # 5,000 images: the measured preset, 35 epochs of 78 batches of 64.
    assert dim._epochs_for(5000, 64) == preset.max_epochs == most == 35
    # More images never train fewer steps than the preset on 5,000.
    assert steps >= 35 * 78 and dim._epochs_for(6500, 64) == 35
    assert dim._epochs_for(25000, 64) == 9  # ceil(3500 / 390): the measured 9 epochs
    assert dim._epochs_for(50000, 64) == 5  # ceil(3500 / 781)
    assert dim._epochs_for(1437, 64) == dim._epochs_for(200, 64) == 35  # never more
    params = {k: v for k, v in preset.get_params().items() if dim.get_params()[k] != v}
    assert params == {"augment": True, "max_epochs": 35}  # "auto" for both in the defaults


def test_auto_epochs_follow_the_training_rows_of_each_fit(digits, monkeypatch):
    # A budget of 6 steps: 3 epochs of 2 batches on 32 rows, 6 of 1 on the 24 left
    # beside early stopping's held-out quarter, 2 of 3 more for a warm fit on 48.
    monkeypatch.setattr(CMCTransformer, "_AUTO_EPOCHS", (6, 150))
    params = dict(FAST, max_epochs="auto", n_negatives=8)
    cmc = CMCTransformer(**params).fit(digits[:32])
    assert cmc.n_iter_ == len(cmc.history_) == 3
    assert cmc.history_["train_batch_count"].tolist() == [2, 2, 2]
    held_out = CMCTransformer(**params, early_stopping=True, validation_fraction=0.25)
    assert held_out.fit(digits[:32]).n_iter_ == 6
    cmc.set_params(warm_start=True).fit(digits)
    assert cmc.n_iter_ == 3 + 2 and cmc.history_["train_batch_count"].tolist()[3:] == [3, 3]


@pytest.mark.parametrize("cls", [DeepInfoMaxTransformer, CMCTransformer])
def test_auto_is_the_only_named_number_of_epochs(cls, digits):
    with pytest.raises(InvalidParameterError, match="max_epochs"):
        cls(**{**FAST, "max_epochs": "long"}).fit(digits)
