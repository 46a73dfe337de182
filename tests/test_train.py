"""The trainer on a tiny random BERT: guard rails, determinism, checkpoint fingerprints."""

import json

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer

from shrink.core.encoders import minilm_path
from shrink.core.errors import ConfigError, TrainingError
from shrink.ner.conll import label_list, read_conll
from shrink.ner.models import build_token_classifier
from shrink.ner.synthetic import write_corpus
from shrink.ner.tokens import encode_split
from shrink.ner.train import TrainConfig, train_token_classifier

TINY = {"preset": "tiny", "architecture": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}}


def make_data(root):
    """(tokenizer, labels, {train, validation} datasets) of a small synthetic corpus written under `root`."""
    folder = write_corpus(root, {"train": 96, "validation": 24, "test": 8}, seed=3)
    tok = AutoTokenizer.from_pretrained(minilm_path())
    train = read_conll(folder / "train.txt").sentences
    labels = label_list(train)
    sets = {s: Dataset.from_dict(encode_split(read_conll(folder / f"{s}.txt").sentences, tok, labels, 64, False))
            for s in ("train", "validation")}
    return tok, labels, sets


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("corpus"))


def run(data, tmp_path, name="run", **overrides):
    tok, labels, sets = data
    cfg = TrainConfig.from_dict({"epochs": 2, "lr": 3e-3, "batch_size": 16, "log_every": 2, **overrides}, seed=5)
    model = build_token_classifier(TINY, labels, len(tok), cfg.seed)
    out = tmp_path / name
    rows = train_token_classifier(model, tok, sets["train"], sets["validation"], labels, cfg, out / "model",
                                  out / "steps.csv", out / "epochs.csv", out / "ckpt", model_cfg=TINY, progress=False)
    return rows, out


@pytest.mark.parametrize("lr", ["fast", 5e-12, 0.5, True])
def test_learning_rate_guard(lr):
    with pytest.raises(ConfigError, match="train.lr"):
        TrainConfig.from_dict({"lr": lr})


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="train.learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-4})


def test_same_seed_same_metrics_and_saved_model_loads(data, tmp_path):
    from transformers import AutoModelForTokenClassification

    a, out = run(data, tmp_path, "a")
    b, _ = run(data, tmp_path, "b")
    assert [(r["train_loss"], r["val_f1"]) for r in a] == [(r["train_loss"], r["val_f1"]) for r in b]
    assert a[-1]["train_loss"] < a[0]["train_loss"]
    model = AutoModelForTokenClassification.from_pretrained(out / "model")
    assert model.config.id2label[0] == "O" and model.config.num_labels == len(data[1])
    assert (out / "steps.csv").read_text().startswith("step,epoch,loss,lr,grad_norm")


def test_nan_loss_stops_with_a_clear_error(data, tmp_path):
    tok, labels, sets = data
    cfg = TrainConfig.from_dict({"epochs": 1, "lr": 1e-3, "batch_size": 16})
    model = build_token_classifier(TINY, labels, len(tok), 0)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match=r"loss is nan at epoch 1, step 1"):
        train_token_classifier(model, tok, sets["train"], sets["validation"], labels, cfg, tmp_path / "m",
                               tmp_path / "s.csv", tmp_path / "e.csv", tmp_path / "c", progress=False)
    assert not (tmp_path / "m").exists() and not (tmp_path / "e.csv").exists()


def test_empty_train_split(data, tmp_path):
    tok, labels, sets = data
    empty = sets["train"].select([])
    model = build_token_classifier(TINY, labels, len(tok), 0)
    with pytest.raises(TrainingError, match="train split is empty"):
        train_token_classifier(model, tok, empty, sets["validation"], labels, TrainConfig(), tmp_path / "m",
                               tmp_path / "s.csv", tmp_path / "e.csv", tmp_path / "c", progress=False)


def test_checkpoints_of_other_settings_are_not_resumed(data, tmp_path):
    rows, out = run(data, tmp_path, "x", epochs=1)
    state = json.loads((out / "ckpt" / "epoch-1" / "state.json").read_text())
    # Same folder, same settings: the finished checkpoint is reused, nothing retrains.
    again, _ = run(data, tmp_path, "x", epochs=1)
    assert again == rows
    # Other settings: the old checkpoint is discarded and training starts over.
    other, _ = run(data, tmp_path, "x", epochs=1, lr=1e-3)
    new_state = json.loads((out / "ckpt" / "epoch-1" / "state.json").read_text())
    assert new_state["fingerprint"] != state["fingerprint"]
    assert other[0]["train_loss"] != rows[0]["train_loss"]
    # A speed-only setting (SPEED_ONLY) is not part of the fingerprint: the checkpoint is reused.
    same, _ = run(data, tmp_path, "x", epochs=1, lr=1e-3, keep_freed_memory=False)
    assert same == other
    assert json.loads((out / "ckpt" / "epoch-1" / "state.json").read_text())["fingerprint"] == new_state["fingerprint"]


def test_compiled_training_learns_like_eager_and_saves_plain_weights(data, tmp_path):
    # train.compile is a speed lever (perf/trainer_vs_hf.py): the same training up to dropout masks (inductor
    # draws them from its own generator: 2.0233 against 2.0184 eager here), and the saved folder loads
    # without torch.compile's `_orig_mod.` key prefix
    from torch._dynamo.utils import counters
    from transformers import AutoModelForTokenClassification

    eager, _ = run(data, tmp_path, "eager", epochs=1, precision="fp32")
    counters.clear()
    compiled, out = run(data, tmp_path, "compiled", epochs=1, precision="fp32", compile=True)
    assert counters["stats"]["unique_graphs"] > 0  # dynamo did compile the model
    assert compiled[0]["train_loss"] == pytest.approx(eager[0]["train_loss"], rel=2e-2)
    assert compiled[0]["val_f1"] == pytest.approx(eager[0]["val_f1"], abs=0.02)
    model = AutoModelForTokenClassification.from_pretrained(out / "model")
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())


def test_keep_freed_memory_setting_reaches_the_allocator(data, tmp_path, monkeypatch):
    """train.keep_freed_memory (default on) applies shrink.core.allocator's setting; false leaves malloc alone."""
    from shrink.ner import train

    calls = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: calls.append(1))
    run(data, tmp_path, "default", epochs=1)
    run(data, tmp_path, "off", epochs=1, keep_freed_memory=False)
    assert calls == [1]
