"""Token shards and batches for language-model training.

A split is one flat array of token ids (documents joined by the end-of-text token, which also starts
the stream so every real token is predicted). Training batches are random windows drawn from a
seeded generator, so every architecture trained with the same seed sees exactly the same tokens.
"""

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.errors import ShrinkError


def save_tokens(path, ids):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # np.save on a name would append .npy to the temp path
            np.save(f, ids)


def load_tokens(path):
    ids = np.load(path, mmap_mode="r")
    return torch.from_numpy(np.asarray(ids, dtype=np.int64))


class BlockSampler:
    """Random (input, target) windows of `block_size` tokens; the same seed gives the same windows."""

    def __init__(self, tokens, block_size, batch_size, seed):
        if len(tokens) <= block_size + 1:
            raise ShrinkError(f"the token stream has {len(tokens)} tokens, fewer than block_size + 2 "
                              f"({block_size + 2}): lower lm.train.block_size or add text")
        self.tokens, self.block_size, self.batch_size = tokens, block_size, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self):
        starts = torch.randint(len(self.tokens) - self.block_size - 1, (self.batch_size,), generator=self.generator)
        offsets = torch.arange(self.block_size + 1)
        windows = self.tokens[starts[:, None] + offsets]
        return windows[:, :-1], windows[:, 1:]

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


def fixed_batches(tokens, block_size, batch_size, n_batches, seed):
    """`n_batches` windows drawn once from `seed`: the same estimate set at every evaluation."""
    sampler = BlockSampler(tokens, block_size, batch_size, seed)
    return [sampler.batch() for _ in range(n_batches)]


def sequential_windows(tokens, block_size, batch_size):
    """Non-overlapping windows that predict every token after the first exactly once, in order.

    Window k reads tokens[k*B : k*B+B] and predicts tokens[k*B+1 : k*B+B+1]; the last one is shorter.
    Yields (x, y) batches with windows of equal length grouped together.
    """
    n = len(tokens) - 1
    starts = list(range(0, n, block_size))
    full = [s for s in starts if s + block_size <= n]
    for i in range(0, len(full), batch_size):
        idx = torch.tensor(full[i:i + batch_size])[:, None] + torch.arange(block_size + 1)
        w = tokens[idx]
        yield w[:, :-1], w[:, 1:]
    tail = [s for s in starts if s + block_size > n]
    for s in tail:
        w = tokens[s:n + 1][None]
        yield w[:, :-1], w[:, 1:]
