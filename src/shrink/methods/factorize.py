"""Low-rank factorization: ALBERT's embedding factorization and truncated-SVD inner layers.

Both replace a matrix W (m x n) by a product of two thinner ones initialised from the truncated
SVD W ~ U_r S_r V_r^T. By Eckart-Young this is the best rank-r approximation in Frobenius norm,
and the squared error is the energy of the dropped singular values, sum_{i>r} s_i^2.
"""

import torch
from torch import nn


def svd_factors(weight, rank):
    """A (m x r), B (r x n) with A @ B the best rank-r approximation of `weight`; sqrt(S) split evenly."""
    w = weight.detach()
    u, s, vh = torch.linalg.svd(w.to(torch.promote_types(w.dtype, torch.float32)), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def _like(tensor):
    """Factory arguments that put a replacement module where the replaced one's weights are."""
    return {"device": tensor.device, "dtype": tensor.dtype}


class FactorizedEmbedding(nn.Module):
    """ALBERT's V x H table as a V x E lookup followed by an E x H projection (no bias)."""

    def __init__(self, num_embeddings, embedding_dim, rank, padding_idx=None, device=None, dtype=None):
        super().__init__()
        self.inner = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx, device=device, dtype=dtype)
        self.project = nn.Linear(rank, embedding_dim, bias=False, device=device, dtype=dtype)
        self.num_embeddings, self.embedding_dim, self.rank = num_embeddings, embedding_dim, rank

    @property
    def weight(self):  # the full table, for code that reads embedding weights
        return self.project(self.inner.weight)

    def forward(self, ids):
        return self.project(self.inner(ids))

    @classmethod
    def from_embedding(cls, emb, rank):
        new = cls(emb.num_embeddings, emb.embedding_dim, rank, emb.padding_idx, **_like(emb.weight))
        a, b = svd_factors(emb.weight, rank)
        with torch.no_grad():
            new.inner.weight.copy_(a)
            new.project.weight.copy_(b.T)
        return new


def factorize_embeddings(model, rank, init=True):
    """Replace the word-embedding table of a HF encoder in place; SVD init unless `init` is False
    (a loader rebuilding the structure before loading saved weights)."""
    emb = model.get_input_embeddings()
    if not 0 < rank <= min(emb.num_embeddings, emb.embedding_dim):
        raise ValueError(f"embedding rank {rank} must be in [1, {min(emb.num_embeddings, emb.embedding_dim)}]")
    new = FactorizedEmbedding.from_embedding(emb, rank) if init else FactorizedEmbedding(
        emb.num_embeddings, emb.embedding_dim, rank, emb.padding_idx, **_like(emb.weight))
    model.set_input_embeddings(new)
    return model


class LowRankLinear(nn.Module):
    """y = B (A x) + b: a Linear(n, m) through a rank-r bottleneck."""

    def __init__(self, in_features, out_features, rank, bias=True, device=None, dtype=None):
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.up = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)
        self.in_features, self.out_features, self.rank = in_features, out_features, rank

    def forward(self, x):
        return self.up(self.down(x))

    @classmethod
    def from_linear(cls, linear, rank):
        new = cls(linear.in_features, linear.out_features, rank, linear.bias is not None, **_like(linear.weight))
        a, b = svd_factors(linear.weight, rank)
        with torch.no_grad():
            new.up.weight.copy_(a)
            new.down.weight.copy_(b)
            if linear.bias is not None:
                new.up.bias.copy_(linear.bias)
        return new


def rank_for(weight, energy=None, ratio=None):
    """The rank a rule picks for one matrix.

    energy: the smallest r keeping that share of sum(s_i^2). The relative Frobenius error of the
        factorised weight is then at most sqrt(1 - energy), the same bound for every layer, so layers
        with a fast-decaying spectrum get small ranks and flat ones keep more.
    ratio: r = ratio * min(m, n) for every layer, ignoring the spectrum.
    """
    m, n = weight.shape
    if ratio is not None:
        return max(1, int(round(ratio * min(m, n))))
    s2 = torch.linalg.svdvals(weight.detach().float()) ** 2
    kept = torch.cumsum(s2, 0) / s2.sum()
    return int(torch.searchsorted(kept, torch.tensor(energy)).item()) + 1


def encoder_linears(model):
    """(name, module) of every nn.Linear inside the encoder blocks (not embeddings or the classifier)."""
    from .architectures import adapter_for

    return adapter_for(model).encoder_linears(model)


def choose_ranks(model, energy=None, ratio=None):
    """Rank per encoder linear, only where the two factors are smaller than the matrix itself."""
    if (energy is None) == (ratio is None):
        raise ValueError("give exactly one of energy or ratio")
    ranks = {}
    for name, lin in encoder_linears(model):
        r = rank_for(lin.weight, energy, ratio)
        if r * (lin.in_features + lin.out_features) < lin.in_features * lin.out_features:
            ranks[name] = r
    return ranks


def factorize_linears(model, ranks, init=True):
    """Replace each named Linear by a LowRankLinear of the given rank (SVD init unless `init` is False)."""
    for name, rank in ranks.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        lin = getattr(parent, attr)
        new = LowRankLinear.from_linear(lin, rank) if init else LowRankLinear(
            lin.in_features, lin.out_features, rank, lin.bias is not None, **_like(lin.weight))
        setattr(parent, attr, new)
    return model
