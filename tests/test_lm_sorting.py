"""Synthetic sorting task: batch layout, scoring, greedy evaluation and the training loop (stub models)."""

import pytest
import torch
from torch import nn

from shrink.core.errors import ConfigError, ShrinkError
from shrink.lm import sorting
from shrink.lm.models.common import CausalLM
from shrink.lm.sorting import (
    IGNORE,
    SortSettings,
    eval_inputs,
    evaluate_sorter,
    make_batch,
    pad_id,
    score,
    sep_id,
    train_sorter,
)


class TinyGRU(CausalLM):
    """A causal stub LM with the project's interface: forward(idx) -> (B, T, V) logits, block_size."""

    def __init__(self, vocab_size, block_size, hidden=48, seed=0):
        super().__init__(vocab_size, block_size)
        torch.manual_seed(seed)
        self.emb = nn.Embedding(vocab_size, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, idx):
        assert idx.size(1) <= self.block_size
        return self.head(self.rnn(self.emb(idx))[0])


class Oracle(CausalLM):
    """Puts all probability on the right sorted token after SEP (it reads only earlier tokens: causal)."""

    def __init__(self, max_value, block_size):
        super().__init__(sorting.vocab_size(max_value), block_size)
        self.max_value = max_value
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab_size)
        for row in range(idx.size(0)):
            p = (idx[row] == sep_id(self.max_value)).nonzero()[0, 0].item()
            ys = idx[row, :p].sort().values
            for j in range(min(p, idx.size(1) - p)):
                logits[row, p + j, ys[j]] = 10.0
        return logits


class Constant(CausalLM):
    def __init__(self, token, max_value, block_size):
        super().__init__(sorting.vocab_size(max_value), block_size)
        self.token = token
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab_size)
        logits[..., self.token] = 1.0
        return logits


def test_batch_targets_are_the_sorted_inputs_and_the_rest_is_masked():
    max_value = 7
    idx, targets = make_batch([3, 9], 24, max_value, torch.Generator().manual_seed(1))
    assert idx.shape == targets.shape == (24, 18)
    seen = set()
    for row in range(24):
        n = int((targets[row] != IGNORE).sum())
        seen.add(n)
        x = idx[row, :n]
        assert x.max() < max_value and idx[row, n] == sep_id(max_value)
        ys = x.sort().values
        assert torch.equal(targets[row, n: 2 * n], ys)  # SEP predicts y1 ... the last input predicts yN
        assert torch.equal(idx[row, n + 1: 2 * n], ys[:-1])
        assert (targets[row, :n] == IGNORE).all() and (targets[row, 2 * n:] == IGNORE).all()
        assert (idx[row, 2 * n:] == pad_id(max_value)).all()  # shorter rows are right-padded
    assert seen == {3, 9}


def test_batches_are_deterministic_and_contain_repeats():
    a = make_batch([20], 8, 50, torch.Generator().manual_seed(5))
    b = make_batch([20], 8, 50, torch.Generator().manual_seed(5))
    c = make_batch([20], 8, 50, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    inputs = a[0][:, :20]
    repeats = [len(set(r.tolist())) < 20 for r in inputs]
    assert any(repeats)  # 20 draws from 50 values: repeats are the norm, not excluded


def test_score_separates_exact_match_from_per_position():
    expected = torch.tensor([[1, 2, 3, 4], [0, 0, 5, 5]])
    predicted = torch.tensor([[1, 2, 3, 4], [0, 5, 5, 5]])
    s = score(predicted, expected)
    assert s["exact_match"] == 0.5
    assert s["per_position_accuracy"] == pytest.approx(7 / 8)
    assert s["per_position_curve"] == [1.0, 0.5, 1.0, 1.0]
    assert s["n"] == 2
    with pytest.raises(ShrinkError):
        score(predicted[:, :3], expected)


def test_oracle_sorts_perfectly():
    res = evaluate_sorter(Oracle(10, 40), [4, 20], 12, 10, seed=3, batch_size=5)
    assert [r["length"] for r in res] == [4, 20]
    for r in res:
        assert r["exact_match"] == 1.0 and r["per_position_accuracy"] == 1.0 and r["n"] == 12
        assert r["per_position_curve"] == [1.0] * r["length"]


def test_constant_model_scores_the_share_of_its_token():
    max_value, n = 3, 5
    res = evaluate_sorter(Constant(0, max_value, 10), [n], 40, max_value, seed=7)[0]
    x = eval_inputs(n, 40, max_value, seed=7)
    zeros = (x == 0).float()
    assert res["per_position_accuracy"] == pytest.approx(zeros.mean().item())
    assert res["exact_match"] == pytest.approx((zeros.min(1).values).mean().item())
    expected_curve = (x.sort(1).values == 0).float().mean(0).tolist()
    assert res["per_position_curve"] == pytest.approx(expected_curve)
    assert 0 < res["per_position_accuracy"] < 1


def test_too_long_for_the_context_is_an_error_naming_both():
    with pytest.raises(ShrinkError, match=r"length 6 .*block_size is 11"):
        evaluate_sorter(Oracle(10, 11), [5, 6], 2, 10, seed=0)
    with pytest.raises(ShrinkError, match="block_size is 11"):
        train_sorter(TinyGRU(12, 11), SortSettings(max_value=10, train_lengths=[6], steps=1), progress=False)


def test_settings_reject_unknown_keys():
    with pytest.raises(ConfigError, match="lm.sorting.lenghts"):
        SortSettings.from_dict({"lenghts": [4]})


def test_training_learns_and_is_deterministic():
    settings = dict(max_value=4, train_lengths=[2, 3], steps=150, batch_size=32, lr=1e-2, warmup_steps=10,
                    log_every=10, seed=0)
    logged = []
    model = TinyGRU(sorting.vocab_size(4), 8)
    rows = train_sorter(model, settings, log_fn=logged.append, progress=False)
    assert logged == rows and [r["step"] for r in rows] == list(range(10, 151, 10))
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    again = train_sorter(TinyGRU(sorting.vocab_size(4), 8), settings, progress=False)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(again) == strip(rows)
    # greedy decoding with the trained stub sorts nearly every 3-number list (an untrained one: few)
    assert evaluate_sorter(model, [3], 64, 4, seed=1)[0]["exact_match"] > 0.9
    assert evaluate_sorter(TinyGRU(sorting.vocab_size(4), 8), [3], 64, 4, seed=1)[0]["exact_match"] < 0.5
