"""Sub-word tokenization with word-label alignment, written as Arrow shards."""

import json
from pathlib import Path

from ..core.atomic import atomic_dir
from .cleaning import SPLITS
from .conll import read_conll

IGNORE = -100


def begin_to_inside(labels):
    """Map each label id to the id of its I- form (B-X -> I-X), for continuation sub-tokens."""
    index = {lab: i for i, lab in enumerate(labels)}
    return [index.get("I-" + lab[2:], i) if lab.startswith("B-") else i for i, lab in enumerate(labels)]


def align_labels(word_ids, word_labels, label_all_tokens=False, b_to_i=None):
    """Per-sub-token labels from per-word labels.

    The first sub-token of a word carries the word's label. Later sub-tokens get IGNORE, or
    with `label_all_tokens` the word's label with B- turned into I- (a word is one entity
    start, not several). Special tokens get IGNORE.
    """
    out, prev = [], None
    for w in word_ids:
        if w is None:
            out.append(IGNORE)
        elif w != prev:
            out.append(word_labels[w])
        else:
            lab = word_labels[w]
            out.append((b_to_i[lab] if b_to_i else lab) if label_all_tokens else IGNORE)
        prev = w
    return out


def first_subtoken_positions(word_ids, n_words):
    """Position of each word's first sub-token, or -1 where truncation cut the word off."""
    pos = [-1] * n_words
    for i, w in enumerate(word_ids):
        if w is not None and pos[w] == -1:
            pos[w] = i
    return pos


def encode_split(sentences, tokenizer, labels, max_length, label_all_tokens):
    index = {lab: i for i, lab in enumerate(labels)}
    b_to_i = begin_to_inside(labels)
    rows = {"input_ids": [], "attention_mask": [], "labels": [], "word_labels": [], "word_starts": [], "length": []}
    batch = 1000
    for lo in range(0, len(sentences), batch):
        chunk = sentences[lo: lo + batch]
        enc = tokenizer([s.tokens for s in chunk], is_split_into_words=True, truncation=True, max_length=max_length)
        for j, s in enumerate(chunk):
            wl = [index[t] for t in s.tags]
            wids = enc.word_ids(j)
            rows["input_ids"].append(enc["input_ids"][j])
            rows["attention_mask"].append(enc["attention_mask"][j])
            rows["labels"].append(align_labels(wids, wl, label_all_tokens, b_to_i))
            rows["word_labels"].append(wl)
            rows["word_starts"].append(first_subtoken_positions(wids, len(wl)))
            rows["length"].append(len(enc["input_ids"][j]))
    return rows


def tokenize_corpus(clean_paths, labels_path, tokenizer_path, out_dir, max_length=256,
                    label_all_tokens=False, num_shards=1):
    """Tokenize the cleaned splits into a DatasetDict on disk, with the tokenizer and label list beside it."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoTokenizer

    labels = json.loads(Path(labels_path).read_text())
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer at {tokenizer_path} is not a fast tokenizer; word alignment needs one")
    dd = DatasetDict()
    for split in SPLITS:
        sents = read_conll(clean_paths[split]).sentences
        dd[split] = Dataset.from_dict(encode_split(sents, tokenizer, labels, max_length, label_all_tokens))
    with atomic_dir(out_dir) as tmp:
        dd.save_to_disk(str(tmp / "shards"), num_shards={s: min(num_shards, len(dd[s])) for s in SPLITS})
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        (tmp / "labels.json").write_text(json.dumps(labels, indent=1))
    return {s: len(dd[s]) for s in SPLITS}
