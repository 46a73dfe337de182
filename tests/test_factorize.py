"""Embedding factorization and low-rank inner layers: the SVD mathematics, not only shapes."""

import pytest
import torch

from shrink.methods.factorize import (
    FactorizedEmbedding,
    LowRankLinear,
    choose_ranks,
    factorize_embeddings,
    factorize_linears,
    rank_for,
    svd_factors,
)

torch.set_num_threads(1)


def test_svd_factors_at_full_rank_reproduce_the_matrix():
    w = torch.randn(50, 12)
    a, b = svd_factors(w, 12)
    assert torch.allclose(a @ b, w, atol=1e-5)


def test_truncation_error_is_the_energy_of_dropped_singular_values():
    w = torch.randn(40, 20)
    s = torch.linalg.svdvals(w)
    for r in (1, 5, 19):
        a, b = svd_factors(w, r)
        assert (w - a @ b).norm() ** 2 == pytest.approx(float((s[r:] ** 2).sum()), rel=1e-4)


def test_factorized_embedding_at_full_rank_equals_the_table(tiny_bert, batch):
    model = tiny_bert()
    table = model.get_input_embeddings().weight.detach().clone()
    b = batch()
    ref = model(**b).logits
    factorize_embeddings(model, rank=32)  # hidden is 32: full rank
    emb = model.get_input_embeddings()
    assert isinstance(emb, FactorizedEmbedding)
    assert torch.allclose(emb.weight, table, atol=1e-5)
    assert torch.allclose(model(**b).logits, ref, atol=1e-4)


def test_low_rank_embedding_has_fewer_parameters_and_the_svd_error(tiny_bert):
    model = tiny_bert()
    table = model.get_input_embeddings().weight.detach().clone()
    s = torch.linalg.svdvals(table)
    factorize_embeddings(model, rank=8)
    emb = model.get_input_embeddings()
    assert sum(p.numel() for p in emb.parameters()) == 100 * 8 + 8 * 32
    err = (emb.weight - table).norm() ** 2
    assert float(err.detach()) == pytest.approx(float((s[8:] ** 2).sum()), rel=1e-4)


def test_rank_out_of_range_is_an_error(tiny_bert):
    with pytest.raises(ValueError, match="rank"):
        factorize_embeddings(tiny_bert(), rank=0)


def test_low_rank_linear_at_full_rank_equals_the_linear():
    lin = torch.nn.Linear(16, 24)
    x = torch.randn(5, 16)
    new = LowRankLinear.from_linear(lin, 16)
    assert torch.allclose(new(x), lin(x), atol=1e-5)


def test_energy_rule_picks_the_smallest_rank_reaching_the_share():
    u, _ = torch.linalg.qr(torch.randn(30, 30))
    v, _ = torch.linalg.qr(torch.randn(20, 20))
    s = torch.tensor([10.0, 5.0, 3.0, 1.0] + [0.1] * 16)
    w = u[:, :20] @ torch.diag(s) @ v.T
    energy = (s**2).cumsum(0) / (s**2).sum()
    for target in (0.5, 0.9, 0.99):
        r = rank_for(w, energy=target)
        assert energy[r - 1] >= target - 1e-6 and (r == 1 or energy[r - 2] < target)
    assert rank_for(w, ratio=0.25) == 5


def test_choose_ranks_only_factorizes_where_it_saves_parameters(tiny_bert, batch):
    model = tiny_bert()
    ranks = choose_ranks(model, ratio=0.25)  # rank 8 of 32x32 (and 32x64): 8*64 < 32*32
    assert len(ranks) == 4 * 6 and set(ranks.values()) == {8}
    assert choose_ranks(model, ratio=1.0) == {}  # full rank would grow the layer
    before = sum(p.numel() for p in model.parameters())
    factorize_linears(model, ranks)
    assert sum(p.numel() for p in model.parameters()) < before
    assert model(**batch()).logits.shape == (3, 9, 5)


def test_full_rank_factorization_keeps_the_outputs(tiny_bert, batch):
    model = tiny_bert()
    b = batch()
    ref = model(**b).logits
    ranks = {name: 32 for name in choose_ranks(model, ratio=0.1)}  # every encoder linear at rank 32
    factorize_linears(model, ranks)
    assert torch.allclose(model(**b).logits, ref, atol=1e-4)
