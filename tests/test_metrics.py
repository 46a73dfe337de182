"""Tests for shrink.ner.metrics: entity scores (seqeval) and word-level predictions."""

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score

from shrink.ner.metrics import entity_scores, gold_tags, predict_tags

CASES = [
    # (y_true, y_pred, precision, recall, f1)
    # 2 gold entities, 1 correct + 1 wrong type
    ([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]], 0.5, 0.5, 0.5),
    # 3 gold, 2 predicted, both right: P=1, R=2/3, F1=2*(2/3)/(5/3)=0.8
    ([["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "I-ORG"]],
     [["B-PER", "I-PER", "O", "B-LOC", "O"], ["O", "O", "O"]], 1.0, 2 / 3, 0.8),
    # wrong boundary is wrong
    ([["B-PER", "I-PER"]], [["B-PER", "O"]], 0.0, 0.0, 0.0),
    # conlleval rules: an I- after O starts an entity
    ([["B-PER", "O"]], [["I-PER", "O"]], 1.0, 1.0, 1.0),
    # nothing predicted: zero_division=0
    ([["B-PER", "O"]], [["O", "O"]], 0.0, 0.0, 0.0),
    # 4 gold (3 PER, 1 LOC), 3 predicted of which 2 right: P=2/3, R=1/2, F1=4/7
    ([["B-PER", "O", "B-PER", "I-PER"], ["B-LOC", "O", "B-PER"]],
     [["B-PER", "O", "B-PER", "O"], ["O", "O", "B-PER"]], 2 / 3, 0.5, 4 / 7),
]


@pytest.mark.parametrize("y_true, y_pred, p, r, f", CASES)
def test_entity_scores_hand_computed_and_match_seqeval(y_true, y_pred, p, r, f):
    s = entity_scores(y_true, y_pred)
    assert s["precision"] == pytest.approx(p)
    assert s["recall"] == pytest.approx(r)
    assert s["f1"] == pytest.approx(f)
    assert s["precision"] == pytest.approx(precision_score(y_true, y_pred, zero_division=0))
    assert s["recall"] == pytest.approx(recall_score(y_true, y_pred, zero_division=0))
    assert s["f1"] == pytest.approx(f1_score(y_true, y_pred, zero_division=0))


def test_entity_scores_per_type_wrong_type():
    s = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    per = s["per_type"]
    assert set(per) == {"PER", "LOC", "ORG"}  # no "micro avg" / "macro avg" rows
    assert per["PER"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1})
    assert per["LOC"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert per["ORG"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0})
    assert all(isinstance(v["support"], int) for v in per.values())


def test_entity_scores_per_type_support_counts():
    y_true = [["B-PER", "O", "B-PER", "I-PER"], ["B-LOC", "O", "B-PER"]]
    y_pred = [["B-PER", "O", "B-PER", "O"], ["O", "O", "B-PER"]]
    per = entity_scores(y_true, y_pred)["per_type"]
    assert set(per) == {"PER", "LOC"}
    assert per["PER"]["support"] == 3
    assert per["LOC"]["support"] == 1
    assert per["PER"]["precision"] == pytest.approx(2 / 3)
    assert per["PER"]["recall"] == pytest.approx(2 / 3)
    assert per["PER"]["f1"] == pytest.approx(2 / 3)
    assert per["LOC"]["recall"] == 0.0


def test_entity_scores_perfect():
    y = [["B-MISC", "I-MISC", "O"], ["B-ORG"]]
    s = entity_scores(y, y)
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    assert {k: v["support"] for k, v in s["per_type"].items()} == {"MISC": 1, "ORG": 1}


# --- predict_tags with a tiny random model -----------------------------------------------------

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from shrink.core.encoders import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=len(LABELS))
    return BertForTokenClassification(config).eval()


def make_dataset(tokenizer, sentences, max_length, stride=0):
    from datasets import Dataset

    from shrink.ner.conll import Sentence
    from shrink.ner.tokens import encode_split

    sents = [Sentence(toks, tags, 1) for toks, tags in sentences]
    return Dataset.from_dict(encode_split(sents, tokenizer, LABELS, max_length, label_all_tokens=False, stride=stride))


SENTS = [
    (["Peter", "Blackburn", "visited", "the", "town", "of", "Hasselbaink", "yesterday"],
     ["B-PER", "I-PER", "O", "O", "O", "O", "B-LOC", "O"]),
    (["EU-wide", "rules"], ["O", "O"]),
    (["John", "met", "Mary", "in", "Paris"], ["B-PER", "O", "B-PER", "O", "B-LOC"]),
]


def long_split():
    """SENTS with a 250-word sentence in the middle: far over max_length 16, so it becomes many windows."""
    words = (SENTS[0][0] + SENTS[2][0]) * 20
    tags = (SENTS[0][1] + SENTS[2][1]) * 20
    return [SENTS[0], (words[:250], tags[:250]), SENTS[1], SENTS[2]]


def set_constant_prediction(model, label):
    import torch

    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([10.0 if lab == label else 0.0 for lab in LABELS]))


def test_predict_tags_every_word_of_a_long_sentence(tokenizer, tiny_model):
    split = long_split()
    ds = make_dataset(tokenizer, split, max_length=16, stride=4)
    assert len(ds) > len(split) + 10  # the long sentence really is split into windows
    # a model that predicts B-PER at every position, so any "O" would be a word no window scored
    set_constant_prediction(tiny_model, "B-PER")
    preds = predict_tags(tiny_model, ds, tokenizer, LABELS, batch_size=3)
    gold = gold_tags(ds, LABELS)
    assert [len(p) for p in preds] == [len(g) for g in gold] == [len(toks) for toks, _ in split]
    assert gold == [tags for _, tags in split]
    assert all(tag == "B-PER" for p in preds for tag in p)


def test_predict_tags_match_unbatched_forward(tokenizer):
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(1)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=len(LABELS))
    model = BertForTokenClassification(config).eval()
    ds = make_dataset(tokenizer, long_split(), max_length=8, stride=2)
    # batch_size=2 sorts by length and pads: predictions must still map back to the right sentence and word
    preds = predict_tags(model, ds, tokenizer, LABELS, batch_size=2)
    expect = [[None] * len(toks) for toks, _ in long_split()]
    for i in range(len(ds)):
        row = ds[i]
        ids = torch.tensor([row["input_ids"]])
        with torch.no_grad():
            best = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.argmax(-1)[0].tolist()
        for j, p in enumerate(row["word_starts"]):
            if p >= 0:
                assert expect[row["sentence"]][row["word_offset"] + j] is None  # one window per word
                expect[row["sentence"]][row["word_offset"] + j] = LABELS[best[p]]
    assert all(tag is not None for sent in expect for tag in sent)
    assert preds == expect


def test_gold_tags_round_trip(tokenizer):
    ds = make_dataset(tokenizer, SENTS, max_length=6)
    assert gold_tags(ds, LABELS) == [tags for _, tags in SENTS]


def test_tags_from_data_tokenized_before_windows(tokenizer, tiny_model):
    """Shards written before windows existed have no sentence/word_offset columns: one row per sentence."""
    ds = make_dataset(tokenizer, SENTS, max_length=64).remove_columns(["sentence", "word_offset"])
    set_constant_prediction(tiny_model, "B-LOC")
    assert gold_tags(ds, LABELS) == [tags for _, tags in SENTS]
    assert predict_tags(tiny_model, ds, tokenizer, LABELS) == [["B-LOC"] * len(toks) for toks, _ in SENTS]
