"""The LM training loop, perplexity (two ways, and against the reported loss) and evaluation windows."""

import math

import pytest
import torch
import torch.nn.functional as F

from shrink.core.errors import ConfigError
from shrink.lm.data import BlockSampler, sequential_windows
from shrink.lm.metrics import bits_per_char, perplexity, split_nll, split_nll_by_probs
from shrink.lm.models import build
from shrink.lm.train import LMTrainConfig, lr_at, train_lm

V, BLOCK = 50, 16


def tokens(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    # a learnable stream: mostly i -> i+1 (mod V), with some noise
    t = torch.zeros(n, dtype=torch.long)
    t[0] = 1
    for i in range(1, n):
        t[i] = (t[i - 1] + 1) % V if torch.rand(1, generator=g) < 0.8 else torch.randint(V, (1,), generator=g)
    return t


def tiny(arch="transformer", seed=0):
    torch.manual_seed(seed)
    settings = {"gru": {"n_layer": 1}}.get(arch, {"n_layer": 1, "n_head": 2})
    return build(arch, V, BLOCK, 16, settings)


def cfg(**kw):
    return LMTrainConfig.from_dict({"steps": 30, "batch_size": 4, "block_size": BLOCK, "lr": 1e-2, "min_lr": 1e-3,
                                    "warmup_steps": 5, "eval_every": 10, "eval_batches": 2,
                                    "checkpoint_every": 10, **kw})


def test_sequential_windows_predict_every_token_once_in_order():
    t = torch.arange(1, 38)  # 37 tokens: 36 predictions, two full windows of 16 and a tail of 4
    ys = torch.cat([y.flatten() for _, y in sequential_windows(t, 16, 1)])
    assert ys.tolist() == t[1:].tolist()
    for x, y in sequential_windows(t, 16, 4):
        assert (y[:, :-1] == x[:, 1:]).all()  # targets are the inputs shifted by one


def test_block_sampler_same_seed_same_windows():
    t = tokens()
    a, b = BlockSampler(t, BLOCK, 4, seed=3), BlockSampler(t, BLOCK, 4, seed=3)
    for _ in range(3):
        (xa, ya), (xb, yb) = a.batch(), b.batch()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(BlockSampler(t, BLOCK, 4, seed=4).batch()[0], BlockSampler(t, BLOCK, 4, seed=3).batch()[0])


@pytest.mark.parametrize("arch", ["transformer", "gru"])
def test_perplexity_two_ways_agree_and_match_the_loss(arch):
    model, t = tiny(arch), tokens(203)  # 202 predictions: the last window is short
    nll, n = split_nll(model, t, BLOCK, batch_size=3)
    nll2, n2 = split_nll_by_probs(model, t, BLOCK, batch_size=5)
    assert n == n2 == len(t) - 1
    assert nll == pytest.approx(nll2, rel=1e-5)
    # a third path: one long sequence through the model, window by window, by hand
    with torch.no_grad():
        manual = 0.0
        for s in range(0, len(t) - 1, BLOCK):
            y = t[s + 1:s + BLOCK + 1]
            manual += F.cross_entropy(model(t[s:s + len(y)][None])[0], y, reduction="sum").item()
    assert nll == pytest.approx(manual, rel=1e-5)
    assert perplexity(nll, n) == pytest.approx(math.exp(nll / n))
    assert bits_per_char(nll, 1000) == pytest.approx(nll / math.log(2) / 1000)


def test_untrained_perplexity_is_about_the_vocabulary_size():
    nll, n = split_nll(tiny(), tokens(300), BLOCK)
    assert 0.5 * V < perplexity(nll, n) < 2 * V


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    c = cfg(steps=100, warmup_steps=10)
    assert lr_at(0, c) == pytest.approx(c.lr / 10)
    assert lr_at(9, c) == pytest.approx(c.lr)
    assert lr_at(99, c) == pytest.approx(c.min_lr, rel=0.01)
    assert lr_at(50, c) < lr_at(20, c)


def test_training_lowers_loss_and_is_deterministic(tmp_path):
    t, v = tokens(800, 0), tokens(300, 1)
    runs = []
    for i in range(2):
        model = tiny()
        summary, steps, evals = train_lm(model, t, v, cfg(), seed=7, checkpoint=tmp_path / f"c{i}.pt")
        runs.append((summary, steps, evals))
    (s, steps, evals), (s2, steps2, evals2) = runs
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5
    assert [r["train_loss"] for r in steps] == [r["train_loss"] for r in steps2]
    assert s["tokens"] == 30 * 4 * BLOCK and s["train_tokens_per_s"] > 0 and s["peak_rss_mb"] > 0


def test_killed_run_resumes_to_the_same_result(tmp_path):
    t, v = tokens(800, 0), tokens(300, 1)
    full, full_steps, _ = train_lm(tiny(), t, v, cfg(), seed=7, checkpoint=tmp_path / "full.pt")
    # a kill after step 20 leaves the step-20 checkpoint: a run that saves only then stands in for it
    ckpt = tmp_path / "part.pt"
    part_model = tiny()
    train_lm(part_model, t, v, cfg(steps=30, checkpoint_every=20), seed=7, checkpoint=ckpt)
    assert ckpt.exists()  # the step-20 checkpoint of a 30-step run
    resumed = tiny(seed=99)  # different init: everything must come from the checkpoint
    summary, steps, _ = train_lm(resumed, t, v, cfg(), seed=7, checkpoint=ckpt)
    assert [r["train_loss"] for r in steps] == pytest.approx([r["train_loss"] for r in full_steps])
    for a, b in zip(resumed.parameters(), part_model.parameters()):
        assert torch.allclose(a, b)


def test_bad_training_settings_name_the_key():
    with pytest.raises(ConfigError, match="lm.train.stepz"):
        LMTrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ConfigError, match="lm.train.lr"):
        LMTrainConfig.from_dict({"lr": 0})
