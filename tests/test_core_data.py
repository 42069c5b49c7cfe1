"""Mini-batches of ``ruotools.core.data.Snapshots``."""

import numpy as np
import torch

from ruotools.core.data import LARGE_POOL, Snapshots


def test_mini_batches_without_replacement_below_the_large_pool_and_with_it_above():
    small = np.arange(2 * 1000, dtype=np.float32).reshape(1000, 2)
    large = np.arange(2 * (LARGE_POOL + 1), dtype=np.float32).reshape(LARGE_POOL + 1, 2)
    data = Snapshots([small, large], [0.0, 1.0], [1.0, 1.0], train_size=1.0)
    gen = torch.Generator().manual_seed(0)
    batch = data.sample(0, 500, gen)
    assert batch.shape == (500, 2)
    assert len(torch.unique(batch[:, 0])) == 500
    batch = data.sample(1, 500, gen)
    assert batch.shape == (500, 2)
    # rows of the pool (even first coordinates); repeats are allowed but rare at this size
    assert torch.all(batch[:, 0] % 2 == 0)
    assert len(torch.unique(batch[:, 0])) >= 495
    assert data.sample(0, 5000, gen).shape == (1000, 2)  # all cells when the batch is larger


def test_mini_batches_from_torch_default_generator():
    data = Snapshots([np.arange(200, dtype=np.float32).reshape(100, 2)], [0.0], [1.0], train_size=1.0)
    torch.manual_seed(0)
    first = data.sample(0, 10, None)
    torch.manual_seed(0)
    assert torch.equal(data.sample(0, 10, None), first)
    assert first.shape == (10, 2)
    assert len(torch.unique(first[:, 0])) == 10
    torch.manual_seed(1)
    assert not torch.equal(data.sample(0, 10, None), first)
