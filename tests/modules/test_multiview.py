"""sk_dim.modules.multiview: CMC's module: key encoders and queue (MoCo), held-out terms."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from sk_dim import CMCTransformer
from sk_dim.losses import MemoryBank, MultiviewContrast
from sk_dim.modules.encoders import MLPEncoder, unpack
from sk_dim.modules.multiview import MultiviewCoding, key_groups
from sk_dim.views import ColumnViews, CropViews

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(embedding_dim=16, batch_size=32, random_state=0, precision="float32")


def _queue_module(queue_length=16, loss="softmax", encoder=None, width=6):
    """Two column views of a (N, 2 * width) input, an MLP each, and a queue contrast."""
    torch.manual_seed(0)
    columns = [list(range(width)), list(range(width, 2 * width))]
    views = ColumnViews(torch.zeros(2 * width), torch.ones(2 * width), columns)
    encoders = [encoder or MLPEncoder(width, 8, hidden=16) for _ in columns]
    module = MultiviewCoding(views, (2 * width,), encoders, embedding_dim=8)
    bank = MemoryBank(
        queue_length, module.embedding_dim, momentum=0.0, generator=torch.Generator().manual_seed(1)
    )
    module.use_contrast(
        MultiviewContrast(bank, queue_length, temperature=0.2, loss=loss, queue=True)
    )
    return module.train()


def _flat(modules):
    return torch.cat([p.detach().flatten() for p in modules.parameters()])


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)[0]


# -- key encoders ----------------------------------------------------------------------


def test_key_encoders_are_a_momentum_average_of_the_encoders():
    module = _queue_module()
    keys = module.key_encoders
    assert keys is not None and not any(p.requires_grad for p in keys.parameters())
    torch.testing.assert_close(_flat(keys), _flat(module.encoders))  # MoCo's initialisation
    # The optimizer never sees them: they move by the average only.
    key_ids = set(map(id, keys.parameters()))
    assert not key_ids & set(map(id, module.encoder_parameters()))
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.SGD(module.encoder_parameters(), lr=0.5)
    for _ in range(2):  # a step moves the encoders; the next forward moves the keys after them
        module(x, torch.arange(8))["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        key_before, query = _flat(keys), _flat(module.encoders)
        module.eval()(x, torch.arange(8))  # eval: no update, nothing enqueued
        torch.testing.assert_close(_flat(keys), key_before, rtol=0, atol=0)
        module.train()(x, torch.arange(8))
        m = MultiviewCoding.KEY_MOMENTUM
        assert (_flat(keys) - key_before).abs().max() > 1e-4  # the update is visible
        torch.testing.assert_close(_flat(keys), m * key_before + (1 - m) * query, rtol=0, atol=1e-6)


def test_the_queue_gets_the_keys_and_every_entry_is_scored(monkeypatch):
    module = _queue_module(queue_length=16, loss="nce")
    with torch.no_grad():  # queries and keys differ, as after training steps
        for p in module.encoders.parameters():
            p.add_(torch.randn_like(p))
    widths = []
    score = module.contrast._direction_loss
    monkeypatch.setattr(
        module.contrast,
        "_direction_loss",
        lambda key, logits: widths.append(logits.shape[1]) or score(key, logits),
    )
    x = torch.randn(10, 12, generator=torch.Generator().manual_seed(3))
    module(x, torch.arange(10))  # 10 rows: one batch-norm group
    assert widths == [16 + 1, 16 + 1]  # the whole queue, both directions
    made = module.make_views(x)
    with torch.no_grad():
        keys = [
            module.embedding(unpack(enc(v)))
            for enc, v in zip(module.key_encoders, made, strict=True)
        ]
        queries = [
            module.embedding(unpack(enc(v))) for enc, v in zip(module.encoders, made, strict=True)
        ]
    for v in range(2):
        torch.testing.assert_close(module.contrast.bank.memory[v, :10], keys[v])
        assert not torch.allclose(module.contrast.bank.memory[v, :10], queries[v], atol=1e-3)
    assert module.contrast.queue_head.item() == 10


class BatchMean(nn.Module):
    """An encoder whose output is a batch statistic only: the mean of its batch."""

    def forward(self, x):
        mean = x.mean(0, keepdim=True).expand_as(x) + 0.0
        return mean, mean


def test_keys_take_their_batch_norm_statistics_from_other_rows_than_their_query():
    for n, n_groups in ((64, 4), (50, 3), (10, 2)):
        order = key_groups(n, n_groups)
        assert sorted(order.tolist()) == list(range(n))
        query_group = torch.empty(n, dtype=torch.long)
        for g, rows in enumerate(torch.arange(n).tensor_split(n_groups)):
            query_group[rows] = g
        for rows in order.tensor_split(n_groups):
            # Each key group takes its rows from all query groups, about evenly.
            counts = torch.bincount(query_group[rows], minlength=n_groups)
            assert counts.max() - counts.min() <= 1, (n, n_groups, counts)
    # A positive found through batch statistics alone: the keys' batches differ
    # from the queries', so the key is no copy of its query.
    module = _queue_module(encoder=BatchMean())
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(4))
    x[:, 6:] = x[:, :6]  # both views see the same columns
    module(x, torch.arange(64))
    keys = module.contrast.bank.memory[1, :16]  # the first 16 of the 64 keys, view 1
    query = F.normalize(x[:16, :6].mean(0), dim=0)  # rows 0..15 form the first query group
    assert (keys @ query).max() < 0.99


# -- held-out terms --------------------------------------------------------------------


def test_validation_terms_crop_each_view_the_same_way_every_epoch(digits):
    est = CMCTransformer(max_epochs=1, keep_memory_bank=True, **FAST).fit(digits[:64])
    module = est.net_.module_.eval()
    assert isinstance(module.views, CropViews)
    x = torch.as_tensor(digits[:32], dtype=torch.float32).view(-1, 1, 8, 8)
    index = torch.arange(32)

    def terms(seed):
        with torch.no_grad():
            out = module.validation_terms(x, index, torch.Generator().manual_seed(seed))
        return {key: value.item() for key, value in out.items()}

    first = terms(0)
    assert set(first) == {"loss", "contrast_0_1", "contrast_1_0"}
    assert terms(0) == first  # the same crops every epoch
    assert terms(1) != first  # drawn from the generator
    assert not module.views.training  # left as it was
    # The views differ (eval-mode views are the image twice), and the loss is the
    # in-batch one of their embeddings.
    made = module.views.train()(x, generator=torch.Generator().manual_seed(0))
    module.views.eval()
    assert not torch.equal(made[0], made[1])
    with torch.no_grad():
        embeddings = [
            module.embedding(unpack(enc(v))) for enc, v in zip(module.encoders, made, strict=True)
        ]
    total, _ = module.contrast.in_batch(embeddings)
    assert first["loss"] == pytest.approx(total.item(), rel=1e-5)
