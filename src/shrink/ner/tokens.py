"""Sub-word tokenization with word-label alignment, written as Arrow shards.

A sentence longer than `max_length` word pieces is split into overlapping windows, one dataset row
each, so no word is lost to truncation: see `plan_windows` and `owners`.
"""

import json
import math
import sys
from pathlib import Path

from ..core.atomic import atomic_dir, write_json
from ..core.errors import ConfigError, DataError
from .cleaning import SPLITS
from .conll import read_conll

IGNORE = -100
REPORT = "report.json"  # beside the shards in the tokenized folder


def begin_to_inside(labels):
    """Map each label id to the id of its I- form (B-X -> I-X), for continuation sub-tokens."""
    index = {lab: i for i, lab in enumerate(labels)}
    return [index.get("I-" + lab[2:], i) if lab.startswith("B-") else i for i, lab in enumerate(labels)]


def align_labels(word_ids, word_labels, label_all_tokens=False, b_to_i=None, owned=None):
    """Per-sub-token labels from per-word labels.

    The first sub-token of a word carries the word's label. Later sub-tokens get IGNORE, or
    with `label_all_tokens` the word's label with B- turned into I- (a word is one entity
    start, not several). Special tokens get IGNORE, and so do all pieces of a word `owned[w]`
    marks False (a window's context word that another window labels).
    """
    out, prev = [], None
    for w in word_ids:
        if w is None or (owned is not None and not owned[w]):
            out.append(IGNORE)
        elif w != prev:
            out.append(word_labels[w])
        else:
            lab = word_labels[w]
            out.append((b_to_i[lab] if b_to_i else lab) if label_all_tokens else IGNORE)
        prev = w
    return out


def first_subtoken_positions(word_ids, n_words, owned=None):
    """Position of each word's first sub-token; -1 for a word with no piece here or one `owned[w]` marks False."""
    pos = [-1] * n_words
    for i, w in enumerate(word_ids):
        if w is not None and pos[w] == -1 and (owned is None or owned[w]):
            pos[w] = i
    return pos


def plan_windows(pieces, budget, stride):
    """Windows [start, end) of word indices covering a sentence whose words have `pieces` word pieces each.

    Each window holds at most `budget` pieces and ends at a word boundary, so no word's pieces are
    split between windows (a word cut in two would be labelled and predicted from a fragment).
    Consecutive windows share the longest run of whole words of at most `stride` pieces, as context;
    the share shrinks when the next window's first new word would not fit beside it, so every window
    adds at least one word and the plan always ends. Callers check that every word fits in `budget`.
    """
    n = len(pieces)
    windows, start = [], 0
    while True:
        end, used = start, 0
        while end < n and used + pieces[end] <= budget:
            used += pieces[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        nxt, shared = end, 0  # walk back from the edge while the shared words fit the stride and the next word
        while nxt - 1 > start and shared + pieces[nxt - 1] <= stride and shared + pieces[nxt - 1] + pieces[end] <= budget:
            nxt -= 1
            shared += pieces[nxt]
        start = nxt


def owners(pieces, windows):
    """For each word, the index of the one window that labels it (training) and predicts it (evaluation).

    The "max context" rule (BERT's SQuAD windows): of the windows holding a word, the one where it has
    the most word pieces of context on its nearer side; a sentence's own start or end is not an edge,
    since no context is missing there. Ties go to the earlier window. Each word is labelled once, so
    a word in an overlap weighs as much in the loss as any other, and it is labelled where it is
    predicted, the window in which the model sees it best.
    """
    n = len(pieces)
    cum = [0]
    for c in pieces:
        cum.append(cum[-1] + c)
    best = [(-1.0, -1)] * n
    for k, (s, e) in enumerate(windows):
        for w in range(s, e):
            left = math.inf if s == 0 else cum[w] - cum[s]
            right = math.inf if e == n else cum[e] - cum[w + 1]
            score = min(left, right)
            if score > best[w][0]:
                best[w] = (score, k)
    return [k for _, k in best]


def encode_split(sentences, tokenizer, labels, max_length, label_all_tokens, stride=0, split="", path="",
                 report=None):
    """Rows of a tokenized split: one per window, a sentence of at most `max_length` pieces being one window.

    Besides the model inputs each row keeps `sentence` (index in the split) and `word_offset` (its
    first word's index in the sentence); `word_labels` and `word_starts` cover the row's words, and
    `word_starts` is -1 for a word another window predicts, so that merging the rows gives every word
    of every sentence exactly one prediction (shrink.ner.metrics). `stride`: word pieces of context
    that consecutive windows share (the workflow passes tokenize.stride). `split` and `path` name the
    data in errors. `report`, a dict, receives the split's counts: sentences, long_sentences (over
    `max_length`), windows (rows) and longest_word_pieces (with special tokens).
    """
    index = {lab: i for i, lab in enumerate(labels)}
    b_to_i = begin_to_inside(labels)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if not 0 <= stride < budget:
        raise ConfigError("tokenize.stride", f"is {stride}; it must be at least 0 and below the {budget} word "
                          f"pieces a window of tokenize.max_length {max_length} holds besides special tokens")
    rows = {"input_ids": [], "attention_mask": [], "labels": [], "word_labels": [], "word_starts": [], "length": [],
            "sentence": [], "word_offset": []}
    stats = {"sentences": len(sentences), "long_sentences": 0, "windows": 0, "longest_word_pieces": 0}
    where = f"{path} ({split} split)" if split else (path or "sentences")

    def add(enc, j, sentence, offset, wl, owned):
        wids = enc.word_ids(j)
        rows["input_ids"].append(enc["input_ids"][j])
        rows["attention_mask"].append(enc["attention_mask"][j])
        rows["labels"].append(align_labels(wids, wl, label_all_tokens, b_to_i, owned))
        rows["word_labels"].append(wl)
        rows["word_starts"].append(first_subtoken_positions(wids, len(wl), owned))
        rows["length"].append(len(enc["input_ids"][j]))
        rows["sentence"].append(sentence)
        rows["word_offset"].append(offset)

    batch = 1000
    for lo in range(0, len(sentences), batch):
        chunk = sentences[lo: lo + batch]
        # untruncated: the full piece count of every word decides whether and where a sentence is split
        enc = tokenizer([s.tokens for s in chunk], is_split_into_words=True)
        for j, s in enumerate(chunk):
            i, wl = lo + j, [index[t] for t in s.tags]
            n_pieces = len(enc["input_ids"][j])
            stats["longest_word_pieces"] = max(stats["longest_word_pieces"], n_pieces)
            if n_pieces <= max_length:
                add(enc, j, i, 0, wl, None)
                continue
            stats["long_sentences"] += 1
            pieces = [0] * len(wl)
            for w in enc.word_ids(j):
                if w is not None:
                    pieces[w] += 1
            too_long = [w for w, c in enumerate(pieces) if c > budget]
            if too_long:
                w = too_long[0]
                raise DataError(where, None, f"sentence {i} (line {s.line}): word {w} {s.tokens[w]!r} is "
                                f"{pieces[w]} word pieces, more than the {budget} a window of tokenize.max_length "
                                f"{max_length} holds; raise tokenize.max_length or remove the word")
            windows = plan_windows(pieces, budget, stride)
            owner = owners(pieces, windows)
            # each window re-tokenized from its words, so the tokenizer adds its own special tokens
            wenc = tokenizer([s.tokens[a:b] for a, b in windows], is_split_into_words=True)
            for k, (a, b) in enumerate(windows):
                if len(wenc["input_ids"][k]) > max_length:  # a tokenizer whose pieces depend on the neighbours
                    raise DataError(where, None, f"sentence {i}: window of words {a}-{b} re-tokenizes to "
                                    f"{len(wenc['input_ids'][k])} word pieces, over tokenize.max_length {max_length}")
                add(wenc, k, i, a, wl[a:b], [owner[w] == k for w in range(a, b)])
    stats["windows"] = len(rows["length"])
    if report is not None:
        report.update(stats)
    return rows


def tokenize_corpus(clean_paths, labels_path, tokenizer_path, out_dir, max_length=256,
                    label_all_tokens=False, num_shards=1, stride=0):
    """Tokenize the cleaned splits into a DatasetDict on disk, with the tokenizer, the label list and
    `report.json` (per split: sentences, sentences over max_length, windows, longest sentence) beside it."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer

    labels = json.loads(Path(labels_path).read_text())
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer at {tokenizer_path} is not a fast tokenizer; word alignment needs one")
    dd, report = DatasetDict(), {"max_length": max_length, "stride": stride, "splits": {}}
    for split in SPLITS:
        sents = read_conll(clean_paths[split]).sentences
        report["splits"][split] = {}
        dd[split] = Dataset.from_dict(encode_split(sents, tokenizer, labels, max_length, label_all_tokens, stride,
                                                   split, clean_paths[split], report["splits"][split]))
    with atomic_dir(out_dir) as tmp:
        dd.save_to_disk(str(tmp / "shards"), num_shards={s: min(num_shards, len(dd[s])) for s in SPLITS})
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1))
        write_json(tmp / REPORT, report)
    for split, r in report["splits"].items():
        if r["long_sentences"]:
            print(f"warning: {split}: {r['long_sentences']} sentence(s) longer than tokenize.max_length {max_length} "
                  f"(the longest {r['longest_word_pieces']} word pieces) split into overlapping windows; "
                  f"{r['windows']} windows for {r['sentences']} sentences", file=sys.stderr, flush=True)
    return report
