"""Transformers fitted once for the persistence tests, their saved files, and edits of them."""

import json
import zipfile

import pandas as pd
import pytest
from safetensors.torch import load as load_safetensors
from sklearn.datasets import load_digits

from sk_dim import CMCTransformer, DeepInfoMaxTransformer
from sk_dim.persistence import save

FAST = dict(embedding_dim=8, max_epochs=1, batch_size=16, random_state=0)
TINY = dict(max_epochs=1, batch_size=32, device="cpu", precision="float32", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return pd.DataFrame(X[:64], columns=[f"px{i}" for i in range(64)])


@pytest.fixture(scope="module")
def fitted(digits):
    return DeepInfoMaxTransformer(image_shape=(1, 8, 8), **FAST).fit(digits)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "dim.skdim"
    save(fitted, path)
    return path


@pytest.fixture(scope="module")
def dim(digits):
    return DeepInfoMaxTransformer(**TINY).fit(digits)


@pytest.fixture(scope="module")
def cmc(digits):
    return CMCTransformer(**TINY).fit(digits)


class ZipEdits:
    """Reads the entries of a saved file and writes edited copies under ``folder``."""

    def __init__(self, folder):
        self.folder = folder

    @staticmethod
    def entries(path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    def rewrite(self, entries: dict, name: str = "tampered.skdim"):
        """A zip file of ``entries`` ({name: bytes or str})."""
        out = self.folder / name
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for entry, data in entries.items():
                archive.writestr(entry, data)
        return out

    def tampered(self, path, edit, prefix: str = ""):
        """A copy of ``path`` whose ``{prefix}metadata.json`` went through ``edit(metadata)``."""
        entries = self.entries(path)
        metadata = json.loads(entries[f"{prefix}metadata.json"])
        edit(metadata)
        entries[f"{prefix}metadata.json"] = json.dumps(metadata)
        return self.rewrite(entries)

    def weights(self, path) -> dict:
        """The state dict stored in ``path``."""
        return load_safetensors(self.entries(path)["weights.safetensors"])


@pytest.fixture
def zips(tmp_path):
    return ZipEdits(tmp_path)
