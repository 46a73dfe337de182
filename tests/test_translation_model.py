"""The translation Transformer on its own: masking, cached decoding, beam search, head pruning, frozen weights."""

import pytest
import torch

from shrink.core.errors import TrainingError
from shrink.translation.decode import beam_search, greedy
from shrink.translation.model import (
    Seq2Seq,
    Seq2SeqConfig,
    load_seq2seq,
    make_batch,
    save_seq2seq,
)
from shrink.translation.prune import (
    EncoderHeadGates,
    assert_unchanged,
    prune_encoder_heads,
    snapshot,
)
from shrink.translation.vocab import EOS_ID, PAD_ID

V = 40


def tiny(norm="pre", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(vocab_size=V, d_model=32, heads=4, ffn=64, encoder_layers=2, decoder_layers=2, dropout=0.0,
                        norm=norm, max_positions=64, **kw)
    return Seq2Seq(cfg).eval()


def sentences(n, seed=1, lo=3, hi=12):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, V, (int(torch.randint(lo, hi, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_padding_changes_nothing(norm):
    """A sentence alone and padded inside a batch with a longer one gives the same logits."""
    model = tiny(norm)
    short, long_ = [5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]
    tgt_short, tgt_long = [20, 21], [22, 23, 24, 25, 26, 27]
    alone = make_batch([short], [tgt_short])
    both = make_batch([short, long_], [tgt_short, tgt_long])
    assert (both["src"][0] == PAD_ID).sum() == 5  # the short row really is padded
    with torch.no_grad():
        a = model(alone["src"], alone["tgt_in"])[0]
        b = model(both["src"], both["tgt_in"])[0, : a.shape[0]]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_decoder_never_sees_the_future():
    model = tiny()
    batch = make_batch([[5, 6, 7, 8]], [[9, 10, 11, 12, 13]])
    changed = batch["tgt_in"].clone()
    changed[0, 3:] = torch.tensor([30, 31, 32])  # rewrite positions 3.. of the decoder input
    with torch.no_grad():
        a, b = model(batch["src"], batch["tgt_in"]), model(batch["src"], changed)
    torch.testing.assert_close(a[0, :3], b[0, :3])  # positions before the edit are untouched
    assert not torch.allclose(a[0, 3:], b[0, 3:])  # and the edit does reach the later ones


def test_cached_greedy_equals_full_recomputation():
    model = tiny()
    src = make_batch(sentences(5))["src"]
    cached = greedy(model, src, max_len_a=0, max_len_b=8)
    # Reference: recompute the whole prefix every step, no cache.
    tokens = torch.full((5, 1), 1)
    with torch.no_grad():
        for _ in range(8):  # max_len_b steps
            logits = model(src, tokens)[:, -1]
            logits[:, :2] = float("-inf")
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], 1)
    for row, hyp in zip(tokens[:, 1:].tolist(), cached):
        expected = row[: row.index(EOS_ID)] if EOS_ID in row else row
        assert hyp == expected


def test_beam_one_is_greedy_and_batching_changes_no_beam():
    model = tiny(seed=3)
    rows = sentences(8, seed=4)
    src = make_batch(rows)["src"]
    assert beam_search(model, src, beam=1) == greedy(model, src)
    # A fixed length bound (the default one grows with the batch's widest source).
    batched = beam_search(model, src, beam=4, max_len_a=0, max_len_b=12)
    alone = [beam_search(model, make_batch([r])["src"], beam=4, max_len_a=0, max_len_b=12)[0] for r in rows]
    assert batched == alone  # padding and the flattened (sentence x beam) reordering change nothing


def gated_objective(model):
    objective = EncoderHeadGates(model, lam=0.1)
    with torch.no_grad():  # a mix of closed, partly open and fully open gates
        objective.gates.log_alpha.copy_(torch.tensor([[-9.0, 0.5, 3.0, -9.0], [1.0, -9.0, -9.0, -9.0]]))
    return objective


def test_pruned_model_computes_what_the_gated_model_did(tmp_path):
    model = tiny(seed=5)
    objective = gated_objective(model)
    b = make_batch(sentences(4, seed=6), sentences(4, seed=7))
    with torch.no_grad():
        gated = model(b["src"], b["tgt_in"])
    keep = objective.export()
    assert keep == {0: [1, 2], 1: [0]}
    assert [layer.self_attn.n_heads for layer in model.encoder.layers] == [2, 1]
    with torch.no_grad():
        pruned = model(b["src"], b["tgt_in"])
    torch.testing.assert_close(pruned, gated, atol=1e-5, rtol=1e-4)
    save_seq2seq(model, tmp_path / "m")
    reloaded = load_seq2seq(tmp_path / "m")
    assert reloaded.config.encoder_heads == [[1, 2], [0]]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(b["src"], b["tgt_in"]), pruned)


def test_a_layer_with_every_head_removed_still_runs():
    model = tiny()
    prune_encoder_heads(model, {0: [], 1: [0, 3]})
    b = make_batch(sentences(3), sentences(3, seed=2))
    with torch.no_grad():
        out = model(b["src"], b["tgt_in"])
    assert torch.isfinite(out).all() and model.encoder.layers[0].self_attn.n_heads == 0
    assert greedy(model, b["src"], max_len_b=3)  # decoding works on the pruned encoder


def test_gate_training_moves_only_the_gates():
    model = tiny(seed=8)
    objective = EncoderHeadGates(model, lam=0.5)
    objective.train()
    before, gates_before = snapshot(model), objective.gates.log_alpha.detach().clone()
    trainable = [p for p in objective.parameters() if p.requires_grad]
    assert trainable == [objective.gates.log_alpha]
    opt = torch.optim.AdamW(trainable, lr=0.1, weight_decay=0.01)
    b = make_batch(sentences(6), sentences(6, seed=9))
    for _ in range(3):
        loss, _ = objective(b)
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert assert_unchanged(model, before) == len(before)
    assert not torch.equal(objective.gates.log_alpha, gates_before)
    # The check is not vacuous: touching one decoder weight makes it fail.
    with torch.no_grad():
        model.decoder.layers[0].ffn[0].weight[0, 0] += 1e-3
    with pytest.raises(TrainingError, match="decoder.layers.0.ffn.0.weight"):
        assert_unchanged(model, before)
