"""sk_dim._presets: presets, listed with what they set and cost."""

import numpy as np
import pytest

from sk_dim import CMCTransformer, DeepInfoMaxTransformer


@pytest.mark.parametrize("cls", [DeepInfoMaxTransformer, CMCTransformer])
def test_presets_are_listed_with_what_they_set_and_cost(cls):
    table = cls.presets()
    assert list(table.columns) == ["params", "use", "cost"]
    assert "few-images" in table.index
    for name, row in table.iterrows():
        est = cls.from_preset(name, random_state=3)
        assert {k: est.get_params()[k] for k in row["params"]} == row["params"]
        assert est.random_state == 3
        assert "s on" in row["cost"] and row["use"]
    with pytest.raises(ValueError, match="has no preset 'nope'; the presets are"):
        cls.from_preset("nope")


def test_presets_listing_is_a_copy():
    table = DeepInfoMaxTransformer.presets()
    table.loc["few-images", "params"]["max_epochs"] = 1
    assert DeepInfoMaxTransformer.from_preset("few-images").max_epochs == 35
    assert np.all(DeepInfoMaxTransformer.presets().index == table.index)
