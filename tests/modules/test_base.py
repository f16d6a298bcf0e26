"""sk_dim.modules.base: the interface the training engine sees, and its defaults."""

import pytest
import torch
from torch import nn

from sk_dim.modules.base import LayerFeatures, SelfSupervisedModule


class Halves(SelfSupervisedModule):
    """A linear module with an optional second player: the defaults of the interface."""

    def __init__(self, with_discriminator: bool):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        if with_discriminator:
            self.discriminator = nn.Linear(2, 1)

    def forward(self, x, index):
        return {"loss": self.linear(x).pow(2).mean(), "rows": index.float().sum()}

    def features(self, x, layer, pool_size):
        out = self.linear(x)
        return out[:, :pool_size] if layer == "first" else out


def test_the_main_optimizer_trains_all_but_the_discriminator():
    plain, with_disc = Halves(False), Halves(True)
    assert plain.discriminator is None
    assert plain.encoder_parameters() == list(plain.parameters())
    ids = set(map(id, with_disc.encoder_parameters()))
    assert ids == set(map(id, with_disc.linear.parameters()))
    assert not ids & set(map(id, with_disc.discriminator.parameters()))
    # The discriminator is a submodule: it is saved and moved with the module.
    assert "discriminator.weight" in with_disc.state_dict()


def test_validation_terms_default_to_forward():
    module = Halves(False)
    x, index = torch.randn(3, 4), torch.tensor([4, 0, 2])
    terms = module.validation_terms(x, index, torch.Generator())
    expected = module(x, index)
    assert terms.keys() == expected.keys()
    torch.testing.assert_close(terms["loss"], expected["loss"])
    assert terms["rows"].item() == 6.0


def test_what_a_module_must_implement_raises_until_it_does():
    bare = SelfSupervisedModule()
    with pytest.raises(NotImplementedError):
        bare(torch.zeros(1), torch.zeros(1))
    with pytest.raises(NotImplementedError):
        bare.features(torch.zeros(1), "y", 1)
    with pytest.raises(NotImplementedError, match="^Halves has no discriminator$"):
        Halves(False).discriminator_step_loss({})


def test_compile_targets_gather_and_training_state_defaults():
    module = Halves(False)
    assert module.compile_targets() == [module]
    assert module.set_gather(lambda t: t) is None
    assert SelfSupervisedModule.training_state_prefixes == ()


def test_the_inference_copy_is_independent():
    module = Halves(True)
    copy = module.inference_copy()
    assert copy is not module and copy.linear.weight is not module.linear.weight
    torch.testing.assert_close(copy.linear.weight, module.linear.weight)
    with torch.no_grad():
        copy.linear.weight.add_(1.0)
    assert not torch.equal(copy.linear.weight, module.linear.weight)


def test_layer_features_is_a_module_calling_features_with_its_options():
    module = Halves(False)
    options = {"layer": "first", "pool_size": 1}
    layer = LayerFeatures(module, options)
    options["pool_size"] = 2  # copied: later changes to the dict do not leak in
    x = torch.randn(5, 4)
    torch.testing.assert_close(layer(x), module.linear(x)[:, :1])
    # The module is a submodule: fine-tuning sees its parameters.
    assert set(map(id, layer.parameters())) == set(map(id, module.parameters()))
