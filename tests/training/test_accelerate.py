"""sk_dim.training.accelerate: training through Hugging Face Accelerate (AccelerateMixin)."""

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

import sk_dim
from sk_dim import CMCTransformer, DeepInfoMaxTransformer, load
from sk_dim.training import SelfSupervisedNet

pytest.importorskip("accelerate")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    (DeepInfoMaxTransformer, {"embedding_dim": 16, "gamma": 0.1}),  # with the discriminator
    (CMCTransformer, {"embedding_dim": 16, "n_negatives": 32}),  # with the memory bank
]


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:128]


@pytest.mark.parametrize("cls, params", CASES, ids=["dim", "cmc"])
def test_one_process_trains_exactly_like_plain_skorch(cls, params, digits):
    # float32 on both: "auto" is bfloat16 on some CPUs, the accelerator's default is float32.
    common = {
        "max_epochs": 2,
        "batch_size": 32,
        "random_state": 0,
        "precision": "float32",
        **params,
    }
    plain = cls(device="cpu", **common).fit(digits)
    accelerated = cls(accelerate={"cpu": True}, **common).fit(digits)

    np.testing.assert_allclose(accelerated.transform(digits), plain.transform(digits), atol=1e-6)
    pd.testing.assert_frame_equal(
        accelerated.history_.drop(columns="dur"), plain.history_.drop(columns="dur")
    )
    assert type(accelerated.net_) is SelfSupervisedNet  # the accelerator is gone
    assert accelerated.precision_ == "float32"


def test_the_fitted_transformer_pickles_and_loads_without_accelerate(digits, monkeypatch, tmp_path):
    dim = DeepInfoMaxTransformer(
        max_epochs=1, random_state=0, precision="float32", accelerate={"cpu": True}
    )
    expected = dim.fit(digits).transform(digits)
    buffer = io.BytesIO()
    joblib.dump(dim, buffer)
    sk_dim.save(dim, tmp_path / "dim.skdim")

    # Unpickling anything of accelerate's would import it and fail.
    for name in [m for m in sys.modules if m == "accelerate" or m.startswith("accelerate.")]:
        monkeypatch.setitem(sys.modules, name, None)
    buffer.seek(0)
    for restored in (joblib.load(buffer), load(tmp_path / "dim.skdim")):
        np.testing.assert_allclose(restored.transform(digits), expected, atol=1e-6)
        assert restored.accelerate == {"cpu": True}


def test_mixed_precision_belongs_to_the_accelerator(digits):
    dim = DeepInfoMaxTransformer(max_epochs=1, precision="bfloat16", accelerate={"cpu": True})
    with pytest.raises(ValueError, match="mixed_precision"):
        dim.fit(digits)


MULTI_PROCESS_SCRIPT = """
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sk_dim import CMCTransformer, DeepInfoMaxTransformer

X, _ = load_digits(return_X_y=True)
for cls, params in [
    (DeepInfoMaxTransformer, {"gamma": 0.1, "random_state": None}),
    (CMCTransformer, {"n_negatives": 32, "keep_memory_bank": True, "random_state": 0}),
]:
    est = cls(
        embedding_dim=16, max_epochs=2, batch_size=16, accelerate={"cpu": True}, **params
    ).fit(X[:128])
    # One seed, even from random_state=None: the same order, disjoint shards.
    seeds = [None] * dist.get_world_size()
    dist.all_gather_object(seeds, est.net_.seed)
    assert len(set(seeds)) == 1, seeds
    for key, value in est.net_.module_.state_dict().items():
        value = value.float().contiguous()
        copies = [torch.empty_like(value) for _ in range(dist.get_world_size())]
        dist.all_gather(copies, value)
        assert all(torch.equal(c, copies[0]) for c in copies), key
    # 64 rows per process, 16 a batch
    assert est.history_["train_batch_count"].tolist() == [4, 4], est.history_
    print("same model", cls.__name__, dist.get_rank())
"""


@pytest.mark.slow
def test_two_processes_end_with_the_same_model(tmp_path):
    # Gradients (the discriminator's too), memory banks and batch-norm
    # statistics are synchronised: every process holds the same fitted model.
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(MULTI_PROCESS_SCRIPT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd.append(str(script))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-20000:]
    assert result.stdout.count("same model") == 4
