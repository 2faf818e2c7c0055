"""Token windows and batches (gptlab.data); the dataset registry is tested in test_datasets.py."""

import pytest
import torch

from gptlab import data


def test_token_windows_shift_by_one_with_stride():
    ids = torch.arange(20)
    ds = data.TokenWindows(ids, block_size=4, stride=2)
    assert len(ds) == 8
    for i in range(len(ds)):
        x, y = ds[i]
        assert torch.equal(x, ids[2 * i : 2 * i + 4]) and torch.equal(y, ids[2 * i + 1 : 2 * i + 5])
    assert len(data.TokenWindows(ids, 4)) == 4  # default stride = block_size: no overlap
    assert len(data.TokenWindows(ids, 4, stride=1)) == 16
    with pytest.raises(IndexError):
        ds[8]
    with pytest.raises(ValueError, match="at least block_size"):
        data.TokenWindows(torch.arange(4), 4)
    with pytest.raises(ValueError, match="stride"):
        data.TokenWindows(ids, 4, stride=0)


def test_split_and_loaders():
    ids = torch.arange(1000)
    train, val = data.split_tokens(ids, 0.1)
    assert torch.equal(torch.cat([train, val]), ids) and len(val) == 100
    with pytest.raises(ValueError, match="val_fraction"):
        data.split_tokens(ids, 1.5)
    tr, va = data.make_loaders(ids, block_size=8, batch_size=4, seed=1)
    x, y = next(iter(tr))
    assert x.shape == y.shape == (4, 8) and torch.equal(y[:, :-1], x[:, 1:])
    tr2, _ = data.make_loaders(ids, block_size=8, batch_size=4, seed=1)
    assert torch.equal(next(iter(tr2))[0], x)  # same seed, same order
    # Every batch, inputs and targets: stride 1 puts a window on every offset, so the last
    # training window ends exactly at token 899 and one token too many would show.
    tr, va = data.make_loaders(ids, block_size=8, batch_size=4, stride=1, seed=1)
    seen_train = torch.cat([torch.cat([x, y], dim=1).flatten() for x, y in tr]).unique()
    assert torch.equal(seen_train, torch.arange(900))  # all of the training part and nothing else
    seen_val = torch.cat([torch.cat([x, y], dim=1).flatten() for x, y in va]).unique()
    assert torch.equal(seen_val, torch.arange(900, 1000))


def test_training_loader_is_shuffled_by_its_seed_and_val_is_in_order():
    ids = torch.arange(400)
    first = {s: next(iter(data.make_loaders(ids, block_size=4, batch_size=8, seed=s)[0]))[0][:, 0].tolist() for s in (0, 1)}
    assert first[0] != first[1] and first[0] != sorted(first[0])  # shuffled, differently per seed
    _, val = data.make_loaders(ids, block_size=4, batch_size=8, seed=0)
    assert torch.cat([x[:, 0] for x, _ in val]).tolist() == list(range(360, 396, 4))  # in order
