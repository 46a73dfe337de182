"""Tests for shrink.ner.models (presets, parameter counts) and shrink.ner.sources.resolve_conll_dir."""

from pathlib import Path

import pytest

from shrink.core.encoders import minilm_path, resolve_source
from shrink.core.errors import ConfigError
from shrink.core.model_size import count_parameters, folder_bytes
from shrink.ner.models import label_maps
from shrink.ner.sources import ENV_VAR, resolve_conll_dir

# --- count_parameters --------------------------------------------------------------------------


@pytest.fixture
def tiny_bert():
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=40, type_vocab_size=2, num_labels=5)
    return BertForTokenClassification(config)


def test_count_parameters_total_and_embedding(tiny_bert):
    c = count_parameters(tiny_bert)
    assert c["total"] == sum(p.numel() for p in tiny_bert.parameters())
    emb = tiny_bert.bert.embeddings
    assert c["embedding"] == (emb.word_embeddings.weight.numel() + emb.position_embeddings.weight.numel()
                              + emb.token_type_embeddings.weight.numel())
    assert c["embedding"] == (100 + 40 + 2) * 16
    assert c["non_embedding"] == c["total"] - c["embedding"]
    assert 0 < c["nonzero"] <= c["total"]


def test_count_parameters_nonzero_drops_by_zeroed_numel(tiny_bert):
    import torch

    before = count_parameters(tiny_bert)
    w = tiny_bert.bert.encoder.layer[0].intermediate.dense.weight
    assert int(torch.count_nonzero(w)) == w.numel() == 32 * 16  # random init: no zeros to begin with
    with torch.no_grad():
        w.zero_()
    after = count_parameters(tiny_bert)
    assert after["nonzero"] == before["nonzero"] - w.numel()
    assert after["total"] == before["total"]
    assert after["embedding"] == before["embedding"]


def test_count_parameters_counts_tied_weights_once():
    import torch

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 3, bias=False)
            self.b = torch.nn.Linear(4, 3, bias=False)
            self.b.weight = self.a.weight

    c = count_parameters(Tied())
    assert c["total"] == 12
    assert c["embedding"] == 0


# --- folder_bytes ------------------------------------------------------------------------------


def test_folder_bytes(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 250)
    (tmp_path / "sub" / "deeper" / "c.bin").write_bytes(b"")
    (tmp_path / "sub" / "deeper" / "d.txt").write_bytes(b"z" * 7)
    assert folder_bytes(tmp_path) == 267
    assert folder_bytes(tmp_path / "sub") == 257
    assert folder_bytes(tmp_path / "sub" / "deeper") == 7


# --- presets -----------------------------------------------------------------------------------


def test_minilm_path_has_config():
    path = Path(minilm_path())
    assert path.is_dir()
    assert (path / "config.json").is_file()


def test_resolve_source_minilm_default():
    assert resolve_source({"preset": "minilm"}) == (minilm_path(), minilm_path())
    assert resolve_source({}) == (minilm_path(), minilm_path())  # minilm is the default preset


def test_resolve_source_tiny_is_random_with_minilm_vocab():
    assert resolve_source({"preset": "tiny"}) == (None, minilm_path())
    assert resolve_source({"preset": "tiny", "tokenizer": "my/tok"}) == (None, "my/tok")


def test_resolve_source_hub_and_custom():
    assert resolve_source({"preset": "bert-base-cased"}) == ("bert-base-cased", "bert-base-cased")
    assert resolve_source({"preset": "tiny", "name_or_path": "/models/x"}) == ("/models/x", "/models/x")
    assert resolve_source({"name_or_path": "/models/x", "tokenizer": "/tok"}) == ("/models/x", "/tok")


def test_resolve_source_unknown_preset():
    with pytest.raises(ConfigError) as ei:
        resolve_source({"preset": "gpt-17"})
    assert ei.value.key == "teacher.preset"
    assert "teacher.preset" in str(ei.value)
    assert "gpt-17" in str(ei.value)


def test_label_maps():
    id2label, label2id = label_maps(["O", "B-PER", "I-PER"])
    assert id2label == {0: "O", 1: "B-PER", 2: "I-PER"}
    assert label2id == {"O": 0, "B-PER": 1, "I-PER": 2}


# --- shrink.ner.sources.resolve_conll_dir ----------------------------------------------------------


def make_conll_dir(path, files=("train.txt", "validation.txt", "test.txt")):
    path.mkdir(parents=True, exist_ok=True)
    for name in files:
        (path / name).write_text("EU B-ORG\n\n")
    return path


def test_conll_dir_missing_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as ei:
        resolve_conll_dir(str(missing))
    assert ei.value.key == "data.conll_dir"
    assert "data.conll_dir" in str(ei.value)
    assert str(missing) in str(ei.value)


def test_conll_dir_from_config(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "ignored"))  # config wins over the environment
    folder = make_conll_dir(tmp_path / "conll")
    assert resolve_conll_dir(str(folder)) == folder.resolve()


def test_conll_dir_from_env_when_config_is_none(tmp_path, monkeypatch):
    assert ENV_VAR == "CONLL2003_DIR"
    folder = make_conll_dir(tmp_path / "from_env")
    monkeypatch.setenv("CONLL2003_DIR", str(folder))
    assert resolve_conll_dir(None) == folder.resolve()
    assert resolve_conll_dir("") == folder.resolve()


def test_conll_dir_env_error_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CONLL2003_DIR", str(tmp_path / "gone"))
    with pytest.raises(ConfigError) as ei:
        resolve_conll_dir(None)
    assert "CONLL2003_DIR" in str(ei.value)


def test_conll_dir_none_without_env(monkeypatch):
    monkeypatch.delenv("CONLL2003_DIR", raising=False)
    assert resolve_conll_dir(None) is None


def test_conll_dir_missing_split_file(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    folder = make_conll_dir(tmp_path / "partial", files=("train.txt", "validation.txt"))
    with pytest.raises(ConfigError) as ei:
        resolve_conll_dir(str(folder))
    msg = str(ei.value)
    assert ei.value.key == "data.conll_dir"
    lacking = msg.split(" lacks ", 1)[1].split(" (expected", 1)[0]
    assert lacking == "test.txt"
