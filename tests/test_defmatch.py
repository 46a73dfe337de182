"""Definition matching: WiC-TSV reader, leak-free validation split, encoder features, heads, training, metrics."""

import os
from pathlib import Path

import pytest
import torch

from conftest import missing_corpus
from shrink.core.errors import ConfigError, DataError, ShrinkError
from shrink.defmatch.classifier_heads import HEADS, build_head
from shrink.defmatch.data import read_split, target_mismatches, validation_split
from shrink.defmatch.features import (
    LAYERS,
    cached_encode,
    encode,
    feature_width,
    load_features,
)
from shrink.defmatch.train import (
    HeadTrainConfig,
    binary_metrics,
    evaluate,
    majority_baseline,
    train_head,
)

EXAMPLES = ["spring\t3\tI spent my spring holidays in Morocco .",
            "grasshoppers\t1\tThe grasshoppers sang all summer",
            "Home\t0\thome is where the heart is"]
DEFINITIONS = ["the season of growth", "terrestrial plant-eating insect with hind legs adapted for leaping",
               "an environment offering affection and security"]
HYPERNYMS = ["season\ttime_of_year", "", "environment"]


def write_split(folder, split="train", examples=EXAMPLES, definitions=DEFINITIONS, hypernyms=HYPERNYMS,
                labels=("T", "F", "T")):
    folder.mkdir(parents=True, exist_ok=True)
    files = {"examples": examples, "definitions": definitions, "hypernyms": hypernyms, "labels": labels}
    for kind, lines in files.items():
        if lines is not None:
            # no newline after the last example, as in the released train_examples.txt
            end = "" if kind == "examples" else "\n"
            (folder / f"{split}_{kind}.txt").write_text("\n".join(lines) + end, encoding="utf-8")
    return folder


# --- reader -------------------------------------------------------------------------------------

def test_read_split_parses_the_four_files(tmp_path):
    items = read_split(write_split(tmp_path), "train")
    assert [it["target"] for it in items] == ["spring", "grasshoppers", "Home"]
    assert [it["index"] for it in items] == [3, 1, 0]
    assert items[0]["context"] == "I spent my spring holidays in Morocco ."
    assert items[1]["definition"] == DEFINITIONS[1]
    assert [it["hypernyms"] for it in items] == [["season", "time of year"], [], ["environment"]]
    assert [it["label"] for it in items] == [1, 0, 1]


def test_test_split_without_labels_has_label_none(tmp_path):
    items = read_split(write_split(tmp_path, "test", labels=None), "test")
    assert len(items) == 3 and all(it["label"] is None for it in items)


def test_mismatched_line_counts_name_the_file_and_line(tmp_path):
    write_split(tmp_path, definitions=DEFINITIONS[:2])
    with pytest.raises(DataError) as err:
        read_split(tmp_path, "train")
    assert err.value.path.endswith("train_definitions.txt") and err.value.line == 3
    assert "has 2 lines but train_examples.txt has 3" in str(err.value)


def test_bad_label_names_the_file_and_line(tmp_path):
    write_split(tmp_path, labels=("T", "yes", "F"))
    with pytest.raises(DataError, match=r"train_labels.txt:2: label must be T or F, got 'yes'"):
        read_split(tmp_path, "train")


@pytest.mark.parametrize("line, why", [("spring\tthree\tI spent my spring", "is not an integer"),
                                       ("spring\t4\tI spent my spring", "outside the context's 4 words"),
                                       ("spring\t-1\tI spent my spring", "outside"),
                                       ("spring 3 I spent my spring", "expected 3 tab-separated fields")])
def test_bad_examples_line_is_reported(tmp_path, line, why):
    write_split(tmp_path, examples=[EXAMPLES[0], line, EXAMPLES[2]])
    with pytest.raises(DataError, match=why) as err:
        read_split(tmp_path, "train")
    assert err.value.path.endswith("train_examples.txt") and err.value.line == 2


def test_target_mismatches_ignore_case_but_report_other_forms(tmp_path):
    examples = EXAMPLES[:2] + ["python\t2\tthe two pythons slept"]
    items = read_split(write_split(tmp_path, examples=examples), "train")
    assert target_mismatches(items) == [(2, "python", "pythons")]  # "Home"/"home" is not reported


# --- validation split -----------------------------------------------------------------------------

def toy_items(n_targets=30, per_target=(1, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for t in range(n_targets):
        for k in range(int(torch.randint(*per_target, (1,), generator=g))):
            # mixed case: the split must group "Word3" with "word3"
            target = f"Word{t}" if k % 2 else f"word{t}"
            items.append(dict(target=target, index=0, context=f"{target} x", definition="d", hypernyms=[], label=k % 2))
    return items


def test_validation_split_never_shares_a_target_and_is_seeded():
    items = toy_items()
    train, val = validation_split(items, 0.2, seed=3)
    assert len(train) + len(val) == len(items)
    assert {id(x) for x in train}.isdisjoint({id(x) for x in val})
    assert not {x["target"].lower() for x in train} & {x["target"].lower() for x in val}
    assert 0.2 * len(items) <= len(val) < 0.2 * len(items) + 6  # overshoots by less than one group
    assert validation_split(items, 0.2, seed=3) == (train, val)
    assert validation_split(items, 0.2, seed=4)[1] != val


def test_validation_split_rejects_a_bad_fraction():
    with pytest.raises(ConfigError, match="definition_match.val_fraction"):
        validation_split(toy_items(), 1.5, seed=0)


# --- features -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from shrink.core.encoders import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


def tiny_encoder(tokenizer, layers=4, hidden=32):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)
    return BertModel(config)  # left in train mode: encode must switch dropout off itself


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    return read_split(write_split(tmp_path_factory.mktemp("wic")), "train")


def test_word_vector_is_the_mean_of_the_target_pieces_of_the_last4_sum(tokenizer, items):
    model = tiny_encoder(tokenizer)
    feats = encode(items, model, tokenizer, "sum_last4", batch_size=3, progress=False)
    assert model.training  # the caller's mode is restored

    item = items[1]  # "grasshoppers" splits into several word-pieces; batched with longer rows (padding)
    enc = tokenizer(item["context"].split(), is_split_into_words=True, return_tensors="pt")
    pieces = [t for t, w in enumerate(enc.word_ids(0)) if w == item["index"]]
    assert len(pieces) > 1
    model.eval()
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    summed = hs[-1][0] + hs[-2][0] + hs[-3][0] + hs[-4][0]
    torch.testing.assert_close(feats["word"][1], summed[pieces].mean(0), atol=1e-5, rtol=1e-5)

    enc = tokenizer(item["definition"], return_tensors="pt")
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    inner = (hs[-1][0] + hs[-2][0] + hs[-3][0] + hs[-4][0])[1:-1]  # without [CLS] and [SEP]
    torch.testing.assert_close(feats["definition"][1], inner.mean(0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layers", LAYERS)
def test_layer_options_give_the_right_width(tokenizer, items, layers):
    feats = encode(items, tiny_encoder(tokenizer), tokenizer, layers, batch_size=2, progress=False)
    width = 4 * 32 if layers == "concat_last4" else 32
    assert feature_width(32, layers) == width
    assert feats["word"].shape == feats["definition"].shape == (3, width)
    assert torch.isfinite(feats["word"]).all()


def test_layer_options_differ_and_unknown_or_too_deep_ones_are_refused(tokenizer, items):
    model = tiny_encoder(tokenizer)
    last = encode(items, model, tokenizer, "last", progress=False)["word"]
    second = encode(items, model, tokenizer, "second_to_last", progress=False)["word"]
    assert not torch.allclose(last, second)
    with pytest.raises(ConfigError, match="definition_match.features.layers"):
        encode(items, model, tokenizer, "sum_last3", progress=False)
    with pytest.raises(ConfigError, match="at least 4 layers"):
        encode(items, tiny_encoder(tokenizer, layers=2), tokenizer, "sum_last4", progress=False)


def test_prefixing_the_target_changes_only_the_definition_vector(tokenizer, items):
    model = tiny_encoder(tokenizer)
    plain = encode(items, model, tokenizer, "last", progress=False)
    prefixed = encode(items, model, tokenizer, "last", prefix_target=True, progress=False)
    torch.testing.assert_close(plain["word"], prefixed["word"])
    assert not torch.allclose(plain["definition"], prefixed["definition"])


def test_encoding_is_deterministic_and_batch_size_independent(tokenizer, items):
    model = tiny_encoder(tokenizer)
    a = encode(items, model, tokenizer, "mean_all", batch_size=1, progress=False)
    b = encode(items, model, tokenizer, "mean_all", batch_size=3, progress=False)
    torch.testing.assert_close(a["word"], b["word"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a["definition"], b["definition"], atol=1e-5, rtol=1e-5)


def test_cached_encode_reuses_matching_features_and_redoes_stale_ones(tokenizer, items, tmp_path):
    model = tiny_encoder(tokenizer)
    path = tmp_path / "feats.pt"
    first = cached_encode(path, items, model, tokenizer, "last", progress=False)
    stored, meta = load_features(path)
    torch.testing.assert_close(stored["word"], first["word"])
    assert meta["layers"] == "last" and meta["n"] == 3

    torch.save({**torch.load(path), "word": torch.zeros(3, 32)}, path)  # a marker: reused => zeros
    assert cached_encode(path, items, model, tokenizer, "last", progress=False)["word"].abs().sum() == 0
    again = cached_encode(path, items[:2], model, tokenizer, "last", progress=False)  # other items
    torch.testing.assert_close(again["word"], first["word"][:2])
    with pytest.raises(ShrinkError, match="different layers"):
        load_features(path, {"layers": "sum_last4"})


# --- heads and training ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(HEADS))
def test_each_head_gives_one_logit_per_pair(name):
    head = build_head(name, 16, {"seed": 1})
    out = head(torch.randn(5, 16), torch.randn(5, 16))
    assert out.shape == (5,)
    same = build_head(name, 16, {"seed": 1})
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), same.state_dict().values()))


def test_build_head_refuses_unknown_names_and_settings():
    with pytest.raises(ConfigError, match="definition_match.heads"):
        build_head("mlp", 8)
    with pytest.raises(ConfigError, match="definition_match.head.lr"):
        build_head("logreg", 8, {"lr": 0.1})
    with pytest.raises(ConfigError, match="definition_match.train.momentum"):
        HeadTrainConfig.from_dict({"momentum": 0.9})


def toy_pairs(n, d=8, seed=0):
    """A usage matches when its definition vector points the same way (v = u + noise), not when v = -u + noise.
    An offset and scale mimic raw hidden states, which standardisation has to handle."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    v = torch.where(y[:, None] == 1, u, -u) + 0.3 * torch.randn(n, d, generator=g)
    return dict(word=5 + 10 * u, definition=5 + 10 * v), y


@pytest.mark.parametrize("name", sorted(HEADS))
def test_training_on_a_separable_toy_set_keeps_the_best_val_epoch(name):
    train_feats, y_train = toy_pairs(300, seed=0)
    val_feats, y_val = toy_pairs(100, seed=1)
    head = build_head(name, 8, {"seed": 0})
    settings = {"lr": 1e-2, "epochs": 8, "batch_size": 16, "seed": 0}
    rows, best_state = train_head(head, train_feats, y_train, val_feats, y_val, settings)

    assert [r["epoch"] for r in rows] == list(range(1, 9))
    chosen = [r for r in rows if r["selected"]]
    assert len(chosen) == 1
    best_acc = max(r["val_acc"] for r in rows)
    assert chosen[0]["val_acc"] == best_acc
    assert chosen[0]["val_loss"] == min(r["val_loss"] for r in rows if r["val_acc"] == best_acc)
    # bottleneck32 reduces each side to one scalar, so pairs whose u is near its single direction
    # stay ambiguous: the report's weak design cannot reach what the others do.
    assert best_acc >= (0.8 if name == "bottleneck32" else 0.9)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    # the head ends holding the chosen epoch's weights
    assert evaluate(head, val_feats, y_val)["accuracy"] == pytest.approx(best_acc)
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), best_state.values()))
    # seeded: the same settings give the same curve
    again, _ = train_head(build_head(name, 8, {"seed": 0}), train_feats, y_train, val_feats, y_val, settings)
    assert again == rows


def test_chosen_epoch_is_not_simply_the_last():
    # A learning rate this high overshoots: the curve goes up and down, and the best epoch must be kept.
    train_feats, y_train = toy_pairs(200, seed=0)
    val_feats, y_val = toy_pairs(200, seed=1)
    y_noisy = y_train.clone()
    y_noisy[:60] = 1 - y_noisy[:60]
    head = build_head("towers", 8, {"seed": 0})
    rows, _ = train_head(head, train_feats, y_noisy, val_feats, y_val, {"lr": 0.05, "epochs": 12, "batch_size": 8})
    chosen = next(r for r in rows if r["selected"])
    assert chosen["val_acc"] == max(r["val_acc"] for r in rows)
    assert chosen["epoch"] < len(rows) and rows[-1]["val_acc"] < chosen["val_acc"]
    assert evaluate(head, val_feats, y_val)["accuracy"] == pytest.approx(chosen["val_acc"])


# --- metrics --------------------------------------------------------------------------------------

def test_binary_metrics_on_crafted_predictions():
    m = binary_metrics([1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0])  # tp 2, fp 1, fn 1, tn 2
    assert m == pytest.approx(dict(accuracy=4 / 6, precision=2 / 3, recall=2 / 3, f1=2 / 3, n=6))
    none = binary_metrics([0, 0], [1, 0])
    assert none["precision"] == none["recall"] == none["f1"] == 0.0 and none["accuracy"] == 0.5


def test_evaluate_thresholds_logits_at_zero():
    class FirstFeature(torch.nn.Module):
        def forward(self, u, v):
            return u[:, 0]

    feats = dict(word=torch.tensor([[2.0], [-1.0], [0.5], [-3.0]]), definition=torch.zeros(4, 1))
    m = evaluate(FirstFeature(), feats, [1, 1, 0, 0])  # predictions 1, 0, 1, 0
    assert m == pytest.approx(dict(accuracy=0.5, precision=0.5, recall=0.5, f1=0.5, n=4))


def test_majority_baseline():
    m = majority_baseline([0, 0, 1], [1, 0, 0, 0])
    assert m == pytest.approx(dict(accuracy=0.75, f1=0.0, label=0))
    tie = majority_baseline([0, 1], [1, 0, 1])  # a tie predicts the positive label
    assert tie == pytest.approx(dict(accuracy=2 / 3, f1=0.8, label=1))


# --- the released data (skipped without it) --------------------------------------------------------

@pytest.mark.realdata
def test_released_wic_tsv_reads_and_indices_point_at_the_target():
    folder = Path(os.environ.get("WIC_TSV_DIR", Path(__file__).resolve().parents[2] / "shared/data/wic_tsv"))
    if not (folder / "train_examples.txt").is_file():
        missing_corpus("WIC_TSV_DIR is not set to the WiC-TSV folder")
    splits = {s: read_split(folder, s) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 2828, "dev": 389, "test": 1306}
    assert target_mismatches(splits["train"]) == [] and target_mismatches(splits["dev"]) == []
    assert len(target_mismatches(splits["test"])) < 0.1 * len(splits["test"])  # inflected forms only
    assert all(it["label"] is None for it in splits["test"])
