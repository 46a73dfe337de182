"""Training the translation model on the toy corpus: it learns, it resumes exactly, BLEU sees plain text."""

import pandas as pd
import pytest
import torch

from shrink.translation import scoring
from shrink.translation import train as train_mod
from shrink.translation.corpus import clean_splits, synthetic_corpus
from shrink.translation.decode import translate
from shrink.translation.evaluate import copy_baseline, evaluate_translation
from shrink.translation.model import Seq2Seq, Seq2SeqConfig, save_seq2seq
from shrink.translation.shards import TokenizedPairs
from shrink.translation.train import Seq2SeqTrainConfig, TranslationLoss, train_seq2seq
from shrink.translation.vocab import decode, encode, train_vocab


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    splits, _ = clean_splits(synthetic_corpus(400, 40, 40, seed=1))
    tok = train_vocab((s for pair in splits["train"] for s in pair), 350)
    data = {}
    for name, pairs in splits.items():
        src, tgt = [p[0] for p in pairs], [p[1] for p in pairs]
        data[name] = TokenizedPairs(encode(tok, src), encode(tok, tgt), src, tgt)
    path = tmp_path_factory.mktemp("shards") / "train.npz"
    data["train"].save(path)
    reloaded = TokenizedPairs.load(path)
    assert reloaded.src == data["train"].src and reloaded.tgt_text == data["train"].tgt_text
    return tok, data


def settings(**kw):
    base = dict(epochs=4, lr=5e-3, batch_tokens=500, warmup_steps=10, eval_every=15, val_bleu_sentences=40,
                log_every=5, label_smoothing=0.1, seed=3)
    return Seq2SeqTrainConfig(**{**base, **kw})


def fresh_model(tok):
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(vocab_size=tok.get_vocab_size(), d_model=48, heads=4, ffn=96, encoder_layers=2,
                                 decoder_layers=2, dropout=0.0, max_positions=96))


def train(tok, data, ckpt, cfg=None):
    model = fresh_model(tok)
    cfg = cfg or settings()
    rows, evals, _ = train_seq2seq(model, TranslationLoss(model, cfg.label_smoothing), data["train"],
                                   data["validation"], tok, cfg, ckpt, progress=False)
    return model, pd.DataFrame(rows), pd.DataFrame(evals)


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    tok, data = toy
    return train(tok, data, tmp_path_factory.mktemp("ckpt"))


def test_it_learns_and_keeps_the_best_validation_bleu(toy, trained, tmp_path):
    tok, data = toy
    model, rows, evals = trained
    assert rows["loss"].iloc[-3:].mean() < 0.6 * rows["loss"].iloc[:3].mean()
    assert evals["val_loss"].min() < 0.5 * evals["val_loss"].iloc[0]
    save_seq2seq(model, tmp_path / "m")
    m = evaluate_translation(model, tok, data["validation"], tmp_path / "m", beams=(3,), batch_size=16,
                             latency_sentences=2, samples=2)
    # The model left in place is the best validation checkpoint: evaluation reproduces its BLEU.
    assert m["test"]["greedy"]["bleu"] == pytest.approx(evals["val_bleu"].max(), abs=1e-6)
    copy = copy_baseline(data["validation"])["test"]["greedy"]
    assert m["test"]["greedy"]["chrf"] > copy["chrf"] + 5
    assert m["parameters"]["total"] == model.num_parameters() and m["bytes_on_disk"] > 4 * model.num_parameters()


def test_killed_run_resumes_to_the_same_result(toy, trained, tmp_path, monkeypatch):
    tok, data = toy
    _, rows, evals = trained
    saves = {"n": 0}
    original = train_mod.Checkpoints.save_last

    def save_then_die(self, state, meta):
        original(self, state, meta)
        saves["n"] += 1
        if saves["n"] == 3:  # the starting evaluation, then steps 15 and 30
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train_mod.Checkpoints, "save_last", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tok, data, tmp_path)
    monkeypatch.setattr(train_mod.Checkpoints, "save_last", original)
    _, rows2, evals2 = train(tok, data, tmp_path)
    timing = ["train_seconds", "tokens_per_s"]
    pd.testing.assert_frame_equal(rows.drop(columns=timing, errors="ignore"),
                                  rows2.drop(columns=timing, errors="ignore"))
    pd.testing.assert_frame_equal(evals.drop(columns=timing, errors="ignore"),
                                  evals2.drop(columns=timing, errors="ignore"))


def test_changed_settings_do_not_resume_a_foreign_checkpoint(toy, tmp_path):
    tok, data = toy
    train(tok, data, tmp_path, settings(epochs=1))
    _, rows, _ = train(tok, data, tmp_path, settings(epochs=1, lr=1e-3))
    assert rows["step"].iloc[0] == 5  # started over at step 1, not from the other run's last step


def test_bleu_is_computed_on_detokenized_strings(toy, trained, tmp_path, monkeypatch):
    tok, data = toy
    model = trained[0]
    seen = []
    real = scoring.BLEU.corpus_score

    def spy(self, hyps, refs):
        seen.append((list(hyps), [list(r) for r in refs]))
        return real(self, hyps, refs)

    monkeypatch.setattr(scoring.BLEU, "corpus_score", spy)
    save_seq2seq(model, tmp_path / "m")
    evaluate_translation(model, tok, data["test"], tmp_path / "m", beams=(), latency_sentences=0)
    hyps, refs = seen[0]
    assert refs == [data["test"].tgt_text]  # the references as written, not re-tokenized
    assert all(isinstance(h, str) for h in hyps)
    assert not any("\u0120" in h or "<" in h for h in hyps)  # no byte-level space markers or specials
    assert hyps == decode(tok, translate(model, data["test"].src))
    assert sum(" " in h for h in hyps) > len(hyps) / 2  # words are separated by plain spaces


def test_score_refuses_subword_pieces():
    with pytest.raises(ValueError, match="subword markers"):
        scoring.score(["\u0120hello \u0120world"], ["hello world"])
    assert scoring.score(["the cat sat on the mat"], ["the cat sat on the mat"])["bleu"] == 100.0
